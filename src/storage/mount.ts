/**
 * Mounting the descriptions snapshotters return. The snapshotter never mounts on its own; whoever needs a
 * tree (container start, the applier, later diff and build) mounts through here.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as sys from '../sys/index.js';

/** A mount description, like containerd's mount.Mount. */
export interface Mount {
  type: string;
  source: string;
  options: string[];
  /** Directory that relative paths inside `options` are relative to (overlay2 keeps lowerdir short this way). */
  cwd?: string;
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

/**
 * Mount `mounts` on a private temporary dir, run fn on it, and always unmount and remove the dir,
 * whether fn succeeds or throws. The dir lives under the OS temp dir, mode 0700, one per call.
 */
export async function withMounts<T>(mounts: Mount[], fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = path.join(os.tmpdir(), `berth-mount-${crypto.randomBytes(8).toString('hex')}`);
  fs.mkdirSync(dir, { mode: 0o700 });
  try {
    mountAll(mounts, dir);
    return await fn(dir);
  } finally {
    unmountAll(dir);
    fs.rmdirSync(dir);
  }
}

/** The directory an overlay mount writes into (its upperdir, resolved), or null for any other mount. */
export function upperDirOf(mounts: Mount[]): string | null {
  if (mounts.length !== 1 || mounts[0]!.type !== 'overlay') return null;
  const m = mounts[0]!;
  const opt = m.options.find((o) => o.startsWith('upperdir='));
  if (!opt) return null;
  return path.resolve(m.cwd ?? '/', opt.slice('upperdir='.length));
}

/** Docker's GraphDriver.Data for `inspect`: an overlay's LowerDir/UpperDir/WorkDir as absolute paths; nothing for other mounts. */
export function graphDriverData(mounts: Mount[]): Record<string, string> {
  if (mounts.length !== 1 || mounts[0]!.type !== 'overlay') return {};
  const m = mounts[0]!;
  const abs = (p: string): string => path.resolve(m.cwd ?? '/', p);
  const out: Record<string, string> = {};
  for (const o of m.options) {
    const [k, v] = [o.slice(0, o.indexOf('=')), o.slice(o.indexOf('=') + 1)];
    if (k === 'lowerdir') out.LowerDir = v.split(':').map(abs).join(':');
    else if (k === 'upperdir') out.UpperDir = abs(v);
    else if (k === 'workdir') out.WorkDir = abs(v);
  }
  return out;
}
