/**
 * The walking differ (containerd's double walk): what changed from tree `lower` (the parent, or
 * nothing) to tree `upper` (the snapshot), for drivers whose snapshot is a whole tree rather than an
 * overlay upper dir. It yields the change list packChanges() turns into an OCI layer tar: an entry for
 * each added or changed path, with the directories above it first, and a whiteout for each removed one.
 * A replaced directory comes out as whiteouts of what it lost plus its new contents (no opaque marker):
 * applied on the parent, that gives the same tree as overlay's opaque directory.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ChangeItem } from '../archive/index.js';
import * as sys from '../sys/index.js';

type Stats = fs.BigIntStats;

const lstat = (p: string): Promise<Stats | null> =>
  fs.promises.lstat(p, { bigint: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });

function xattrsOf(p: string): string {
  const names = sys.listxattr(p).filter((n) => !n.startsWith('trusted.overlay.')).sort();
  return names.map((n) => `${n}=${sys.getxattr(p, n)?.toString('base64') ?? ''}`).join('\n');
}

async function sameContent(a: string, b: string): Promise<boolean> {
  const [fa, fb] = await Promise.all([fs.promises.open(a, 'r'), fs.promises.open(b, 'r')]);
  try {
    const ba = Buffer.alloc(1 << 16);
    const bb = Buffer.alloc(1 << 16);
    for (;;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, ba.length), fb.read(bb, 0, bb.length)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

const S_IFMT = 0o170000n;
const NS = 1_000_000_000n;

/**
 * Is upper's entry the same as lower's? Type, owner, mode and xattrs; for non-directories also size,
 * device and mtime. When both mtimes are whole seconds (a tar's precision) the content decides, since
 * a write within that second could otherwise go unseen.
 */
async function same(lp: string, l: Stats, up: string, u: Stats, since: bigint | null): Promise<boolean> {
  // Not changed since the snapshot was made from its parent: it is the parent's entry as it was copied.
  if (since !== null && !u.isDirectory() && u.ctimeNs < since) return true;
  if ((l.mode & S_IFMT) !== (u.mode & S_IFMT) || l.mode !== u.mode || l.uid !== u.uid || l.gid !== u.gid) return false;
  if (xattrsOf(lp) !== xattrsOf(up)) return false;
  if (u.isDirectory()) return true;
  if (l.size !== u.size || l.rdev !== u.rdev) return false;
  if (u.isSymbolicLink()) return (await fs.promises.readlink(lp)) === (await fs.promises.readlink(up));
  if (l.mtimeNs / NS !== u.mtimeNs / NS) return false;
  if (l.mtimeNs % NS !== 0n || u.mtimeNs % NS !== 0n) return l.mtimeNs === u.mtimeNs;
  if (!u.isFile() || u.size === 0n) return true;
  return sameContent(lp, up);
}

/** Every entry under upper/rel (rel itself excluded), parents first, names sorted. */
async function* everything(upper: string, rel: string): AsyncGenerator<ChangeItem> {
  for (const name of (await fs.promises.readdir(path.join(upper, rel))).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    yield { name: r };
    if ((await fs.promises.lstat(path.join(upper, r))).isDirectory()) yield* everything(upper, r);
  }
}

/**
 * The changes from lower (null: an empty tree) to upper, as packChanges() reads them. `since`: the ctime
 * (ns) at which upper was made as a copy or snapshot of lower, when known: an entry (not a directory,
 * whose contents can change without its ctime) last changed before then needs no comparing, which
 * spares reading every file of the image twice.
 */
export async function* walkChanges(lower: string | null, upper: string, since: bigint | null = null): AsyncGenerator<ChangeItem> {
  // Directories above the current position whose entry is not out yet: written before the first change inside.
  const pending: string[] = [];
  function* flush(): Generator<ChangeItem> {
    for (const d of pending) yield { name: d };
    pending.length = 0;
  }

  async function* visit(rel: string): AsyncGenerator<ChangeItem> {
    const uNames = (await fs.promises.readdir(path.join(upper, rel))).sort();
    const lNames = lower ? new Set(await fs.promises.readdir(path.join(lower, rel)).catch(() => [] as string[])) : new Set<string>();
    const uSet = new Set(uNames);
    const removed = [...lNames].filter((n) => !uSet.has(n)).sort();
    for (const name of removed) {
      yield* flush();
      yield { name: rel ? `${rel}/${name}` : name, whiteout: true };
    }
    for (const name of uNames) {
      const r = rel ? `${rel}/${name}` : name;
      const up = path.join(upper, r);
      const u = (await lstat(up))!;
      const lp = lower ? path.join(lower, r) : null;
      const l = lp && lNames.has(name) ? await lstat(lp) : null;
      if (!l || !lp) {
        yield* flush();
        yield { name: r };
        if (u.isDirectory()) yield* everything(upper, r);
        continue;
      }
      const unchanged = await same(lp, l, up, u, since);
      if (u.isDirectory() && l.isDirectory()) {
        if (!unchanged) {
          yield* flush();
          yield { name: r };
        } else {
          pending.push(r);
        }
        const depth = pending.length;
        yield* visit(r);
        // Nothing inside changed: this directory stays out of the diff.
        if (pending.length >= depth && pending[depth - 1] === r) pending.length = depth - 1;
        continue;
      }
      if (unchanged) continue;
      yield* flush();
      yield { name: r };
      if (u.isDirectory()) yield* everything(upper, r);
    }
  }

  yield* visit('');
}

/** Bytes and entries a change list adds (files by inode, so a hard link counts once). */
export async function changesUsage(root: string, items: AsyncIterable<ChangeItem>): Promise<{ size: number; inodes: number }> {
  const seen = new Set<string>();
  let size = 0;
  let inodes = 0;
  for await (const it of items) {
    if (it.whiteout) continue;
    const st = await fs.promises.lstat(path.join(root, it.name));
    if (st.nlink > 1 && !st.isDirectory()) {
      const id = `${st.dev}:${st.ino}`;
      if (seen.has(id)) continue;
      seen.add(id);
    }
    inodes++;
    if (!st.isDirectory()) size += st.size;
  }
  return { size, inodes };
}
