/**
 * storage/: snapshotters — where image layers and container root filesystems live.
 *
 * A snapshotter (containerd's shape) keeps named trees of three kinds:
 *  - active: prepare(key, parent) — writable, on top of a committed parent (null = empty);
 *  - view: view(key, parent) — read-only, for looking at a committed tree (diff, save, cp);
 *  - committed: commit(name, key) turns an active one into an immutable tree that can be a parent.
 * Both prepare and view return Mount[] descriptions; the snapshotter never mounts: callers use
 * mountAll/unmountAll (or withMounts for a short look). mounts(key) describes them again after a restart.
 * Image layers are committed snapshots named by chain ID (identical content → one copy). remove() refuses
 * (Conflict) while a child uses a committed one and throws NotFound for a name that does not exist.
 * recover() at start-up throws away what a crash left half-written.
 *
 * Around it: layer.ts fills a layer from a tar or a packer applying a diff (overlay2's optional stageLayer
 * fills before the parent is known: pull's fast path), init.ts builds Docker's init layer with prepare → fill → commit,
 * registry.ts opens the driver the daemon's `storage-driver` names.
 */
import type { Readable } from 'node:stream';
import type { LayerFill } from '../archive/index.js';
import { readdirTypes, DT_UNKNOWN } from '../sys/dirent.js';
import * as sys from '../sys/index.js';
import fs from 'node:fs';
import path from 'node:path';
import type { Mount } from './mount.js';

export type { Mount } from './mount.js';
export { mountAll, unmountAll, withMounts, mountTemp, upperDirOf, graphDriverData } from './mount.js';

export type SnapshotKind = 'active' | 'view' | 'committed';

export interface Info {
  /** Key of an active/view snapshot, or name (chain ID for image layers) of a committed one. */
  name: string;
  kind: SnapshotKind;
  /** Name of the committed snapshot below, or null. */
  parent: string | null;
  /** Bytes of content in this snapshot's own layer (committed: measured at commit; active/view: 0, see usage()). */
  size: number;
}

export interface Usage { size: number; inodes: number }

/** Per-snapshot options (`--storage-opt` of a container). */
export interface PrepareOptions {
  /** Most bytes the snapshot's own layer may hold (`size=`); drivers that cannot limit refuse it. */
  size?: number;
}

/**
 * How the driver's layer diffs mark deletions: 'overlay' = char-device 0/0 and the opaque xattr, as
 * overlayfs reads them; 'delete' = files really removed (copy drivers such as vfs).
 */
export type WhiteoutMode = 'overlay' | 'delete';

/** A layer filled by stageLayer, not yet part of any chain. */
export interface StagedLayer {
  diffId: string;
  size: number;
  /** Make it the committed layer `chainIdOf(parent, diffId)` on top of parent; if that exists already, this copy is discarded and the existing one returned. */
  commit(parent: string | null): Info;
  /** Throw the files away; nothing once committed. */
  discard(): void;
}

export interface Snapshotter {
  /** Driver name, as `docker info` shows it ("overlay2"). */
  readonly driver: string;
  readonly whiteouts: WhiteoutMode;
  /** Docker's DriverStatus rows for `docker info`. */
  status(): [string, string][];
  /** A writable snapshot `key` on committed `parent` (null = empty). Conflict if key exists. */
  prepare(key: string, parent: string | null, opts?: PrepareOptions): Promise<Mount[]>;
  /** A read-only snapshot `key` on committed `parent`: writes through its mounts fail with EROFS. */
  view(key: string, parent: string | null): Promise<Mount[]>;
  /** Active `key` becomes committed `name` (immutable, usable as a parent); key is gone after. Conflict if name exists. */
  commit(name: string, key: string): Promise<Info>;
  /** Remove an active/view key or a committed name. Conflict while a child uses it; NotFound if nothing has that name. */
  remove(keyOrName: string): Promise<void>;
  /** The mounts of an active or view snapshot (again, e.g. after a daemon restart). */
  mounts(key: string): Mount[];
  stat(name: string): Info | null;
  /** Space used by a snapshot's own layer (apparent size, hard links once). */
  usage(key: string): Promise<Usage>;
  walk(): Info[];
  /** Remove half-written snapshots left by a crash; called once at daemon start. */
  recover(): Promise<void>;
  /**
   * Optional, for the walking differ: the ctime (ns) at which active `key` was made as a copy of its
   * parent; entries older than that are the parent's unchanged. null when unknown.
   */
  baseline?(key: string): bigint | null;
  /** Optional fast path: fill a layer (unpack a tar, or apply a diff) before its parent is known (a crash leaves nothing). */
  stageLayer?(source: Readable | LayerFill): Promise<StagedLayer>;
}

/** The backing filesystem of root, and whether it reports file types in readdir (overlay needs d_type). */
export function backingFs(root: string): { name: string; dType: boolean } {
  fs.mkdirSync(root, { recursive: true });
  const magic = sys.fsType(root);
  const name = sys.FS_MAGIC[magic] ?? `0x${magic.toString(16)}`;
  const probe = fs.mkdtempSync(path.join(root, '.dtype-'));
  try {
    fs.writeFileSync(path.join(probe, 'f'), '');
    const dType = readdirTypes(probe).every((e) => e.type !== DT_UNKNOWN);
    return { name, dType };
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}

export { openOverlay2, openFuseOverlayfs } from './overlay2.js';
export { openVfs } from './vfs.js';
export { openSnapshotter, DRIVERS, driversHolding } from './registry.js';
export { applyLayer, unpackLayer, chainIdOf, removeExtracts, type UnpackedLayer, type LayerTarget } from './layer.js';
export type { LayerFill } from '../archive/index.js';
export { prepareOnBase, removeOnBase } from './init.js';
export { snapshotDiff, snapshotChanges, type LayerDiff } from './diff.js';
export { prepareOptionsOf } from './options.js';
