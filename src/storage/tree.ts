/**
 * Snapshotters whose every snapshot is a whole directory tree of its own (vfs: a full copy; btrfs: a
 * subvolume snapshot). The tree is bind-mounted; a view of a committed tree is that tree bind-mounted
 * read-only (committed trees never change), so it costs nothing. Whiteouts are real deletions, and a
 * snapshot's own layer is what the walking differ finds between it and its parent.
 *
 * Layout: <root>/<dirName>/<id>, one per active snapshot or committed layer, plus <root>/empty-<id> for
 * a view of nothing. Metadata: one table per driver (storage_<driver>_snapshots). Crash safety: a tree
 * is made first and its row inserted after; removal deletes the row first. A tree without a row is what
 * a crash left, and recover() deletes it.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Database } from 'better-sqlite3';
import { Conflict, InvalidParameter, NotFound } from '../errors.js';
import { log } from '../log.js';
import { changesUsage, walkChanges } from './changes.js';
import type { Info, PrepareOptions, Snapshotter, SnapshotKind, Usage } from './index.js';
import { unmountStale, type Mount } from './mount.js';

/** How one driver makes, copies and deletes trees. */
export interface TreeBackend {
  readonly driver: string;
  /** Folder under root that holds the trees ("dir" for vfs, "subvolumes" for btrfs, as Docker names them). */
  readonly dirName: string;
  /** A new empty tree at `dir` (which does not exist yet). */
  create(dir: string): Promise<void>;
  /** A new writable tree at `dir` with the contents of `src`. */
  clone(src: string, dir: string): Promise<void>;
  /** Delete a tree made by create/clone; gone already is fine. */
  destroy(dir: string): Promise<void>;
  /** Apply a per-snapshot size limit (bytes) to a tree just made; absent: the driver has none. */
  limit?(dir: string, bytes: number): Promise<void>;
  status(): [string, string][];
}

interface Row {
  name: string;
  kind: SnapshotKind;
  parent: string | null;
  /** Its tree under <root>/<dirName>; null for a view of a committed tree (it shows the parent's). */
  id: string | null;
  size: number;
  /** ctime (ns, decimal) taken right after its tree was made: what is older in it came from the parent as it was. */
  since: string | null;
}

const EMPTY_VIEW = 'empty';

/** The one table of a tree driver's snapshots, every kind (name = chain ID or key). */
export function treeTable(driver: string): string {
  return `storage_${driver.replace(/[^a-z0-9]/g, '_')}_snapshots`;
}

export class TreeSnapshotter implements Snapshotter {
  readonly whiteouts = 'delete' as const;
  private readonly table: string;
  private readonly trees: string;

  constructor(
    private readonly backend: TreeBackend,
    private readonly root: string,
    private readonly db: Database,
  ) {
    this.trees = path.join(root, backend.dirName);
    fs.mkdirSync(this.trees, { recursive: true, mode: 0o700 });
    this.table = treeTable(backend.driver);
    db.exec(`
      CREATE TABLE IF NOT EXISTS ${this.table} (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
        parent TEXT REFERENCES ${this.table}(name),
        id TEXT UNIQUE,
        size INTEGER NOT NULL,
        since TEXT
      );
      CREATE INDEX IF NOT EXISTS ${this.table}_parent ON ${this.table}(parent);
    `);
  }

  get driver(): string {
    return this.backend.driver;
  }

  status(): [string, string][] {
    return this.backend.status();
  }

  private row(name: string): Row | undefined {
    return this.db.prepare(`SELECT * FROM ${this.table} WHERE name = ?`).get(name) as Row | undefined;
  }

  private static info(r: Row): Info {
    return { name: r.name, kind: r.kind, parent: r.parent, size: r.kind === 'committed' ? r.size : 0 };
  }

  private treeOf(r: Row): string {
    if (r.id) return r.id.startsWith(EMPTY_VIEW) ? path.join(this.root, r.id) : path.join(this.trees, r.id);
    return this.treeOf(this.committed(r.parent!));
  }

  private committed(name: string): Row {
    const r = this.row(name);
    if (!r || r.kind !== 'committed') throw new NotFound(`parent layer ${name} does not exist in ${this.driver} storage (an image pulled under another storage driver must be pulled again)`);
    return r;
  }

  stat(name: string): Info | null {
    const r = this.row(name);
    return r ? TreeSnapshotter.info(r) : null;
  }

  walk(): Info[] {
    return (this.db.prepare(`SELECT * FROM ${this.table}`).all() as Row[]).map(TreeSnapshotter.info);
  }

  async prepare(key: string, parent: string | null, opts: PrepareOptions = {}): Promise<Mount[]> {
    if (this.row(key)) throw new Conflict(`snapshot ${key} already exists`);
    if (opts.size !== undefined && !this.backend.limit) {
      throw new InvalidParameter(`--storage-opt is not supported for ${this.driver}`);
    }
    const p = parent === null ? null : this.committed(parent);
    const id = crypto.randomBytes(32).toString('hex');
    const dir = path.join(this.trees, id);
    try {
      if (p) await this.backend.clone(this.treeOf(p), dir);
      else await this.backend.create(dir);
      const since = this.now();
      if (opts.size !== undefined) await this.backend.limit!(dir, opts.size);
      this.insert({ name: key, kind: 'active', parent, id, size: 0, since: String(since) });
    } catch (err) {
      await this.backend.destroy(dir).catch(() => {});
      throw err;
    }
    return this.mounts(key);
  }

  async view(key: string, parent: string | null): Promise<Mount[]> {
    if (this.row(key)) throw new Conflict(`snapshot ${key} already exists`);
    if (parent !== null) {
      this.committed(parent);
      this.insert({ name: key, kind: 'view', parent, id: null, size: 0, since: null });
      return this.mounts(key);
    }
    const id = `${EMPTY_VIEW}-${crypto.randomBytes(16).toString('hex')}`;
    const dir = path.join(this.root, id);
    fs.mkdirSync(dir, { mode: 0o755 });
    try {
      this.insert({ name: key, kind: 'view', parent: null, id, size: 0, since: null });
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return this.mounts(key);
  }

  private insert(r: Row): void {
    try {
      this.db.prepare(`INSERT INTO ${this.table} (name, kind, parent, id, size, since) VALUES (?, ?, ?, ?, ?, ?)`).run(r.name, r.kind, r.parent, r.id, r.size, r.since);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new Conflict(`snapshot ${r.name} already exists`);
      throw err;
    }
  }

  async commit(name: string, key: string): Promise<Info> {
    const r = this.row(key);
    if (!r) throw new NotFound(`snapshot ${key} does not exist`);
    if (r.kind !== 'active') throw new InvalidParameter(`snapshot ${key} is a ${r.kind}, only an active snapshot can be committed`);
    if (name !== key && this.row(name)) throw new Conflict(`snapshot ${name} already exists`);
    const { size } = await this.usage(key);
    this.db.transaction(() => {
      if (name !== key && this.row(name)) throw new Conflict(`snapshot ${name} already exists`);
      this.db.prepare(`UPDATE ${this.table} SET name = ?, kind = 'committed', size = ? WHERE name = ?`).run(name, size, key);
    })();
    return TreeSnapshotter.info(this.row(name)!);
  }

  mounts(key: string): Mount[] {
    const r = this.row(key);
    if (!r || r.kind === 'committed') throw new NotFound(`snapshot ${key} does not exist in ${this.driver} storage`);
    return [{ type: 'bind', source: this.treeOf(r), options: r.kind === 'view' ? ['bind', 'ro'] : ['bind', 'rw'] }];
  }

  async remove(keyOrName: string): Promise<void> {
    const r = this.row(keyOrName);
    if (!r) throw new NotFound(`snapshot ${keyOrName} does not exist`);
    const child = this.db.prepare(`SELECT name FROM ${this.table} WHERE parent = ? LIMIT 1`).get(r.name) as { name: string } | undefined;
    if (child) throw new Conflict(`snapshot ${r.name} is in use by snapshot ${child.name}`);
    this.db.prepare(`DELETE FROM ${this.table} WHERE name = ?`).run(r.name);
    if (!r.id) return;
    if (r.id.startsWith(EMPTY_VIEW)) fs.rmSync(path.join(this.root, r.id), { recursive: true, force: true });
    else await this.backend.destroy(path.join(this.trees, r.id));
  }

  /** The filesystem's own clock (a file's ctime, ns), which is what the trees' ctimes are compared with. */
  private now(): bigint {
    const probe = path.join(this.root, `.now-${crypto.randomBytes(8).toString('hex')}`);
    fs.writeFileSync(probe, '');
    try {
      return fs.lstatSync(probe, { bigint: true }).ctimeNs;
    } finally {
      fs.rmSync(probe, { force: true });
    }
  }

  baseline(key: string): bigint | null {
    const since = this.row(key)?.since;
    return since ? BigInt(since) : null;
  }

  async usage(key: string): Promise<Usage> {
    const r = this.row(key);
    if (!r) throw new NotFound(`snapshot ${key} does not exist`);
    if (r.kind === 'view') return { size: 0, inodes: 0 };
    const tree = this.treeOf(r);
    const lower = r.parent === null ? null : this.treeOf(this.committed(r.parent));
    return changesUsage(tree, walkChanges(lower, tree, this.baseline(key)));
  }

  async recover(): Promise<void> {
    for (const at of unmountStale(this.root)) log.warn('unmounted a mount a crash left', { driver: this.driver, at });
    const known = new Set((this.db.prepare(`SELECT id FROM ${this.table} WHERE id IS NOT NULL`).all() as { id: string }[]).map((r) => r.id));
    for (const name of fs.readdirSync(this.trees)) {
      if (known.has(name)) continue;
      log.warn('removing leftover storage dir', { driver: this.driver, dir: name });
      await this.backend.destroy(path.join(this.trees, name));
    }
    for (const name of fs.readdirSync(this.root)) {
      if ((name.startsWith(`${EMPTY_VIEW}-`) && !known.has(name)) || name.startsWith('.now-')) fs.rmSync(path.join(this.root, name), { recursive: true, force: true });
    }
  }
}
