/**
 * volume/: named and anonymous volumes of docker's `local` driver, knowing nothing of containers
 * beyond the `users` callback the daemon wires in (which containers reference a volume).
 *
 *   create(name?, opts)   → the volume (an existing name is returned as it is, as in docker)
 *   get / list / remove / prune
 *   mountpointOf(name)    → the host directory that holds the volume's data
 *   activate(name, ref)   → before a container mounts it: mounts the filesystem of a volume made
 *                           with `-o type=…` (once, whoever comes first); returns the mountpoint
 *   deactivate(name, ref) → after: unmounts that filesystem once no other running container uses it
 *
 * On disk: <data-root>/volumes/<name>/_data, the record in the daemon's SQLite database. Create
 * makes the directory, then inserts the record; remove deletes the record, then the directory. A
 * directory without a record is what a killed daemon left of either, and recover() removes it.
 * A volume is in use while any container record (in any state) refers to it, or while a container
 * create that refers to it is in flight (reserve/unreserve).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Database } from 'better-sqlite3';
import { Conflict, InvalidParameter, NotFound } from '../errors.js';
import type { EventBus } from '../events/index.js';
import { log } from '../log.js';
import { dirSize, isMountPoint, mountLocal, unmountLocal, validateLocalOptions } from './local.js';

export { copyIntoEmpty, isEmptyDir } from './copy.js';
export type { IdShift } from '../archive/index.js';
export { mountOf } from './local.js';

/** Docker's label on volumes made for `-v /path`, an image VOLUME or `--mount` without a source. */
export const ANONYMOUS_LABEL = 'com.docker.volume.anonymous';
export const LOCAL_DRIVER = 'local';

/** A volume in the Engine API's shape (GET /volumes/{name}). */
export interface Volume {
  CreatedAt: string;
  Driver: string;
  Labels: Record<string, string> | null;
  Mountpoint: string;
  Name: string;
  Options: Record<string, string> | null;
  Scope: 'local';
}

interface VolumeRecord {
  name: string;
  createdAt: string;
  labels: Record<string, string>;
  options: Record<string, string>;
}

export interface CreateOptions {
  driver?: string;
  labels?: Record<string, string>;
  driverOpts?: Record<string, string>;
  /** The container create this is for: the volume counts as in use until it is stored. */
  reference?: string;
}

export interface VolumeUser { id: string; running: boolean }

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

function checkDriver(driver: string | undefined): void {
  if (driver && driver !== LOCAL_DRIVER) throw new NotFound(`error looking up volume plugin ${driver}: plugin "${driver}" not found`);
}

/** RFC 3339 at seconds, as docker's local driver writes CreatedAt. */
function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}

export class VolumeService {
  private readonly byName = new Map<string, VolumeRecord>();
  private readonly pending = new Map<string, Set<string>>();
  private users: (name: string) => VolumeUser[] = () => [];

  /**
   * owner: who the data dir of a new volume belongs to; under userns-remap the remapped root (as
   * with dockerd), so that root in a remapped container can write it. Default root.
   */
  constructor(private readonly db: Database, readonly root: string, private readonly events: EventBus, private readonly owner?: { uid: number; gid: number }) {
    fs.mkdirSync(root, { recursive: true, mode: 0o701 });
    db.exec('CREATE TABLE IF NOT EXISTS volumes (name TEXT PRIMARY KEY, record TEXT NOT NULL)');
    for (const row of db.prepare('SELECT record FROM volumes').all() as { record: string }[]) {
      const v = JSON.parse(row.record) as VolumeRecord;
      this.byName.set(v.name, v);
    }
  }

  /** Which containers refer to a volume (wired by the daemon once the container service exists). */
  setUsers(fn: (name: string) => VolumeUser[]): void {
    this.users = fn;
  }

  /** Start-up: directories no record owns are what a killed create or remove left. */
  async recover(): Promise<void> {
    for (const name of await fsp.readdir(this.root)) {
      if (this.byName.has(name)) continue;
      log.info('removing a volume directory without a record', { name });
      const data = path.join(this.root, name, '_data');
      try {
        unmountLocal(data);
        await fsp.rm(path.join(this.root, name), { recursive: true, force: true });
      } catch (err) {
        log.warn('removing a leftover volume directory failed', { name, error: String(err) });
      }
    }
  }

  mountpointOf(name: string): string {
    return path.join(this.root, name, '_data');
  }

  private toApi(v: VolumeRecord): Volume {
    return {
      CreatedAt: v.createdAt,
      Driver: LOCAL_DRIVER,
      Labels: Object.keys(v.labels).length ? { ...v.labels } : null,
      Mountpoint: this.mountpointOf(v.name),
      Name: v.name,
      Options: Object.keys(v.options).length ? { ...v.options } : null,
      Scope: 'local',
    };
  }

  private record(name: string): VolumeRecord {
    const v = this.byName.get(name);
    if (!v) throw new NotFound(`get ${name}: no such volume`);
    return v;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  get(name: string): Volume {
    return this.toApi(this.record(name));
  }

  list(): Volume[] {
    return [...this.byName.values()].map((v) => this.toApi(v));
  }

  isAnonymous(name: string): boolean {
    return this.byName.get(name)?.labels[ANONYMOUS_LABEL] !== undefined;
  }

  /** A new volume, or the existing one of that name (docker's create is idempotent). */
  create(name: string | undefined, opts: CreateOptions = {}): { volume: Volume; created: boolean } {
    checkDriver(opts.driver);
    const n = name || crypto.randomBytes(32).toString('hex');
    if (!NAME_RE.test(n)) {
      throw new InvalidParameter(`create ${n}: ${JSON.stringify(n)} includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`);
    }
    if (opts.reference) this.reserve(n, opts.reference);
    const existing = this.byName.get(n);
    if (existing) return { volume: this.toApi(existing), created: false };
    const options = { ...(opts.driverOpts ?? {}) };
    try {
      validateLocalOptions(options);
    } catch (err) {
      if (opts.reference) this.unreserve(n, opts.reference);
      throw new InvalidParameter(`create ${n}: ${(err as Error).message}`);
    }
    const rec: VolumeRecord = { name: n, createdAt: rfc3339(new Date()), labels: { ...(opts.labels ?? {}) }, options };
    // No await from the lookup above to the record: two creates of one name cannot interleave.
    try {
      this.makeData(n);
      this.db.prepare('INSERT INTO volumes (name, record) VALUES (?, ?)').run(n, JSON.stringify(rec));
    } catch (err) {
      if (opts.reference) this.unreserve(n, opts.reference);
      fs.rmSync(path.join(this.root, n), { recursive: true, force: true });
      throw err;
    }
    this.byName.set(n, rec);
    this.events.publish('volume', 'create', n, { driver: LOCAL_DRIVER });
    return { volume: this.toApi(rec), created: true };
  }

  /** Marks a volume as used by a container that is still being created. */
  reserve(name: string, ref: string): void {
    let s = this.pending.get(name);
    if (!s) this.pending.set(name, (s = new Set()));
    s.add(ref);
  }

  unreserve(name: string, ref: string): void {
    const s = this.pending.get(name);
    s?.delete(ref);
    if (s && s.size === 0) this.pending.delete(name);
  }

  /** Container IDs that refer to the volume. */
  refs(name: string): string[] {
    return [...new Set([...this.users(name).map((u) => u.id), ...(this.pending.get(name) ?? [])])];
  }

  /** Docker's rule: refused (409) while any container refers to it; `force` only forgives a missing one. */
  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    const v = this.byName.get(name);
    if (!v) {
      if (opts.force) return;
      throw new NotFound(`get ${name}: no such volume`);
    }
    const refs = this.refs(name);
    if (refs.length) throw new Conflict(`remove ${name}: volume is in use - [${refs.join(', ')}]`);
    unmountLocal(this.mountpointOf(name));
    this.db.prepare('DELETE FROM volumes WHERE name = ?').run(name);
    this.byName.delete(name);
    // Out of the name's way first (a '_' name is never a volume's), so a create of the same name
    // right away gets a directory of its own while this one is deleted.
    const trash = path.join(this.root, `_removing-${name}-${crypto.randomBytes(4).toString('hex')}`);
    try {
      fs.renameSync(path.join(this.root, name), trash);
      await fsp.rm(trash, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.events.publish('volume', 'destroy', name, { driver: LOCAL_DRIVER });
  }

  /** Unused volumes matching `filter` removed; by default (docker ≥ 23) only anonymous ones. */
  async prune(filter: (v: Volume) => boolean, all: boolean): Promise<{ VolumesDeleted: string[]; SpaceReclaimed: number }> {
    const deleted: string[] = [];
    let space = 0;
    for (const rec of [...this.byName.values()]) {
      const v = this.toApi(rec);
      if (!all && !this.isAnonymous(rec.name)) continue;
      if (this.refs(rec.name).length || !filter(v)) continue;
      const size = Object.keys(rec.options).length ? 0 : await dirSize(v.Mountpoint);
      try {
        await this.remove(rec.name);
      } catch (err) {
        if (err instanceof Conflict || err instanceof NotFound) continue;
        throw err;
      }
      deleted.push(rec.name);
      space += size;
    }
    this.events.publish('volume', 'prune', '', { reclaimed: String(space) });
    return { VolumesDeleted: deleted, SpaceReclaimed: space };
  }

  /** Before container `ref` mounts the volume: its filesystem mounted (for `-o type=…`), the data path returned. */
  activate(name: string): string {
    const v = this.record(name);
    const dir = this.makeData(name);
    if (v.options.type) mountLocal(dir, v.options);
    return dir;
  }

  /** The volume's data dir, made (and given to the owner) if it is not there. */
  private makeData(name: string): string {
    const dir = this.mountpointOf(name);
    if (fs.existsSync(dir)) return dir;
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    if (this.owner) fs.chownSync(dir, this.owner.uid, this.owner.gid);
    return dir;
  }

  /** After container `ref` has stopped using it: unmounted unless another running container still uses it. */
  deactivate(name: string, ref: string): void {
    const v = this.byName.get(name);
    if (!v || !v.options.type) return;
    if (this.users(name).some((u) => u.running && u.id !== ref)) return;
    const dir = this.mountpointOf(name);
    if (isMountPoint(dir)) unmountLocal(dir);
  }

  /** A size for `system df -v` and prune: bytes of its files (0 for a volume on its own filesystem that is not mounted). */
  size(name: string): Promise<number> {
    return dirSize(this.mountpointOf(this.record(name).name));
  }
}
