/**
 * Mounting the descriptions snapshotters return. The snapshotter never mounts on its own; whoever needs a
 * tree (container start, the applier, later diff and build) mounts through here.
 */
import { execFileSync } from 'node:child_process';
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

/** The mount type of fuse-overlayfs descriptions: mounted by its helper program, not by mount(2). */
export const FUSE_OVERLAY = 'fuse.fuse-overlayfs';

/** Mount each description on target, in order (later ones stack on earlier ones). */
export function mountAll(mounts: Mount[], target: string): void {
  const abs = path.resolve(target);
  for (const m of mounts) {
    if (m.type === FUSE_OVERLAY) {
      // A FUSE filesystem needs its server process: the helper forks one that lives until the unmount.
      execFileSync('fuse-overlayfs', ['-o', m.options.join(','), abs], { cwd: m.cwd, stdio: ['ignore', 'ignore', 'pipe'] });
      continue;
    }
    let flags = 0;
    const data: string[] = [];
    for (const o of m.options) {
      if (o === 'rw') continue;
      if (o in FLAG_OPTIONS) flags |= FLAG_OPTIONS[o];
      else data.push(o);
    }
    const type = flags & sys.MS_BIND ? null : m.type;
    if (flags & sys.MS_BIND) {
      // A bind mount ignores MS_RDONLY (and the other per-mount flags) until it is remounted with them.
      sys.mount(m.source, abs, null, flags & (sys.MS_BIND | sys.MS_REC), null);
      const extra = flags & ~(sys.MS_BIND | sys.MS_REC);
      if (extra) {
        try {
          sys.mount(m.source, abs, null, sys.MS_REMOUNT | sys.MS_BIND | extra, null);
        } catch (err) {
          unmountAll(abs);
          throw err;
        }
      }
      continue;
    }
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
  const t = mountTemp(mounts);
  try {
    return await fn(t.dir);
  } finally {
    t.release();
  }
}

const TEMP_PREFIX = 'berth-mount-';

/** withMounts without the callback (for generators): the caller must release() in a finally block. */
export function mountTemp(mounts: Mount[]): { dir: string; release(): void } {
  const dir = path.join(os.tmpdir(), `${TEMP_PREFIX}${crypto.randomBytes(8).toString('hex')}`);
  fs.mkdirSync(dir, { mode: 0o700 });
  try {
    mountAll(mounts, dir);
  } catch (err) {
    unmountAll(dir);
    fs.rmdirSync(dir);
    throw err;
  }
  return {
    dir,
    release: () => {
      unmountAll(dir);
      fs.rmdirSync(dir);
    },
  };
}

const isOverlay = (m: Mount): boolean => m.type === 'overlay' || m.type === FUSE_OVERLAY;

/** The directory an overlay (kernel or FUSE) mount writes into (its upperdir, resolved), or null for any other mount. */
export function upperDirOf(mounts: Mount[]): string | null {
  if (mounts.length !== 1 || !isOverlay(mounts[0]!)) return null;
  const m = mounts[0]!;
  const opt = m.options.find((o) => o.startsWith('upperdir='));
  if (!opt) return null;
  return path.resolve(m.cwd ?? '/', opt.slice('upperdir='.length));
}

/** Docker's GraphDriver.Data for `inspect`: an overlay's LowerDir/UpperDir/WorkDir as absolute paths; nothing for other mounts. */
export function graphDriverData(mounts: Mount[]): Record<string, string> {
  if (mounts.length !== 1 || !isOverlay(mounts[0]!)) return {};
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

/**
 * At start-up: unmount (and remove) the private mount dirs of withMounts/mountTemp that a killed process
 * left, when what they show is a tree inside `sources` (a copy driver's trees, bind-mounted). The
 * kernel keeps such mounts after the process dies; nothing else would ever take them down.
 */
export function unmountStale(sources: string): string[] {
  const rows = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((l) => l.split(' '));
  const unescape = (p: string): string => p.replace(/\\(\d{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  const points = rows.map((r) => unescape(r[4]!));
  // mountinfo shows a bind mount's source as a path inside its filesystem: sources' path inside the one holding it.
  const holder = points.filter((m) => sources === m || sources.startsWith(m.endsWith('/') ? m : `${m}/`)).sort((a, b) => b.length - a.length)[0] ?? '/';
  const inside = holder === '/' ? sources : sources.slice(holder.length);
  const temp = path.join(os.tmpdir(), TEMP_PREFIX);
  const done: string[] = [];
  for (const r of rows) {
    const [root, at] = [unescape(r[3]!).replace(/\/\/deleted$/, ''), unescape(r[4]!)];
    if (!at.startsWith(temp) || !(root === inside || root.startsWith(`${inside}/`))) continue;
    unmountAll(at);
    try {
      fs.rmdirSync(at);
    } catch {
      // gone already
    }
    done.push(at);
  }
  return done;
}
