import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Database } from 'better-sqlite3';
import type { Readable } from 'node:stream';
import { fillOf, type ApplyResult, type LayerFill } from '../archive/index.js';
import { Conflict, InvalidParameter, NotFound } from '../errors.js';
import { log } from '../log.js';
import * as sys from '../sys/index.js';
import { fsyncPathSync } from '../util/fs.js';
import { backingFs, type Info, type PrepareOptions, type Snapshotter, type StagedLayer, type Usage } from './index.js';
import { chainIdOf } from './layer.js';
import { removeTrees } from './vfs.js';
import { FUSE_OVERLAY, type Mount } from './mount.js';

/*
 * On-disk layout (Docker's overlay2):
 *   <root>/<cacheId>/diff    the layer's files (overlay lower, or upper for a snapshot)
 *   <root>/<cacheId>/link    its short id
 *   <root>/<cacheId>/lower   "l/<short>:l/<short>..." of the layers below, nearest first
 *   <root>/<cacheId>/work    overlay workdir (snapshots only)
 *   <root>/l/<short>         -> ../<cacheId>/diff
 * Short relative lowerdirs keep 128+ layers inside the one page mount(2) accepts.
 *
 * Crash safety: a dir is built as <root>/.tmp-<cacheId>, renamed into place,
 * then its row is inserted. A dir (or link) without a row is garbage that
 * recover() deletes; removal deletes the row first, then the files.
 *
 * Metadata: committed snapshots are rows of storage_layers (named by chain ID for image layers),
 * active and view ones rows of storage_snapshots (kind 'active' | 'view'; rows from before views
 * existed get 'active'). commit() moves a row from one table to the other in one transaction: the
 * files stay where they are, since an active snapshot's dir already is a layer dir with its lower file.
 */

const LINK_DIR = 'l';
const TMP_PREFIX = '.tmp-';
const PAGE_SIZE = 4096;
/** overlayfs' own limit on lower layers (OVL_MAX_STACK). */
const MAX_LOWERS = 500;
const LINK_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

interface LayerRow {
  chain_id: string;
  diff_id: string;
  parent: string | null;
  cache_id: string;
  size: number;
}
interface SnapshotRow {
  key: string;
  parent: string | null;
  cache_id: string;
  /** Docker's init layer of snapshots made before init layers were committed snapshots of their own. */
  init_cache_id: string | null;
  kind: 'active' | 'view';
}

function newCacheId(): string {
  return crypto.randomBytes(32).toString('hex');
}

/** 26 chars of [A-Z0-9], like Docker's: short enough for 128+ layers in one mount page. */
function newLinkId(): string {
  const bytes = crypto.randomBytes(26);
  let s = '';
  for (const b of bytes) s += LINK_ALPHABET[b % LINK_ALPHABET.length];
  return s;
}

function writeFileDurable(file: string, content: string): void {
  const fd = fs.openSync(file, 'w', 0o644);
  try {
    fs.writeSync(fd, content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}


/**
 * Without a journal, ext4 will not reuse an inode freed in the last few seconds (minutes while its
 * table block is dirty), and every file created scans past all of them from the start of its block
 * group: after `rmi` of a Debian layer, creating each of the next layer's files cost ~0.8 ms here
 * instead of ~20 µs. The top-directory flag makes ext4 place each layer dir in a fresh block group
 * of its own (Orlov), away from the inodes just freed. Other filesystems lack the flag: no harm.
 */
function spreadSubdirs(root: string): void {
  try {
    sys.addInodeFlags(root, sys.FS_TOPDIR_FL);
  } catch (err) {
    log.debug('storage: no top-directory flag on this filesystem', { root, err: String(err) });
  }
}

/**
 * The trash is emptied by one `rm -rf` (a child process: fs.promises.rm walks a tree with one
 * main-thread round trip per entry, about a second of the daemon's time for a Debian layer) for all
 * that the removals of the last TRASH_DELAY_MS left: each spawn holds the event loop for 1–4 ms, and
 * `run --rm` removes two trees.
 */
const TRASH_DELAY_MS = 1000;

/**
 * Docker limits an overlay2 container's upper dir with an xfs project quota, on xfs mounted with pquota
 * only. This kernel has no XFS quota support (CONFIG_XFS_QUOTA), so berth cannot test, and does not
 * carry, that code: every case is refused, and this says where root stands.
 */
export function quotaUnsupported(root: string): string {
  const b = backingFs(root);
  const opts = mountOptionsOf(root);
  if (b.name !== 'xfs') return `${root} is on ${b.name}`;
  // The kernel's xfs quota code (CONFIG_XFS_QUOTA) makes /proc/fs/xfs/xqmstat; without it pquota does not mount.
  if (!fs.existsSync('/proc/fs/xfs/xqmstat')) return `${root} is on xfs, but this kernel has no xfs quota support (CONFIG_XFS_QUOTA is not set), so project quotas cannot be enabled`;
  if (!opts.includes('prjquota') && !opts.includes('pquota')) return `${root} is on xfs without pquota`;
  return `${root} is on xfs with pquota, but berth does not implement xfs project quotas yet`;
}

/** The mount options of the filesystem holding dir (its longest mount-point prefix in /proc/self/mounts). */
function mountOptionsOf(dir: string): string[] {
  let best = { at: '', opts: [] as string[] };
  for (const line of fs.readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const f = line.split(' ');
    const at = f[1]?.replace(/\\040/g, ' ');
    if (!at || !f[3]) continue;
    if ((dir === at || dir.startsWith(at.endsWith('/') ? at : `${at}/`)) && at.length >= best.at.length) best = { at, opts: f[3].split(',') };
  }
  return best.opts;
}

/** Is an executable `name` on PATH? */
export function onPath(name: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin').split(':').some((d) => {
    try {
      fs.accessSync(path.join(d, name), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** overlay's module parameter, "Y"/"N"; absent when overlay is built in without it. */
function overlayParam(name: string): boolean {
  try {
    return fs.readFileSync(`/sys/module/overlay/parameters/${name}`, 'utf8').trim() === 'Y';
  } catch {
    return false;
  }
}

/**
 * The two drivers that share this layout and whiteout format: the kernel's overlay, and fuse-overlayfs
 * (a FUSE server that reads the same lower/upper/work dirs, for hosts or user namespaces where kernel
 * overlay mounts are not allowed). Each has its own folder and tables.
 */
interface Flavor {
  driver: 'overlay2' | 'fuse-overlayfs';
  mountType: string;
  /** Kernel-only mount options. */
  extraOptions: string[];
  tables: { layers: string; snapshots: string };
}

/** Each flavor's tables: committed layers (chain_id) and active/view snapshots (key). */
export const OVERLAY_TABLES = {
  overlay2: { layers: 'storage_layers', snapshots: 'storage_snapshots' },
  'fuse-overlayfs': { layers: 'storage_fuse_overlayfs_layers', snapshots: 'storage_fuse_overlayfs_snapshots' },
} as const;
const KERNEL: Flavor = { driver: 'overlay2', mountType: 'overlay', extraOptions: ['index=off'], tables: OVERLAY_TABLES.overlay2 };
const FUSE: Flavor = { driver: 'fuse-overlayfs', mountType: FUSE_OVERLAY, extraOptions: [], tables: OVERLAY_TABLES['fuse-overlayfs'] };

class Overlay2 implements Snapshotter {
  readonly whiteouts = 'overlay' as const;
  readonly driver: string;
  private readonly t: Flavor['tables'];
  /**
   * Removed dirs are renamed here and deleted in the background, so `rmi` and `rm`
   * return at once; recover() empties it after a crash. A sibling of root, on the
   * same filesystem, so the rename is atomic and root lists only live dirs.
   */
  private readonly trash: string;
  private deleting: Promise<void> = Promise.resolve();
  private doomed: string[] = [];
  private emptying: NodeJS.Timeout | null = null;

  constructor(
    private readonly root: string,
    private readonly db: Database,
    private readonly flavor: Flavor = KERNEL,
  ) {
    this.driver = flavor.driver;
    this.t = flavor.tables;
    fs.mkdirSync(path.join(root, LINK_DIR), { recursive: true, mode: 0o700 });
    spreadSubdirs(root);
    this.trash = `${root}.trash`;
    fs.mkdirSync(this.trash, { recursive: true, mode: 0o700 });
    const t = this.t;
    db.exec(`
      CREATE TABLE IF NOT EXISTS ${t.layers} (
        chain_id TEXT PRIMARY KEY,
        diff_id TEXT NOT NULL,
        parent TEXT REFERENCES ${t.layers}(chain_id),
        cache_id TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS ${t.layers}_parent ON ${t.layers}(parent);
      CREATE TABLE IF NOT EXISTS ${t.snapshots} (
        key TEXT PRIMARY KEY,
        parent TEXT REFERENCES ${t.layers}(chain_id),
        cache_id TEXT NOT NULL UNIQUE,
        init_cache_id TEXT
      );
    `);
    const cols = db.prepare(`PRAGMA table_info(${t.snapshots})`).all() as { name: string }[];
    if (!cols.some((c) => c.name === 'kind')) {
      db.exec(`ALTER TABLE ${t.snapshots} ADD COLUMN kind TEXT NOT NULL DEFAULT 'active' CHECK (kind IN ('active', 'view'))`);
    }
  }

  status(): [string, string][] {
    const b = backingFs(this.root);
    if (this.flavor === FUSE) return [['Backing Filesystem', b.name], ['Supports d_type', String(b.dType)], ['Native Overlay Diff', 'true']];
    return [
      ['Backing Filesystem', b.name],
      ['Supports d_type', String(b.dType)],
      ['Using metacopy', String(overlayParam('metacopy'))],
      // berth reads diffs from the upper dir itself, without redirect_dir/metacopy surprises.
      ['Native Overlay Diff', 'true'],
      ['userxattr', 'false'],
    ];
  }

  private dir(cacheId: string, sub?: string): string {
    return sub ? path.join(this.root, cacheId, sub) : path.join(this.root, cacheId);
  }

  private layerRow(chainId: string): LayerRow | undefined {
    return this.db.prepare(`SELECT * FROM ${this.t.layers} WHERE chain_id = ?`).get(chainId) as LayerRow | undefined;
  }

  private snapshotRow(key: string): SnapshotRow | undefined {
    return this.db.prepare(`SELECT * FROM ${this.t.snapshots} WHERE key = ?`).get(key) as SnapshotRow | undefined;
  }

  private static info(row: LayerRow): Info {
    return { name: row.chain_id, kind: 'committed', parent: row.parent, size: row.size };
  }

  private static snapshotInfo(row: SnapshotRow): Info {
    return { name: row.key, kind: row.kind, parent: row.parent, size: 0 };
  }

  /** Short names of a committed layer and everything below it, nearest first. */
  private lowersOf(cacheId: string): string[] {
    const link = fs.readFileSync(this.dir(cacheId, 'link'), 'utf8').trim();
    let lower = '';
    try {
      lower = fs.readFileSync(this.dir(cacheId, 'lower'), 'utf8').trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return [`${LINK_DIR}/${link}`, ...(lower ? lower.split(':') : [])];
  }

  /** Lowers for a new dir on top of committed layer `parent` (null: none). */
  private lowersFor(parent: string | null): string[] {
    if (parent === null) return [];
    const p = this.layerRow(parent);
    if (!p) throw new NotFound(`parent layer ${parent} does not exist in ${this.driver} storage (an image pulled under another storage driver must be pulled again)`);
    return this.lowersOf(p.cache_id);
  }

  /** A fresh <root>/.tmp-<id>/diff: invisible until publish(); recover() removes it after a crash. */
  private stage(): { cacheId: string; diff: string } {
    const cacheId = newCacheId();
    const tmp = path.join(this.root, TMP_PREFIX + cacheId);
    try {
      fs.mkdirSync(path.join(tmp, 'diff'), { recursive: true, mode: 0o755 });
      fs.chmodSync(tmp, 0o710);
    } catch (err) {
      this.discard(cacheId);
      throw err;
    }
    return { cacheId, diff: path.join(tmp, 'diff') };
  }

  /** Give a staged dir its link, lower (and work) files, rename it into place and add the l/ link. The caller inserts the row. */
  private publish(cacheId: string, lowers: string[], withWork: boolean): string {
    const link = newLinkId();
    const tmp = path.join(this.root, TMP_PREFIX + cacheId);
    try {
      if (withWork) fs.mkdirSync(path.join(tmp, 'work'), { mode: 0o700 });
      writeFileDurable(path.join(tmp, 'link'), link);
      if (lowers.length) writeFileDurable(path.join(tmp, 'lower'), lowers.join(':'));
      fsyncPathSync(tmp);
      fs.renameSync(tmp, this.dir(cacheId));
      fs.symlinkSync(`../${cacheId}/diff`, path.join(this.root, LINK_DIR, link));
      fsyncPathSync(this.root);
    } catch (err) {
      this.discard(cacheId);
      throw err;
    }
    return link;
  }

  /** stage(), let `fill` populate diff, publish(). */
  private async build(lowers: string[], withWork: boolean, fill?: (diff: string) => Promise<void>): Promise<{ cacheId: string; link: string }> {
    const { cacheId, diff } = this.stage();
    try {
      if (fill) await fill(diff);
    } catch (err) {
      this.discard(cacheId);
      throw err;
    }
    return { cacheId, link: this.publish(cacheId, lowers, withWork) };
  }

  /** Delete a cache dir (staged or final) and its short link. Best effort, idempotent. */
  private discard(cacheId: string | null): void {
    if (!cacheId) return;
    for (const d of [this.dir(cacheId), path.join(this.root, TMP_PREFIX + cacheId)]) {
      try {
        const link = fs.readFileSync(path.join(d, 'link'), 'utf8').trim();
        if (link) fs.rmSync(path.join(this.root, LINK_DIR, link), { force: true });
      } catch {
        // no link file: nothing to unlink
      }
      const doomed = path.join(this.trash, `${path.basename(d)}-${crypto.randomBytes(4).toString('hex')}`);
      try {
        fs.renameSync(d, doomed);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      this.emptyTrashSoon(doomed);
    }
  }

  private emptyTrashSoon(doomed: string): void {
    this.doomed.push(doomed);
    this.emptying ??= setTimeout(() => {
      this.emptying = null;
      const dirs = this.doomed.splice(0);
      this.deleting = this.deleting.then(() =>
        removeTrees(dirs).catch((e: unknown) => log.warn('background delete failed', { dirs, error: String(e) })),
      );
    }, TRASH_DELAY_MS);
    // A daemon that stops meanwhile leaves the rest to recover().
    this.emptying.unref();
  }

  stat(name: string): Info | null {
    const layer = this.layerRow(name);
    if (layer) return Overlay2.info(layer);
    const snap = this.snapshotRow(name);
    return snap ? Overlay2.snapshotInfo(snap) : null;
  }

  walk(): Info[] {
    const layers = (this.db.prepare(`SELECT * FROM ${this.t.layers}`).all() as LayerRow[]).map(Overlay2.info);
    const snaps = (this.db.prepare(`SELECT * FROM ${this.t.snapshots}`).all() as SnapshotRow[]).map(Overlay2.snapshotInfo);
    return [...layers, ...snaps];
  }

  async stageLayer(source: Readable | LayerFill): Promise<StagedLayer> {
    const { cacheId, diff } = this.stage();
    let result: ApplyResult;
    try {
      result = await fillOf(source)({ dir: diff, whiteouts: 'overlay' });
    } catch (err) {
      this.discard(cacheId);
      throw err;
    }
    let settled = false;
    return {
      diffId: result.diffId,
      size: result.size,
      commit: (parent) => {
        if (settled) throw new Error('staged layer already committed or discarded');
        settled = true;
        return this.commitStaged(cacheId, parent, result);
      },
      discard: () => {
        if (settled) return;
        settled = true;
        this.discard(cacheId);
      },
    };
  }

  private commitStaged(cacheId: string, parent: string | null, result: ApplyResult): Info {
    let lowers: string[];
    try {
      lowers = this.lowersFor(parent);
      if (lowers.length >= MAX_LOWERS) throw new InvalidParameter(`max depth exceeded: overlay supports at most ${MAX_LOWERS} layers`);
    } catch (err) {
      this.discard(cacheId);
      throw err;
    }
    this.publish(cacheId, lowers, false);
    const chainId = chainIdOf(parent, result.diffId);
    const inserted = this.db
      .prepare(`INSERT OR IGNORE INTO ${this.t.layers} (chain_id, diff_id, parent, cache_id, size) VALUES (?, ?, ?, ?, ?)`)
      .run(chainId, result.diffId, parent, cacheId, result.size);
    if (inserted.changes === 0) {
      this.discard(cacheId);
      log.debug('layer already present', { chainId });
    } else {
      log.debug('layer committed', { chainId, cacheId, size: result.size });
    }
    return Overlay2.info(this.layerRow(chainId) as LayerRow);
  }

  private removeLayer(row: LayerRow): void {
    const chainId = row.chain_id;
    const child = this.db.prepare(`SELECT chain_id FROM ${this.t.layers} WHERE parent = ? LIMIT 1`).get(chainId) as { chain_id: string } | undefined;
    if (child) throw new Conflict(`layer ${chainId} is in use by layer ${child.chain_id}`);
    const snap = this.db.prepare(`SELECT key FROM ${this.t.snapshots} WHERE parent = ? LIMIT 1`).get(chainId) as { key: string } | undefined;
    if (snap) throw new Conflict(`layer ${chainId} is in use by snapshot ${snap.key}`);
    this.db.prepare(`DELETE FROM ${this.t.layers} WHERE chain_id = ?`).run(chainId);
    this.discard(row.cache_id);
  }

  prepare(key: string, parent: string | null, opts: PrepareOptions = {}): Promise<Mount[]> {
    if (opts.size !== undefined) this.refuseQuota();
    return this.create(key, parent, 'active');
  }

  private refuseQuota(): never {
    if (this.flavor === FUSE) throw new InvalidParameter('--storage-opt is not supported for fuse-overlayfs');
    throw new InvalidParameter(`--storage-opt is supported only for overlay over xfs with 'pquota' mount option (${quotaUnsupported(this.root)})`);
  }

  view(key: string, parent: string | null): Promise<Mount[]> {
    return this.create(key, parent, 'view');
  }

  private async create(key: string, parent: string | null, kind: 'active' | 'view'): Promise<Mount[]> {
    if (this.snapshotRow(key) || this.layerRow(key)) throw new Conflict(`snapshot ${key} already exists`);
    const lowers = this.lowersFor(parent);
    let cacheId: string | null = null;
    try {
      cacheId = (await this.build(lowers, kind === 'active')).cacheId;
      if (lowers.length === 0) fs.mkdirSync(this.dir(cacheId, 'empty'), { mode: 0o755 });
      this.checkMountable(cacheId, kind === 'view' ? [`${cacheId}/diff`, ...lowers] : lowers);
      this.db
        .prepare(`INSERT INTO ${this.t.snapshots} (key, parent, cache_id, init_cache_id, kind) VALUES (?, ?, ?, NULL, ?)`)
        .run(key, parent, cacheId, kind);
    } catch (err) {
      this.discard(cacheId);
      if (err instanceof Error && (err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        throw new Conflict(`snapshot ${key} already exists`);
      }
      throw err;
    }
    return this.mounts(key);
  }

  async commit(name: string, key: string): Promise<Info> {
    const row = this.snapshotRow(key);
    if (!row) throw new NotFound(`snapshot ${key} does not exist`);
    if (row.kind !== 'active') throw new InvalidParameter(`snapshot ${key} is a ${row.kind}, only an active snapshot can be committed`);
    if (row.init_cache_id) throw new InvalidParameter(`snapshot ${key} has a built-in init layer and cannot be committed`);
    if (this.layerRow(name)) throw new Conflict(`snapshot ${name} already exists`);
    const { size } = await this.usage(key);
    this.db.transaction(() => {
      this.db.prepare(`DELETE FROM ${this.t.snapshots} WHERE key = ?`).run(key);
      this.db.prepare(`INSERT INTO ${this.t.layers} (chain_id, diff_id, parent, cache_id, size) VALUES (?, '', ?, ?, ?)`)
        .run(name, row.parent, row.cache_id, size);
    })();
    return Overlay2.info(this.layerRow(name)!);
  }

  private overlayOptions(cacheId: string, lowers: string[]): string[] {
    const lowerdir = lowers.length ? lowers.join(':') : `${cacheId}/empty`;
    return [...this.flavor.extraOptions, `lowerdir=${lowerdir}`, `upperdir=${cacheId}/diff`, `workdir=${cacheId}/work`];
  }

  private checkMountable(cacheId: string, lowers: string[]): void {
    if (lowers.length > MAX_LOWERS) throw new InvalidParameter(`max depth exceeded: overlay supports at most ${MAX_LOWERS} layers`);
    const len = this.overlayOptions(cacheId, lowers).join(',').length;
    if (len >= PAGE_SIZE) {
      throw new InvalidParameter(
        `too many layers (${lowers.length}): overlay mount options would be ${len} bytes, more than the ${PAGE_SIZE - 1} mount(2) accepts`,
      );
    }
  }

  mounts(key: string): Mount[] {
    const row = this.snapshotRow(key);
    if (!row) throw new NotFound(`snapshot ${key} does not exist in ${this.driver} storage`);
    let lowers: string[] = [];
    try {
      lowers = fs.readFileSync(this.dir(row.cache_id, 'lower'), 'utf8').trim().split(':').filter(Boolean);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (row.kind === 'view') {
      // No upperdir: overlayfs mounts it read-only. Its own (empty) diff keeps two lowers even on an empty parent.
      const lowerdir = [`${row.cache_id}/diff`, ...(lowers.length ? lowers : [`${row.cache_id}/empty`])].join(':');
      return [{ type: this.flavor.mountType, source: 'overlay', options: ['ro', ...this.flavor.extraOptions, `lowerdir=${lowerdir}`], cwd: this.root }];
    }
    return [{ type: this.flavor.mountType, source: 'overlay', options: this.overlayOptions(row.cache_id, lowers), cwd: this.root }];
  }

  async remove(keyOrName: string): Promise<void> {
    const row = this.snapshotRow(keyOrName);
    if (row) {
      this.db.prepare(`DELETE FROM ${this.t.snapshots} WHERE key = ?`).run(keyOrName);
      this.discard(row.cache_id);
      this.discard(row.init_cache_id);
      return;
    }
    const layer = this.layerRow(keyOrName);
    if (!layer) throw new NotFound(`snapshot ${keyOrName} does not exist`);
    this.removeLayer(layer);
  }

  async usage(key: string): Promise<Usage> {
    const cacheId = this.snapshotRow(key)?.cache_id ?? this.layerRow(key)?.cache_id;
    if (!cacheId) throw new NotFound(`snapshot ${key} does not exist`);
    const upper = this.dir(cacheId, 'diff');
    const seen = new Set<string>();
    let total = 0;
    let inodes = 0;
    const visit = async (dir: string): Promise<void> => {
      for (const e of await fs.promises.readdir(dir, { withFileTypes: true })) {
        const full = path.join(dir, e.name);
        const st = await fs.promises.lstat(full);
        if (st.nlink > 1 && !st.isDirectory()) {
          const id = `${st.dev}:${st.ino}`;
          if (seen.has(id)) continue;
          seen.add(id);
        }
        inodes++;
        if (!st.isDirectory()) total += st.size;
        else await visit(full);
      }
    };
    await visit(upper);
    return { size: total, inodes };
  }

  async recover(): Promise<void> {
    await this.deleting;
    for (const name of fs.readdirSync(this.trash)) fs.rmSync(path.join(this.trash, name), { recursive: true, force: true });
    const known = new Set<string>();
    for (const r of this.db.prepare(`SELECT cache_id FROM ${this.t.layers}`).all() as { cache_id: string }[]) known.add(r.cache_id);
    for (const r of this.db.prepare(`SELECT cache_id, init_cache_id FROM ${this.t.snapshots}`).all() as { cache_id: string; init_cache_id: string | null }[]) {
      known.add(r.cache_id);
      if (r.init_cache_id) known.add(r.init_cache_id);
    }
    for (const name of fs.readdirSync(this.root)) {
      if (name === LINK_DIR || known.has(name)) continue;
      log.warn('removing leftover storage dir', { dir: name });
      fs.rmSync(path.join(this.root, name), { recursive: true, force: true });
    }
    // Links whose layer is gone (or never got its row).
    const linkDir = path.join(this.root, LINK_DIR);
    for (const name of fs.readdirSync(linkDir)) {
      const target = fs.readlinkSync(path.join(linkDir, name));
      const cacheId = target.split('/')[1];
      if (!known.has(cacheId)) fs.rmSync(path.join(linkDir, name), { force: true });
    }
    for (const id of known) {
      if (!fs.existsSync(this.dir(id, 'diff'))) log.error('storage dir missing for a recorded layer or snapshot', { cacheId: id });
    }
  }
}

/** The overlay2 snapshotter rooted at <data-root>/overlay2, with its metadata in `db`. */
export function openOverlay2(root: string, db: Database): Snapshotter {
  return new Overlay2(path.resolve(root), db);
}

/** The fuse-overlayfs snapshotter rooted at <data-root>/fuse-overlayfs: overlay2's layout, mounted by the fuse-overlayfs program. */
export function openFuseOverlayfs(root: string, db: Database): Snapshotter {
  const missing = [];
  if (!onPath('fuse-overlayfs')) missing.push('the fuse-overlayfs program (install the Debian package fuse-overlayfs)');
  if (!fs.existsSync('/dev/fuse')) missing.push('/dev/fuse');
  if (missing.length) throw new InvalidParameter(`error initializing graphdriver: fuse-overlayfs needs ${missing.join(' and ')}`);
  return new Overlay2(path.resolve(root), db, FUSE);
}
