/**
 * COPY and ADD into a mounted rootfs, with docker's rules: a directory source copies its contents,
 * a file lands in a destination directory (ending in `/`, already a directory, or several sources)
 * under its own name or else at the destination path; missing parents are created; owners are 0:0
 * or --chown's, modes kept or --chmod's, mtimes kept. Every path written is resolved inside the
 * rootfs (safeJoin), so a symlink in the image cannot send a write to the host.
 * ADD also unpacks local tar archives (plain, gzip, bzip2, xz, zstd) into the destination.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { createGunzip } from 'node:zlib';
import { applyLayer, safeJoin } from '../archive/index.js';
import { ZstdDecompress } from '../registry/client/media.js';
import type { Source } from './context.js';

export interface Owner { uid: number; gid: number }

export interface CopyOptions {
  owner: Owner;
  /** --chmod, or null to keep the source's mode. */
  chmod: number | null;
  /** Destination must be a directory (ends in '/', several sources, a wildcard). */
  destIsDir: boolean;
  /** ADD: unpack local archives. */
  unpack: boolean;
}

/** Creates the directories of `abs` (inside root) that are missing, owned by `owner`. */
async function mkdirs(root: string, containerDir: string, owner: Owner): Promise<string> {
  const parts = containerDir.split('/').filter(Boolean);
  let cur = '/';
  for (const p of parts) {
    cur = path.posix.join(cur, p);
    const abs = safeJoin(root, cur);
    const st = await fsp.lstat(abs).catch(() => null);
    if (st?.isDirectory()) continue;
    if (st) await fsp.rm(abs, { recursive: true, force: true });
    await fsp.mkdir(abs, { mode: 0o755 });
    await fsp.chmod(abs, 0o755);
    await fsp.lchown(abs, owner.uid, owner.gid);
  }
  return safeJoin(root, containerDir);
}

async function isDirIn(root: string, containerPath: string): Promise<boolean> {
  return (await fsp.stat(safeJoin(root, containerPath)).catch(() => null))?.isDirectory() ?? false;
}

/** One entry (file, link or dir tree) to containerPath. */
async function copyEntry(root: string, src: string, st: fs.Stats, containerPath: string, o: CopyOptions): Promise<void> {
  const parent = safeJoin(root, path.posix.dirname(containerPath));
  const target = path.join(parent, path.posix.basename(containerPath));
  const mode = o.chmod ?? st.mode & 0o7777;
  if (st.isDirectory()) {
    const existing = await fsp.lstat(target).catch(() => null);
    if (existing && !existing.isDirectory()) await fsp.rm(target, { recursive: true, force: true });
    if (!existing?.isDirectory()) await fsp.mkdir(target);
    await fsp.chmod(target, mode);
    await fsp.lchown(target, o.owner.uid, o.owner.gid);
    for (const n of (await fsp.readdir(src)).sort()) {
      const child = path.join(src, n);
      await copyEntry(root, child, await fsp.lstat(child), path.posix.join(containerPath, n), o);
    }
    await fsp.utimes(target, st.atime, st.mtime);
    return;
  }
  const existing = await fsp.lstat(target).catch(() => null);
  if (existing?.isDirectory()) await fsp.rm(target, { recursive: true, force: true });
  else if (existing) await fsp.unlink(target);
  if (st.isSymbolicLink()) {
    await fsp.symlink(await fsp.readlink(src), target);
    await fsp.lchown(target, o.owner.uid, o.owner.gid);
    await fsp.lutimes(target, st.atime, st.mtime);
    return;
  }
  if (!st.isFile()) return; // devices, sockets, fifos in a context are not copied
  await fsp.copyFile(src, target);
  await fsp.chmod(target, mode);
  await fsp.lchown(target, o.owner.uid, o.owner.gid);
  await fsp.utimes(target, st.atime, st.mtime);
}

type Compression = 'gzip' | 'bzip2' | 'xz' | 'zstd' | 'none';

/** Is this file a (compressed) tar archive? Looks at the magic bytes, then at the tar header. */
async function archiveKind(file: string): Promise<Compression | null> {
  const fh = await fsp.open(file, 'r');
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    const b = head.subarray(0, bytesRead);
    if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
    if (b.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
    if (b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
    if (b.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return 'zstd';
    if (bytesRead >= 263 && b.subarray(257, 262).toString('latin1') === 'ustar') return 'none';
    return null;
  } finally {
    await fh.close();
  }
}

function decompress(file: string, kind: Compression): Readable {
  const raw = fs.createReadStream(file);
  switch (kind) {
    case 'gzip': return raw.pipe(createGunzip());
    case 'zstd': return raw.pipe(new ZstdDecompress());
    case 'bzip2': case 'xz': {
      const p = spawn(kind, ['-dc'], { stdio: ['pipe', 'pipe', 'ignore'] });
      raw.pipe(p.stdin);
      const out = new PassThrough();
      p.stdout.pipe(out);
      p.on('exit', (code) => { if (code !== 0) out.destroy(new Error(`${kind} -dc exited with ${code}`)); });
      return out;
    }
    default: return raw;
  }
}

/**
 * Copies the sources to `dest` (absolute, in the container) under the mounted `root`.
 */
export async function copyInto(root: string, sources: Source[], dest: string, o: CopyOptions): Promise<void> {
  const toDir = o.destIsDir || dest.endsWith('/') || (await isDirIn(root, dest));
  for (const s of sources) {
    if (s.stat.isDirectory()) {
      await mkdirs(root, dest, o.owner);
      for (const n of (await fsp.readdir(s.abs)).sort()) {
        const child = path.join(s.abs, n);
        await copyEntry(root, child, await fsp.lstat(child), path.posix.join(dest, n), o);
      }
      continue;
    }
    if (o.unpack && s.stat.isFile()) {
      const kind = await archiveKind(s.abs);
      if (kind) {
        const dir = await mkdirs(root, dest, o.owner);
        await applyLayer(decompress(s.abs, kind), dir, 'delete');
        continue;
      }
    }
    const target = toDir ? path.posix.join(dest, path.posix.basename(s.rel)) : dest;
    await mkdirs(root, path.posix.dirname(target), o.owner);
    await copyEntry(root, s.abs, s.stat, target, o);
  }
}

/** ADD <<EOF / COPY <<EOF: a file with the given content. */
export async function writeFileInto(root: string, dest: string, content: string, o: CopyOptions): Promise<void> {
  await mkdirs(root, path.posix.dirname(dest), o.owner);
  const target = path.join(safeJoin(root, path.posix.dirname(dest)), path.posix.basename(dest));
  await fsp.rm(target, { recursive: true, force: true });
  await fsp.writeFile(target, content);
  await fsp.chmod(target, o.chmod ?? 0o644);
  await fsp.lchown(target, o.owner.uid, o.owner.gid);
}

/** ADD <url>: the body as a file (0600, like docker), mtime from Last-Modified. */
export async function downloadInto(root: string, url: string, dest: string, o: CopyOptions): Promise<void> {
  const res = await fetch(url, { redirect: 'follow' });
  if (!res.ok || !res.body) throw new Error(`failed to GET ${url} with status ${res.status} ${res.statusText}`);
  let name = dest;
  if (o.destIsDir || dest.endsWith('/') || (await isDirIn(root, dest))) {
    const base = path.posix.basename(new URL(url).pathname);
    if (!base) throw new Error(`cannot determine filename from url: ${url}`);
    name = path.posix.join(dest, base);
  }
  await mkdirs(root, path.posix.dirname(name), o.owner);
  const target = path.join(safeJoin(root, path.posix.dirname(name)), path.posix.basename(name));
  await fsp.rm(target, { recursive: true, force: true });
  const out = fs.createWriteStream(target, { mode: 0o600 });
  await pipeline(Readable.fromWeb(res.body as WebReadableStream), out);
  await fsp.chmod(target, o.chmod ?? 0o600);
  await fsp.lchown(target, o.owner.uid, o.owner.gid);
  const lm = res.headers.get('last-modified');
  if (lm && !Number.isNaN(Date.parse(lm))) await fsp.utimes(target, new Date(lm), new Date(lm));
}
