/**
 * Image store: which images exist, and which names point at them.
 *
 * An image is its config blob (in content/, its digest is the image ID, as in Docker) plus the layer
 * chain that config's rootfs.diff_ids describes (committed in storage/, keyed by chain ID). The store
 * keeps only metadata, in SQLite tables of the storage driver's own (as Docker's image/<driver>/), so
 * switching drivers hides the other driver's images and switching back finds them:
 *   image_<driver>_images(id, config_digest, manifest_digest, parent, created, added_at)
 *   image_<driver>_refs(ref, image_id, kind)    kind 'tag' → "docker.io/library/busybox:latest"
 *                                                kind 'digest' → "docker.io/library/busybox@sha256:…"
 * Content blobs are shared by all drivers: GC keeps those any driver's images use. Data roots from
 * before hold one shared image_images/image_refs; the first start moves each image to the drivers
 * whose storage holds all its layers (see migrateShared).
 * Lifecycle: blobs and layers are written first (pull, import, build), then add() records the image and
 * its names in one transaction; remove() drops the rows in one transaction, then collect() removes the
 * layers and blobs no image uses and no lease (content/lease.ts) holds. collect() is the one GC path:
 * a failed pull or import calls it too, for what it made. A crash between the steps leaves only
 * unreferenced blobs/layers behind, never a row pointing at nothing; a later GC may collect them.
 *
 * Configs are read once and kept in memory; names are always read from the database.
 */
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import { Conflict, InvalidParameter, NotFound } from '../errors.js';
import { log } from '../log.js';
import type { ContentStore } from '../content/index.js';
import { digestHex } from '../content/index.js';
import {
  familiarString, formatReference, parseNormalizedNamed, parseReference, repositoryName, type Reference,
} from './reference.js';

export type Database = BetterSqlite3.Database;

/** The part of storage/'s Snapshotter the image store needs (the real Snapshotter satisfies it). */
export interface LayerStore {
  /** The storage driver's name: the image records are its own. */
  readonly driver?: string;
  /** A committed layer by chain ID (null if absent). */
  stat(name: string): { size: number } | null;
  /** Conflict while a child or container uses it; NotFound if absent. */
  remove(name: string): Promise<void>;
}

export interface HealthConfig { Test?: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; StartInterval?: number; Retries?: number }
/** The runtime defaults of an image (OCI "config" object; Docker's field names). */
export interface ContainerConfig {
  User?: string;
  Env?: string[] | null;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  ExposedPorts?: Record<string, Record<string, never>>;
  Volumes?: Record<string, Record<string, never>> | null;
  StopSignal?: string;
  ArgsEscaped?: boolean;
  Healthcheck?: HealthConfig;
  OnBuild?: string[] | null;
  Shell?: string[];
}
export interface HistoryEntry { created?: string; author?: string; created_by?: string; comment?: string; empty_layer?: boolean }
/** OCI image config (application/vnd.oci.image.config.v1+json). */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  config?: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: HistoryEntry[];
}

export interface ImageLayer { diffId: string; chainId: string; size: number }
export interface Image {
  id: string;
  config: ImageConfig;
  repoTags: string[];
  repoDigests: string[];
  created: string;
  size: number;
  parent: string;
  layers: ImageLayer[];
  manifestDigest: string | null;
}

export interface HistoryItem { Id: string; Created: number; CreatedBy: string; Tags: string[] | null; Size: number; Comment: string }
export type DeleteItem = { Untagged: string } | { Deleted: string };
export interface ContainerUse { id: string; running: boolean }

export interface ImageStore {
  /** Record an image whose config blob is in content and whose layers are committed in storage. Atomic.
   *  tags: references (any form parseReference accepts); repoDigest: "name@sha256:…"; parent: build parent. */
  add(configDigest: string, opts?: { tags?: string[]; manifestDigest?: string; repoDigest?: string; parent?: string }): Image;
  /** Full ID, then name[:tag] / name@digest, then unique ID prefix. NotFound("No such image: <input>"). */
  resolve(nameOrId: string): Image;
  get(id: string): Image | null;
  list(): Image[];
  /** Points ref (":latest" if untagged) at the image, moving it off any other image. */
  tag(id: string, ref: string): void;
  /** Removes a tag or digest reference; returns the image ID it pointed to, or null. */
  untag(ref: string): string | null;
  history(nameOrId: string): HistoryItem[];
  /** docker rmi semantics; usedBy(id) lists containers created from the image. */
  remove(nameOrId: string, opts: { force: boolean; noprune: boolean }, usedBy: (imageId: string) => ContainerUse[]): Promise<DeleteItem[]>;
  /** Garbage collection: remove those of `layers` (chain order, top last) and `blobs` that no image uses and
   *  no lease holds. Returns the chain IDs of the layers removed, top first. */
  collect(what: { layers?: string[]; blobs?: Iterable<string> }): Promise<string[]>;
}

interface Base {
  id: string;
  config: ImageConfig;
  manifestDigest: string | null;
  parent: string;
  layers: ImageLayer[];
  blobs: Set<string>;
}
interface ImageRow { id: string; config_digest: string; manifest_digest: string | null; parent: string; created: string }
interface RefRow { ref: string; image_id: string; kind: 'tag' | 'digest' }

const FULL_ID_RE = /^(?:sha256:)?([a-f0-9]{64})$/;
const ID_PREFIX_RE = /^(?:sha256:)?([a-f0-9]+)$/;

export function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

/** Chain IDs as the OCI spec defines them: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)). */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : 'sha256:' + createHash('sha256').update(`${prev} ${d}`).digest('hex'));
  }
  return out;
}

function isIdPrefix(id: string, input: string): boolean {
  return id.startsWith(input) || id.slice('sha256:'.length).startsWith(input);
}

interface Tables { images: string; refs: string }

/** The image tables of one storage driver. */
export function imageTablesOf(driver: string): Tables {
  const d = driver.replace(/[^a-z0-9]/g, '_');
  return { images: `image_${d}_images`, refs: `image_${d}_refs` };
}
const IMAGES_TABLE_RE = /^image_[a-z0-9_]+_images$/;

function createTables(db: Database, t: Tables): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS ${t.images} (
      id TEXT PRIMARY KEY,
      config_digest TEXT NOT NULL,
      manifest_digest TEXT,
      parent TEXT NOT NULL DEFAULT '',
      created TEXT NOT NULL DEFAULT '',
      added_at INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS ${t.refs} (
      ref TEXT PRIMARY KEY,
      image_id TEXT NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('tag', 'digest'))
    );
    CREATE INDEX IF NOT EXISTS ${t.refs}_by_image ON ${t.refs}(image_id);
  `);
}

function tableNames(db: Database): string[] {
  return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((r) => r.name);
}

export interface ImageStoreOptions {
  /** The drivers whose storage holds every one of these chain IDs (where an old shared record goes). */
  layerOwners?: (chainIds: string[]) => string[];
}

class SqliteImageStore implements ImageStore {
  private readonly bases = new Map<string, Base>();
  private readonly t: Tables;
  /** Blobs the other drivers' images use: never collected (their records cannot change while this driver runs). */
  private readonly othersBlobs: Set<string>;

  constructor(private readonly db: Database, private readonly content: ContentStore, private readonly storage: LayerStore, opts: ImageStoreOptions = {}) {
    const driver = storage.driver ?? 'default';
    this.t = imageTablesOf(driver);
    createTables(db, this.t);
    this.migrateShared(driver, opts.layerOwners ?? (() => []));
    for (const row of db.prepare(`SELECT id, config_digest, manifest_digest, parent, created FROM ${this.t.images}`).all() as ImageRow[]) {
      try {
        this.bases.set(row.id, this.loadBase(row.config_digest, row.manifest_digest, row.parent));
      } catch (err) {
        log.warn('image: cannot load image, ignoring it', { id: row.id, err: String(err) });
      }
    }
    this.othersBlobs = this.blobsOfOtherDrivers();
  }

  /**
   * The shared image_images/image_refs of a data root from before per-driver records: each image goes,
   * with its names, to every driver whose storage holds all its layers (to the current driver when none
   * does, or when it has no layers); then the shared tables are dropped. One transaction: a crash redoes it.
   */
  private migrateShared(current: string, owners: (chainIds: string[]) => string[]): void {
    const names = tableNames(this.db);
    if (!names.includes('image_images')) return;
    const rows = this.db.prepare('SELECT id, config_digest, manifest_digest, parent, created, added_at FROM image_images').all() as (ImageRow & { added_at: number })[];
    const refs = names.includes('image_refs') ? this.db.prepare('SELECT ref, image_id, kind FROM image_refs').all() as RefRow[] : [];
    this.db.transaction(() => {
      for (const row of rows) {
        let chain: string[] = [];
        try {
          chain = chainIds((JSON.parse(fs.readFileSync(this.content.path(row.config_digest), 'utf8')) as ImageConfig).rootfs.diff_ids);
        } catch {}
        const found = chain.length ? owners(chain) : [];
        const to = found.length ? found : [current];
        for (const d of to) {
          const t = imageTablesOf(d);
          createTables(this.db, t);
          this.db.prepare(`INSERT OR IGNORE INTO ${t.images} (id, config_digest, manifest_digest, parent, created, added_at) VALUES (?, ?, ?, ?, ?, ?)`)
            .run(row.id, row.config_digest, row.manifest_digest, row.parent, row.created, row.added_at);
          for (const r of refs) {
            if (r.image_id === row.id) this.db.prepare(`INSERT OR IGNORE INTO ${t.refs} (ref, image_id, kind) VALUES (?, ?, ?)`).run(r.ref, r.image_id, r.kind);
          }
        }
        log.info('image: shared image record moved to the storage driver holding its layers', { id: row.id, drivers: to });
      }
      this.db.exec('DROP TABLE IF EXISTS image_refs; DROP TABLE IF EXISTS image_images;');
    })();
  }

  private blobsOfOtherDrivers(): Set<string> {
    const out = new Set<string>();
    for (const name of tableNames(this.db)) {
      if (!IMAGES_TABLE_RE.test(name) || name === this.t.images) continue;
      for (const row of this.db.prepare(`SELECT config_digest, manifest_digest FROM ${name}`).all() as Pick<ImageRow, 'config_digest' | 'manifest_digest'>[]) {
        out.add(row.config_digest);
        if (!row.manifest_digest) continue;
        out.add(row.manifest_digest);
        for (const d of this.manifestLayers(row.manifest_digest)) out.add(d);
      }
    }
    return out;
  }

  /** The layer blob digests a stored manifest names ([] when it cannot be read). */
  private manifestLayers(manifestDigest: string): string[] {
    try {
      const m = JSON.parse(fs.readFileSync(this.content.path(manifestDigest), 'utf8')) as { layers?: { digest?: unknown }[] };
      return (m.layers ?? []).map((l) => l.digest).filter((d): d is string => typeof d === 'string');
    } catch (err) {
      log.warn('image: cannot read manifest', { manifest: manifestDigest, err: String(err) });
      return [];
    }
  }

  private loadBase(configDigest: string, manifestDigest: string | null, parent: string): Base {
    let raw: Buffer;
    try {
      raw = fs.readFileSync(this.content.path(configDigest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFound(`image config ${configDigest} not found in content store`);
      throw err;
    }
    const config = JSON.parse(raw.toString('utf8')) as ImageConfig;
    const diffIds = config.rootfs?.diff_ids;
    if (!Array.isArray(diffIds) || diffIds.some((d) => typeof d !== 'string')) {
      throw new InvalidParameter(`image config ${configDigest} has no rootfs.diff_ids`);
    }
    const layers = chainIds(diffIds).map((chainId, i) => ({
      diffId: diffIds[i]!,
      chainId,
      size: this.storage.stat(chainId)?.size ?? 0,
    }));
    const blobs = new Set<string>([configDigest]);
    if (manifestDigest) {
      blobs.add(manifestDigest);
      for (const d of this.manifestLayers(manifestDigest)) blobs.add(d);
    }
    return { id: configDigest, config, manifestDigest, parent, layers, blobs };
  }

  private refsOf(id: string): RefRow[] {
    return this.db.prepare(`SELECT ref, image_id, kind FROM ${this.t.refs} WHERE image_id = ? ORDER BY ref`).all(id) as RefRow[];
  }

  private build(base: Base, refs: RefRow[]): Image {
    const repoTags: string[] = [];
    const repoDigests: string[] = [];
    for (const r of refs) {
      const s = familiarString(parseNormalizedNamed(r.ref));
      (r.kind === 'tag' ? repoTags : repoDigests).push(s);
    }
    return {
      id: base.id,
      config: base.config,
      repoTags,
      repoDigests,
      created: base.config.created ?? '',
      size: base.layers.reduce((n, l) => n + l.size, 0),
      parent: base.parent,
      layers: base.layers,
      manifestDigest: base.manifestDigest,
    };
  }

  add(configDigest: string, opts: { tags?: string[]; manifestDigest?: string; repoDigest?: string; parent?: string } = {}): Image {
    digestHex(configDigest);
    if (opts.manifestDigest !== undefined) digestHex(opts.manifestDigest);
    const tags = (opts.tags ?? []).map((t) => this.tagRef(t));
    let repoDigest: string | undefined;
    if (opts.repoDigest !== undefined) {
      const r = parseNormalizedNamed(opts.repoDigest);
      if (!r.digest) throw new InvalidParameter(`repo digest ${opts.repoDigest} has no digest`);
      repoDigest = `${repositoryName(r)}@${r.digest}`;
    }
    const parent = opts.parent ?? '';
    if (parent && !this.bases.has(parent)) throw new NotFound(`No such image: ${parent}`);

    const existing = this.bases.get(configDigest);
    const base = existing ?? this.loadBase(configDigest, opts.manifestDigest ?? null, parent);
    for (const l of base.layers) {
      if (!this.storage.stat(l.chainId)) throw new NotFound(`layer ${l.chainId} of image ${configDigest} is not in storage`);
    }

    const insertRef = this.db.prepare(`INSERT OR REPLACE INTO ${this.t.refs} (ref, image_id, kind) VALUES (?, ?, ?)`);
    this.db.transaction(() => {
      this.db.prepare(`INSERT OR IGNORE INTO ${this.t.images} (id, config_digest, manifest_digest, parent, created, added_at)
                       VALUES (?, ?, ?, ?, ?, ?)`)
        .run(configDigest, configDigest, base.manifestDigest, parent, base.config.created ?? '', Date.now());
      for (const t of tags) insertRef.run(t, configDigest, 'tag');
      if (repoDigest) insertRef.run(repoDigest, configDigest, 'digest');
    })();
    if (!existing) this.bases.set(configDigest, base);
    return this.build(base, this.refsOf(configDigest));
  }

  /** A tag reference in full form; digests are refused, like `docker tag`. */
  private tagRef(s: string): string {
    const r = parseReference(s);
    if (r.digest !== undefined) throw new InvalidParameter('refusing to create a tag with a digest reference');
    return formatReference(r);
  }

  get(id: string): Image | null {
    const m = FULL_ID_RE.exec(id);
    const base = m ? this.bases.get('sha256:' + m[1]) : undefined;
    return base ? this.build(base, this.refsOf(base.id)) : null;
  }

  list(): Image[] {
    const byImage = new Map<string, RefRow[]>();
    for (const r of this.db.prepare(`SELECT ref, image_id, kind FROM ${this.t.refs} ORDER BY ref`).all() as RefRow[]) {
      const a = byImage.get(r.image_id) ?? [];
      a.push(r);
      byImage.set(r.image_id, a);
    }
    return [...this.bases.values()].map((b) => this.build(b, byImage.get(b.id) ?? []));
  }

  /** Which image a name points at, with the stored ref key; null if the name is unknown. */
  private lookupRef(r: Reference): RefRow | null {
    const key = r.digest !== undefined ? `${repositoryName(r)}@${r.digest}` : formatReference(r);
    const row = this.db.prepare(`SELECT ref, image_id, kind FROM ${this.t.refs} WHERE ref = ?`).get(key) as RefRow | undefined;
    return row && this.bases.has(row.image_id) ? row : null;
  }

  resolve(nameOrId: string): Image {
    const full = FULL_ID_RE.exec(nameOrId);
    if (full) {
      const img = this.get(nameOrId);
      if (img) return img;
      throw new NotFound(`No such image: ${nameOrId}`);
    }
    const prefix = ID_PREFIX_RE.exec(nameOrId);
    let ref: Reference | null = null;
    try {
      ref = parseReference(nameOrId);
    } catch (err) {
      if (!prefix) throw err;
    }
    if (ref) {
      const row = this.lookupRef(ref);
      if (row) return this.get(row.image_id)!;
    }
    if (prefix) {
      const hits = [...this.bases.keys()].filter((id) => id.startsWith('sha256:' + prefix[1]));
      if (hits.length === 1) return this.get(hits[0]!)!;
    }
    throw new NotFound(`No such image: ${nameOrId}`);
  }

  tag(id: string, ref: string): void {
    const img = this.resolve(id);
    const key = this.tagRef(ref);
    this.db.prepare(`INSERT OR REPLACE INTO ${this.t.refs} (ref, image_id, kind) VALUES (?, ?, ?)`).run(key, img.id, 'tag');
  }

  untag(ref: string): string | null {
    const r = parseReference(ref);
    const row = this.lookupRef(r);
    if (!row) return null;
    this.db.prepare(`DELETE FROM ${this.t.refs} WHERE ref = ?`).run(row.ref);
    return row.image_id;
  }

  history(nameOrId: string): HistoryItem[] {
    const img = this.resolve(nameOrId);
    const entries = img.config.history?.length
      ? img.config.history
      : img.layers.map((): HistoryEntry => ({ created: img.created }));
    const items: HistoryItem[] = [];
    let layer = 0;
    for (const h of entries) {
      let size = 0;
      if (!h.empty_layer) size = img.layers[layer++]?.size ?? 0;
      const t = h.created ? Date.parse(h.created) : NaN;
      items.push({
        Id: '<missing>',
        Created: Number.isNaN(t) ? 0 : Math.floor(t / 1000),
        CreatedBy: h.created_by ?? '',
        Tags: null,
        Size: size,
        Comment: h.comment ?? '',
      });
    }
    items.reverse();
    if (items[0]) {
      items[0].Id = img.id;
      items[0].Tags = img.repoTags.length ? img.repoTags : null;
    }
    return items;
  }

  // ---- docker rmi ----------------------------------------------------------------------------------

  private children(id: string): string[] {
    return [...this.bases.values()].filter((b) => b.parent === id).map((b) => b.id);
  }

  async remove(nameOrId: string, opts: { force: boolean; noprune: boolean }, usedBy: (imageId: string) => ContainerUse[]): Promise<DeleteItem[]> {
    const img = this.resolve(nameOrId);
    const id = img.id;
    const records: DeleteItem[] = [];
    const users = usedBy(id);
    let refs = this.refsOf(id);
    let quiet = false;

    if (!isIdPrefix(id, nameOrId)) {
      // A name was given: that name goes first. The last name of an image a container uses is kept
      // unless forced, so the image does not silently become dangling.
      if (!opts.force && isSingleReference(refs) && users[0]) {
        throw new Conflict(`conflict: unable to remove repository reference "${nameOrId}" (must force) - container ${shortId(users[0].id)} is using its referenced image ${shortId(id)}`);
      }
      const r = parseReference(nameOrId);
      const row = this.lookupRef(r)!;
      const repo = repositoryName(r);
      this.db.transaction(() => {
        this.deleteRef(row, records);
        // A removed tag takes the repository's digest references with it once no tag of that repository remains.
        if (row.kind === 'tag') {
          const rest = this.refsOf(id).filter((x) => refRepository(x) === repo);
          if (!rest.some((x) => x.kind === 'tag')) for (const x of rest) this.deleteRef(x, records);
        }
      })();
      refs = this.refsOf(id);
      if (refs.length > 0) return records;
      quiet = true;
    } else if (isSingleReference(refs)) {
      // An ID with names all in one repository: drop those names, unless something blocks deletion.
      const c = this.conflict(id, users, { soft: !opts.force, activeRefs: false });
      if (c) throw new Conflict(c.message);
      this.db.transaction(() => { for (const x of refs) this.deleteRef(x, records); })();
    }

    await this.deleteHelper(id, users, records, opts.force, opts.noprune, quiet, usedBy);
    return records;
  }

  private deleteRef(row: RefRow, records: DeleteItem[]): void {
    this.db.prepare(`DELETE FROM ${this.t.refs} WHERE ref = ?`).run(row.ref);
    records.push({ Untagged: familiarString(parseNormalizedNamed(row.ref)) });
  }

  private conflict(id: string, users: ContainerUse[], mask: { soft: boolean; activeRefs: boolean }): { message: string; used: boolean } | null {
    const hard = (why: string, used: boolean): { message: string; used: boolean } =>
      ({ message: `conflict: unable to delete ${shortId(id)} (cannot be forced) - ${why}`, used });
    const soft = (why: string, used: boolean): { message: string; used: boolean } =>
      ({ message: `conflict: unable to delete ${shortId(id)} (must be forced) - ${why}`, used });
    if (this.children(id).length > 0) return hard('image has dependent child images', false);
    const running = users.find((u) => u.running);
    if (running) return hard(`image is being used by running container ${shortId(running.id)}`, true);
    if (!mask.soft) return null;
    if (mask.activeRefs && this.refsOf(id).length > 0) return soft('image is referenced in multiple repositories', false);
    const stopped = users.find((u) => !u.running);
    if (stopped) return soft(`image is being used by stopped container ${shortId(stopped.id)}`, true);
    return null;
  }

  private async deleteHelper(id: string, users: ContainerUse[], records: DeleteItem[], force: boolean, noprune: boolean,
    quiet: boolean, usedBy: (imageId: string) => ContainerUse[]): Promise<void> {
    const c = this.conflict(id, users, { soft: !force, activeRefs: true });
    if (c) {
      // After removing a name, an image still in use (or still named) just stays; only a dangling,
      // unused image reports why it could not go.
      if (quiet && (this.refsOf(id).length > 0 || c.used)) return;
      throw new Conflict(c.message);
    }
    const remaining = this.refsOf(id);
    if (users.length > 0 && (remaining.length > 0 || records.length > 0)) {
      // Forced, but a (stopped) container still uses it: like docker 28, untag and keep the image dangling
      // so the container keeps its config and layers.
      this.db.transaction(() => { for (const x of remaining) this.deleteRef(x, records); })();
      return;
    }
    const parent = this.bases.get(id)?.parent ?? '';
    await this.deleteImage(id, records);
    if (noprune || !parent) return;
    // Prune parents that are now unnamed, childless and unused.
    for (let p = parent; p && this.bases.has(p);) {
      if (this.refsOf(p).length > 0 || this.children(p).length > 0 || usedBy(p).length > 0) break;
      const next = this.bases.get(p)!.parent;
      await this.deleteImage(p, records);
      p = next;
    }
  }

  /** Drops the image's rows (one transaction), then layers and blobs no remaining image uses. */
  private async deleteImage(id: string, records: DeleteItem[]): Promise<void> {
    const base = this.bases.get(id)!;
    this.db.transaction(() => {
      for (const x of this.refsOf(id)) this.deleteRef(x, records);
      this.db.prepare(`DELETE FROM ${this.t.images} WHERE id = ?`).run(id);
    })();
    this.bases.delete(id);
    records.push({ Deleted: id });

    for (const chainId of await this.collect({ layers: base.layers.map((l) => l.chainId), blobs: base.blobs })) {
      records.push({ Deleted: chainId });
    }
  }

  async collect(what: { layers?: string[]; blobs?: Iterable<string> }): Promise<string[]> {
    const leases = this.content.leases;
    // Checked again right before each removal: another image may have been added meanwhile.
    const inUse = (pred: (b: Base) => boolean): boolean => [...this.bases.values()].some(pred);
    const removed: string[] = [];
    for (const chainId of [...(what.layers ?? [])].reverse()) {
      if (inUse((b) => b.layers.some((x) => x.chainId === chainId)) || leases.holdsSnapshot(chainId)) continue;
      try {
        await this.storage.remove(chainId);
        removed.push(chainId);
      } catch (err) {
        if (err instanceof Conflict || err instanceof NotFound) continue; // a child or container still uses it; or gone already
        log.warn('image: cannot remove layer', { chainId, err: String(err) });
      }
    }
    for (const d of what.blobs ?? []) {
      if (inUse((b) => b.blobs.has(d)) || this.othersBlobs.has(d) || leases.holdsBlob(d)) continue;
      await this.content.delete(d).catch((err) => log.warn('image: cannot delete blob', { digest: d, err: String(err) }));
    }
    return removed;
  }
}

function refRepository(row: RefRow): string {
  return repositoryName(parseNormalizedNamed(row.ref));
}

/** True when the names are exactly one tag (plus digests of that same repository), or digests of one repository. */
function isSingleReference(refs: RefRow[]): boolean {
  if (refs.length <= 1) return refs.length === 1;
  let single: RefRow | null = null;
  const digestRepos = new Set<string>();
  for (const r of refs) {
    if (r.kind === 'digest') digestRepos.add(refRepository(r));
    else if (single === null) single = r;
    else return false;
  }
  const repo = refRepository(single ?? refs[0]!);
  return digestRepos.size === 1 && digestRepos.has(repo);
}

export function openImageStore(db: Database, content: ContentStore, storage: LayerStore, opts: ImageStoreOptions = {}): ImageStore {
  return new SqliteImageStore(db, content, storage, opts);
}
