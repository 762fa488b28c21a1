/**
 * storage/: snapshotters — where image layers and container root filesystems live.
 *
 * Lifecycle:
 *  - pull: applyLayer(parent, tar) for each layer in order, giving committed,
 *    read-only layers addressed by chain ID (identical content → one copy);
 *    or stageLayer(tar) for all layers at once, then commit(parent) in order.
 *  - run: prepare(key, topLayer, init) makes a read-write snapshot and returns
 *    mount descriptions; the caller decides when to mountAll/unmountAll them
 *    (the snapshotter never mounts on its own). After a daemon restart,
 *    mounts(key) describes the same mounts again.
 *  - rm: remove(key); removeLayer(chainId) once no child or snapshot uses it.
 *  - start-up: recover() throws away what a crash left half-written.
 */
import type { Readable } from 'node:stream';
import * as sys from '../sys/index.js';
import { readdirTypes, DT_UNKNOWN } from '../sys/dirent.js';
import fs from 'node:fs';
import path from 'node:path';

/** A mount description, like containerd's mount.Mount. */
export interface Mount {
  type: string;
  source: string;
  options: string[];
  /** Directory that relative paths inside `options` are relative to (overlay2 keeps lowerdir short this way). */
  cwd?: string;
}

export interface LayerInfo {
  chainId: string;
  diffId: string;
  parent: string | null;
  size: number;
}

/** A layer unpacked by stageLayer, not yet part of any chain. */
export interface StagedLayer {
  diffId: string;
  size: number;
  /** Make it the committed layer on top of parent; if that chain ID exists already, this copy is discarded and the existing one returned. */
  commit(parent: string | null): LayerInfo;
  /** Throw the files away; nothing once committed. */
  discard(): void;
}

export interface Snapshotter {
  /** Committed, read-only layers, addressed by chain ID (OCI: chainId(L0)=diffId(L0); chainId(Ln)=sha256(chainId(Ln-1)+" "+diffId(Ln))). */
  getLayer(chainId: string): LayerInfo | null;
  /** Unpack a layer tar on top of parent into a new committed layer. Atomic: a crash leaves either nothing or the full layer. If the resulting chainId exists already, the new copy is discarded and the existing one returned. */
  applyLayer(parent: string | null, tar: Readable): Promise<LayerInfo>;
  /** Unpack a layer tar into a dir no reader sees yet (a crash leaves nothing), to be committed on top of any parent later. */
  stageLayer(tar: Readable): Promise<StagedLayer>;
  /** Remove a committed layer (Conflict if a child layer or snapshot still uses it). */
  removeLayer(chainId: string): Promise<void>;
  /** A read-write snapshot `key` on top of committed layer `parent` (null = empty). `init`, when given, fills an
   *  extra init layer between parent and the rw layer (Docker's "-init" layer). */
  prepare(key: string, parent: string | null, init?: (initDir: string) => Promise<void>): Promise<Mount[]>;
  /** The mounts of an existing snapshot (for restart after a daemon restart). */
  mounts(key: string): Mount[];
  /** Path of the rw (upper) dir of a snapshot. */
  upperDir(key: string): string;
  /** Remove snapshot key (its rw and init dirs). Idempotent. */
  remove(key: string): Promise<void>;
  /** Bytes used by the rw layer of a snapshot (apparent size, hard links once). */
  usage(key: string): Promise<number>;
  /** Remove half-written layers/snapshots left by a crash; called once at daemon start. */
  recover(): Promise<void>;
}

const FLAG_OPTIONS: Record<string, number> = {
  ro: sys.MS_RDONLY,
  nosuid: sys.MS_NOSUID,
  nodev: sys.MS_NODEV,
  noexec: sys.MS_NOEXEC,
  bind: sys.MS_BIND,
  rbind: sys.MS_BIND | sys.MS_REC,
};

/** Mount each description on target, in order (later ones stack on earlier ones). */
export function mountAll(mounts: Mount[], target: string): void {
  const abs = path.resolve(target);
  for (const m of mounts) {
    let flags = 0;
    const data: string[] = [];
    for (const o of m.options) {
      if (o === 'rw') continue;
      if (o in FLAG_OPTIONS) flags |= FLAG_OPTIONS[o];
      else data.push(o);
    }
    const type = flags & sys.MS_BIND ? null : m.type;
    if (!m.cwd) {
      sys.mount(m.source, abs, type, flags, data.join(',') || null);
      continue;
    }
    // Relative option paths resolve against the cwd of the mount(2) caller. JS runs
    // one thing at a time and nothing else relies on the cwd, so a chdir here is safe.
    const back = process.cwd();
    process.chdir(m.cwd);
    try {
      sys.mount(m.source, abs, type, flags, data.join(',') || null);
    } finally {
      process.chdir(back);
    }
  }
}

/** Unmount everything stacked on target; a target that is not mounted (or gone) is fine. */
export function unmountAll(target: string): void {
  for (let i = 0; i < 64; i++) {
    try {
      sys.umount(target, 0);
    } catch (err) {
      if (err instanceof sys.SysError) {
        if (err.code === 'EINVAL' || err.code === 'ENOENT') return;
        if (err.code === 'EBUSY') {
          sys.umount(target, sys.MNT_DETACH);
          continue;
        }
      }
      throw err;
    }
  }
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

export { openOverlay2 } from './overlay2.js';
