/**
 * Container records in the daemon's SQLite database. Every change is one
 * statement (or one transaction), so kill -9 leaves either the old or the new
 * record. Reads come from an in-memory copy loaded at start.
 *
 * The records are shared by all storage drivers, as Docker's containers/ folder: each names the driver
 * whose snapshot holds its rootfs, and only the current driver's are listed and found (the others
 * reappear once berthd runs their driver again). A hidden container keeps its name, its volumes and its
 * runtime state. Records from before the driver was recorded take the driver whose storage holds
 * their snapshot (the current one when none does), once, at the first start.
 */
import type { Database } from 'better-sqlite3';
import { Conflict, NotFound } from '../errors.js';
import type { Container } from './types.js';

export class ContainerStore {
  private readonly byId = new Map<string, Container>();
  /** Other drivers' containers: left as they are. */
  private readonly hidden = new Map<string, Container>();

  /** owners(id): the drivers whose storage holds snapshot `id` (for records that name none). */
  constructor(private readonly db: Database, private readonly driver = '', owners: (id: string) => string[] = () => []) {
    db.exec(`CREATE TABLE IF NOT EXISTS containers (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      record TEXT NOT NULL
    )`);
    const unowned: Container[] = [];
    for (const row of db.prepare('SELECT record FROM containers').all() as { record: string }[]) {
      const c = JSON.parse(row.record) as Container;
      if (c.driver === undefined && driver) {
        c.driver = owners(c.id)[0] ?? driver;
        unowned.push(c);
      }
      (c.driver === undefined || c.driver === driver ? this.byId : this.hidden).set(c.id, c);
    }
    const save = db.prepare('UPDATE containers SET record = ? WHERE id = ?');
    db.transaction(() => { for (const c of unowned) save.run(JSON.stringify(c), c.id); })();
  }

  list(): Container[] {
    return [...this.byId.values()].sort((a, b) => (a.created < b.created ? 1 : -1));
  }

  /** The other storage drivers' containers, which this daemon leaves alone. */
  hiddenList(): Container[] {
    return [...this.hidden.values()];
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

  /** A container by full ID, the hidden ones included (what networks keep for them stays). */
  findAnyById(id: string): Container | undefined {
    return this.byId.get(id) ?? this.hidden.get(id);
  }

  get(idOrName: string): Container {
    const c = this.find(idOrName);
    if (!c) throw new NotFound(`No such container: ${idOrName}`);
    return c;
  }

  /** The container holding a name, hidden ones included (the database keeps names unique across drivers). */
  nameInUse(name: string): Container | undefined {
    for (const c of [...this.byId.values(), ...this.hidden.values()]) if (c.name === name) return c;
    return undefined;
  }

  /** Docker's Conflict when the name is taken; a hidden container's says whose it is. */
  checkName(name: string): void {
    const other = this.nameInUse(name);
    if (!other) return;
    if (this.hidden.has(other.id)) {
      throw new Conflict(`Conflict. The container name "/${name}" is already in use by container "${other.id}" of storage driver ${other.driver}, hidden while berthd runs ${this.driver}. You have to remove (or rename) that container under its driver to be able to reuse that name.`);
    }
    throw new Conflict(`Conflict. The container name "/${name}" is already in use by container "${other.id}". You have to remove (or rename) that container to be able to reuse that name.`);
  }

  insert(c: Container): void {
    this.checkName(c.name);
    if (this.driver) c.driver = this.driver;
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
