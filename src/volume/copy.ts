/**
 * The first mount of an empty volume over a path the image has content at: docker copies that
 * content in (unless `nocopy`), keeping modes, owners, times, symlinks, hard links, devices and
 * xattrs, and gives the volume's root the owner and mode of the image's directory. Under
 * userns-remap the owners are shifted to the host ids the container's see them as.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { IdShift } from '../archive/index.js';
import * as sys from '../sys/index.js';

async function copyXattrs(src: string, dst: string): Promise<void> {
  for (const name of sys.listxattr(src)) {
    const v = sys.getxattr(src, name);
    if (v) {
      try {
        sys.setxattr(dst, name, v);
      } catch {}
    }
  }
}

/** Owners in the source to owners in the copy (userns-remap: container ids to the host's); default the same. */
const same: IdShift = (uid, gid) => ({ uid, gid });

async function copyMeta(src: string, dst: string, st: fs.Stats, shift: IdShift): Promise<void> {
  const { uid, gid } = shift(st.uid, st.gid);
  sys.lchown(dst, uid, gid);
  if (!st.isSymbolicLink()) {
    await fsp.chmod(dst, st.mode & 0o7777);
    await copyXattrs(src, dst);
  }
  await fsp.lutimes(dst, st.atime, st.mtime);
}

/** Files of one directory copied at once: enough to keep libuv's threads busy, few enough for the fd limit. */
const PARALLEL = 16;

interface CopyState {
  /** Hard links: the first path of each inode, once it is complete (a later link waits for it). */
  links: Map<string, Promise<string>>;
  /** Set by the first failure: every worker stops taking new entries. */
  failed: boolean;
  shift: IdShift;
}

async function copyEntry(s: string, d: string, state: CopyState): Promise<void> {
  const st = await fsp.lstat(s);
  let settle: { resolve: (p: string) => void; reject: (e: unknown) => void } | undefined;
  if (!st.isDirectory() && st.nlink > 1) {
    const key = `${st.dev}:${st.ino}`;
    const first = state.links.get(key);
    if (first) {
      await fsp.link(await first, d);
      return;
    }
    const p = new Promise<string>((resolve, reject) => (settle = { resolve, reject }));
    p.catch(() => {});
    state.links.set(key, p);
  }
  try {
    if (st.isDirectory()) {
      await fsp.mkdir(d);
      await copyEntries(s, d, state);
    } else if (st.isSymbolicLink()) {
      await fsp.symlink(await fsp.readlink(s), d);
    } else if (st.isFile()) {
      await fsp.copyFile(s, d, fs.constants.COPYFILE_FICLONE);
    } else {
      if (st.isSocket()) return;
      const type = st.isCharacterDevice() ? sys.S_IFCHR : st.isBlockDevice() ? sys.S_IFBLK : sys.S_IFIFO;
      sys.mknod(d, type | (st.mode & 0o7777), (st.rdev >>> 8) & 0xfff, (st.rdev & 0xff) | ((st.rdev >>> 12) & 0xfff00));
    }
    await copyMeta(s, d, st, state.shift);
    settle?.resolve(d);
  } catch (err) {
    settle?.reject(err);
    throw err;
  }
}

/** A directory's entries, PARALLEL at a time; returns once every started copy has settled. */
async function copyEntries(src: string, dst: string, state: CopyState): Promise<void> {
  const names = await fsp.readdir(src);
  let next = 0;
  const worker = async () => {
    while (!state.failed && next < names.length) {
      const e = names[next++]!;
      try {
        await copyEntry(path.join(src, e), path.join(dst, e), state);
      } catch (err) {
        state.failed = true;
        throw err;
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.min(PARALLEL, names.length) }, worker));
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
}

/** True if dir has no entries (a missing dir counts as empty). */
export async function isEmptyDir(dir: string): Promise<boolean> {
  try {
    return (await fsp.readdir(dir)).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
}

/**
 * Copies the tree at `src` (a directory in the container's rootfs, already resolved inside it) into
 * the empty directory `dst`. A failure part way empties `dst` again, so the next start tries anew.
 */
export async function copyIntoEmpty(src: string, dst: string, shift: IdShift = same): Promise<void> {
  const st = await fsp.lstat(src).catch(() => null);
  if (!st || !st.isDirectory()) return;
  try {
    await copyEntries(src, dst, { links: new Map(), failed: false, shift });
    const { uid, gid } = shift(st.uid, st.gid);
    sys.lchown(dst, uid, gid);
    await fsp.chmod(dst, st.mode & 0o7777);
  } catch (err) {
    for (const e of await fsp.readdir(dst).catch(() => [] as string[])) await fsp.rm(path.join(dst, e), { recursive: true, force: true });
    throw err;
  }
}
