/**
 * Container records in the daemon's SQLite database. Every change is one
 * statement (or one transaction), so kill -9 leaves either the old or the new
 * record. Reads come from an in-memory copy loaded at start.
 */
import type { Database } from 'better-sqlite3';
import { Conflict, NotFound } from '../errors.js';
import type { Container } from './types.js';

export class ContainerStore {
  private readonly byId = new Map<string, Container>();

  constructor(private readonly db: Database) {
    db.exec(`CREATE TABLE IF NOT EXISTS containers (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      record TEXT NOT NULL
    )`);
    for (const row of db.prepare('SELECT record FROM containers').all() as { record: string }[]) {
      const c = JSON.parse(row.record) as Container;
      this.byId.set(c.id, c);
    }
  }

  list(): Container[] {
    return [...this.byId.values()].sort((a, b) => (a.created < b.created ? 1 : -1));
  }

  /** Docker's lookup order: full ID, exact name, then unique ID prefix. */
  find(idOrName: string): Container | undefined {
    const key = idOrName.replace(/^\//, '');
    const exact = this.byId.get(key);
    if (exact) return exact;
    for (const c of this.byId.values()) if (c.name === key) return c;
    if (!/^[0-9a-f]+$/.test(key)) return undefined;
    const hits = [...this.byId.values()].filter((c) => c.id.startsWith(key));
    if (hits.length > 1) throw new NotFound(`Multiple IDs found with provided prefix: ${key}`);
    return hits[0];
  }

  get(idOrName: string): Container {
    const c = this.find(idOrName);
    if (!c) throw new NotFound(`No such container: ${idOrName}`);
    return c;
  }

  nameInUse(name: string): Container | undefined {
    for (const c of this.byId.values()) if (c.name === name) return c;
    return undefined;
  }

  insert(c: Container): void {
    const other = this.nameInUse(c.name);
    if (other) {
      throw new Conflict(`Conflict. The container name "/${c.name}" is already in use by container "${other.id}". You have to remove (or rename) that container to be able to reuse that name.`);
    }
    this.db.prepare('INSERT INTO containers (id, name, record) VALUES (?, ?, ?)').run(c.id, c.name, JSON.stringify(c));
    this.byId.set(c.id, c);
  }

  save(c: Container): void {
    this.db.prepare('UPDATE containers SET name = ?, record = ? WHERE id = ?').run(c.name, JSON.stringify(c), c.id);
    this.byId.set(c.id, c);
  }

  delete(id: string): void {
    this.db.prepare('DELETE FROM containers WHERE id = ?').run(id);
    this.byId.delete(id);
  }
}
