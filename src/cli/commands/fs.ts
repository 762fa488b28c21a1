/**
 * Filesystem commands: cp, diff, export. `cp` follows the docker CLI's copy rules (which side is the
 * container, where the tar lands and under which name); the daemon only stats, sends and extracts.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extractTar, packPath } from '../../archive/index.js';
import type { Command, Ctx } from '../command.js';
import { StatusError } from '../command.js';
import { humanSize } from '../format.js';
import { ApiError } from '../http.js';

const enc = encodeURIComponent;

/** Docker's container path stat, from the X-Docker-Container-Path-Stat header. */
interface PathStat { name: string; size: number; mode: number; mtime: string; linkTarget: string }
const MODE_DIR = 2 ** 31;
const MODE_SYMLINK = 2 ** 27;
const isDirMode = (mode: number): boolean => Math.floor(mode / MODE_DIR) % 2 === 1;
const isLinkMode = (mode: number): boolean => Math.floor(mode / MODE_SYMLINK) % 2 === 1;

function decodeStat(header: string | string[] | undefined): PathStat {
  const v = Array.isArray(header) ? header[0] : header;
  if (!v) throw new StatusError('the daemon sent no path stat', 1);
  return JSON.parse(Buffer.from(v, 'base64').toString('utf8')) as PathStat;
}

/** "ctr:/path" → container and path; an absolute or ./ path is always local (docker's splitCpArg). */
export function splitCpArg(arg: string): { container: string; path: string } {
  if (arg.startsWith('/')) return { container: '', path: arg };
  const i = arg.indexOf(':');
  if (i < 0 || arg.startsWith('.')) return { container: '', path: arg };
  return { container: arg.slice(0, i), path: arg.slice(i + 1) };
}

/** docker's SplitPathDirEntry: dir and base of a path, a trailing "/." giving base ".". */
export function splitPathDirEntry(p: string): { dir: string; base: string } {
  const cleaned = p.endsWith('/.') ? p : p.replace(/\/+$/, '') || '/';
  if (cleaned === '/') return { dir: '/', base: '.' };
  if (cleaned.endsWith('/.')) return { dir: cleaned.slice(0, -2) || '/', base: '.' };
  return { dir: path.posix.dirname(cleaned), base: path.posix.basename(cleaned) };
}

/** A path that asserts a directory: it ends in "/" or "/.". */
const assertsDir = (p: string): boolean => p.endsWith('/') || p.endsWith('/.');

interface DstInfo { path: string; exists: boolean; isDir: boolean }

/**
 * docker's PrepareArchiveCopy: where a tar of source `srcBase` (a directory or not) is extracted for
 * destination dst, and the name its top member gets there.
 */
export function placeCopy(srcBase: string, srcIsDir: boolean, dst: DstInfo): { dir: string; name: string } {
  const { dir, base } = splitPathDirEntry(dst.path);
  if (dst.exists && dst.isDir) return { dir: dst.path, name: srcBase };
  if (dst.exists && srcIsDir) throw new StatusError('cannot copy directory', 1);
  if (!dst.exists && !srcIsDir && assertsDir(dst.path)) throw new StatusError('no such directory', 1);
  return { dir, name: base };
}

/** Member names from oldBase to newBase (docker's RebaseArchiveEntries). */
function rebase(oldBase: string, newBase: string): ((name: string) => string) | undefined {
  if (oldBase === newBase) return undefined;
  return (name) => {
    const n = name.replace(/^\/+/, '');
    if (n === oldBase || n === `${oldBase}/`) return newBase + n.slice(oldBase.length);
    if (n.startsWith(`${oldBase}/`)) return newBase + n.slice(oldBase.length);
    return n;
  };
}

/** HEAD archive; null when the daemon says there is no such path (or container: the next call says which). */
async function statPath(ctx: Ctx, container: string, p: string): Promise<PathStat | null> {
  try {
    const res = await ctx.client.request('HEAD', `/containers/${enc(container)}/archive`, { query: { path: p } });
    res.resume();
    return decodeStat(res.headers['x-docker-container-path-stat']);
  } catch (e) {
    if (e instanceof ApiError) return null;
    throw e;
  }
}

/** filepath.Abs, keeping a trailing "/" or "/." (docker's resolveLocalPath). */
function absLocal(p: string): string {
  const abs = path.resolve(p);
  if (p.endsWith('/.') || p === '.') return abs === '/' ? '/.' : `${abs}/.`;
  if (p.endsWith('/') && abs !== '/') return `${abs}/`;
  return abs;
}

/** Bytes counted as they pass, for the "Successfully copied" line. */
function counted(r: Readable, n: { bytes: number }): Readable {
  r.on('data', (b: Buffer) => (n.bytes += b.length));
  return r;
}

async function copyFromContainer(ctx: Ctx, container: string, src: string, dst: string, o: { followLink: boolean; archive: boolean; quiet: boolean }): Promise<void> {
  let srcPath = src;
  let rebaseName = '';
  if (o.followLink) {
    const st = await statPath(ctx, container, srcPath);
    if (st && isLinkMode(st.mode)) {
      let target = st.linkTarget;
      if (!target.startsWith('/')) target = path.posix.join(splitPathDirEntry(srcPath).dir, target);
      // docker's GetRebaseName: the copy keeps the link's name, and a trailing "/." stays.
      if (srcPath.endsWith('/.') && !target.endsWith('/.')) target += '/.';
      const linkBase = splitPathDirEntry(srcPath).base;
      if (linkBase !== splitPathDirEntry(target).base) rebaseName = linkBase;
      srcPath = target;
    }
  }
  let dstPath = dst;
  if (dst !== '-') {
    dstPath = absLocal(dst);
    const parent = path.dirname(dstPath.replace(/\/\.?$/, '') || '/');
    if (!fs.statSync(parent, { throwIfNoEntry: false })?.isDirectory()) {
      throw new StatusError(`invalid output path: directory "${parent}" does not exist`, 1);
    }
  }
  const res = await ctx.client.request('GET', `/containers/${enc(container)}/archive`, { query: { path: srcPath } });
  if (dst === '-') {
    await pipeline(res, ctx.out, { end: false });
    return;
  }
  const stat = decodeStat(res.headers['x-docker-container-path-stat']);
  const srcIsDir = isDirMode(stat.mode);
  const { base: tarBase } = splitPathDirEntry(srcPath);
  const srcBase = rebaseName || tarBase;

  // The destination as docker's CopyInfoDestinationPath sees it: symlinks followed.
  let dstReal = dstPath;
  const lst = fs.lstatSync(dstPath.replace(/\/\.?$/, '') || '/', { throwIfNoEntry: false });
  if (lst?.isSymbolicLink()) {
    try {
      dstReal = fs.realpathSync(dstPath);
    } catch {}
  }
  const st = fs.statSync(dstReal, { throwIfNoEntry: false });
  const place = placeCopy(srcBase, srcIsDir, { path: dstReal, exists: !!st, isDir: !!st?.isDirectory() });
  const rename = rebase(tarBase, place.name);
  const n = { bytes: 0 };
  try {
    await extractTar(counted(res, n), place.dir, {
      rename,
      owner: o.archive ? undefined : { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
      noOverwriteDirNonDir: true,
    });
  } catch (e) {
    throw new StatusError((e as Error).message, 1);
  }
  if (!o.quiet && ctx.err.isTTY) ctx.err.write(`Successfully copied ${humanSize(n.bytes)} to ${dst}\n`);
}

async function copyToContainer(ctx: Ctx, src: string, container: string, dst: string, o: { followLink: boolean; archive: boolean; quiet: boolean }): Promise<void> {
  let dstPath = dst;
  let dstStat = await statPath(ctx, container, dstPath);
  if (dstStat && isLinkMode(dstStat.mode)) {
    let target = dstStat.linkTarget;
    if (!target.startsWith('/')) target = path.posix.join(splitPathDirEntry(dstPath).dir, target);
    dstPath = target;
    dstStat = await statPath(ctx, container, dstPath);
  }
  const dstInfo: DstInfo = { path: dstPath, exists: !!dstStat, isDir: !!dstStat && isDirMode(dstStat.mode) };
  const query = { path: '', noOverwriteDirNonDir: true, copyUIDGID: o.archive };

  let body: Readable;
  if (src === '-') {
    if (!dstInfo.isDir) throw new StatusError(`destination "${container}:${dst}" must be a directory`, 1);
    query.path = dstPath;
    body = ctx.stdin;
  } else {
    let local = absLocal(src);
    const lst = fs.lstatSync(local, { throwIfNoEntry: false });
    if (!lst) throw new StatusError(`lstat ${local.replace(/\/\.?$/, '')}: no such file or directory`, 1);
    let srcBase = splitPathDirEntry(local).base;
    if (o.followLink && lst.isSymbolicLink()) {
      // -L: the link's target is copied, under the link's name.
      local = fs.realpathSync(local);
    }
    const srcIsDir = fs.statSync(local, { throwIfNoEntry: false })?.isDirectory() ?? false;
    if (assertsDir(src) && !srcIsDir) throw new StatusError(`lstat ${local}: not a directory`, 1);
    const place = placeCopy(srcBase, srcIsDir && (!lst.isSymbolicLink() || o.followLink), dstInfo);
    query.path = place.dir;
    srcBase = place.name;
    body = packPath(local.replace(/\/\.$/, '') || '/', srcBase);
  }
  const n = { bytes: 0 };
  const res = await ctx.client.request('PUT', `/containers/${enc(container)}/archive`, { query, stream: counted(body, n), contentType: 'application/x-tar' });
  res.resume();
  if (!o.quiet && ctx.err.isTTY) ctx.err.write(`Successfully copied ${humanSize(n.bytes)} to ${container}:${dst}\n`);
}

export const cp: Command = {
  name: 'cp',
  usage: 'cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH',
  description: 'Copy files/folders between a container and the local filesystem',
  flags: [
    { long: 'archive', short: 'a', kind: 'bool', help: 'Archive mode (copy all uid/gid information)' },
    { long: 'follow-link', short: 'L', kind: 'bool', help: 'Always follow symbol link in SRC_PATH' },
    { long: 'quiet', short: 'q', kind: 'bool', help: 'Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached' },
  ],
  args: { min: 2, max: 2 },
  async run(ctx, p) {
    const src = splitCpArg(p.args[0]!);
    const dst = splitCpArg(p.args[1]!);
    const o = { followLink: p.bool('follow-link'), archive: p.bool('archive'), quiet: p.bool('quiet') };
    if (src.container && dst.container) throw new StatusError('copying between containers is not supported', 1);
    if (!src.container && !dst.container) throw new StatusError('must specify at least one container source', 1);
    if ((src.container && src.path === '') || (dst.container && dst.path === '')) throw new StatusError('filepath cannot be empty', 1);
    if (src.container) await copyFromContainer(ctx, src.container, src.path, dst.path, o);
    else await copyToContainer(ctx, src.path, dst.container, dst.path, o);
    return 0;
  },
};

const KIND = ['C', 'A', 'D'];

export const diff: Command = {
  name: 'diff',
  usage: 'diff CONTAINER',
  description: "Inspect changes to files or directories on a container's filesystem",
  flags: [],
  args: { min: 1, max: 1 },
  async run(ctx, p) {
    const changes = await ctx.client.json<{ Path: string; Kind: number }[] | null>('GET', `/containers/${enc(p.args[0]!)}/changes`);
    ctx.out.write((changes ?? []).map((c) => `${KIND[c.Kind] ?? '?'} ${c.Path}\n`).join(''));
    return 0;
  },
};

/** A response body to -o FILE (a temp file renamed into place, as docker does) or to stdout, never a terminal. */
export async function writeOutput(ctx: Ctx, body: Readable, file: string | undefined, what: string): Promise<void> {
  if (!file) {
    if (ctx.out.isTTY) {
      body.destroy();
      throw new StatusError('cowardly refusing to save to a terminal. Use the -o flag or redirect', 1);
    }
    await pipeline(body, ctx.out, { end: false });
    return;
  }
  const abs = path.resolve(file);
  const tmp = path.join(path.dirname(abs), `.${path.basename(abs)}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  try {
    await pipeline(body, fs.createWriteStream(tmp, { mode: 0o600 }));
    fs.chmodSync(tmp, 0o644 & ~process.umask());
    fs.renameSync(tmp, abs);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    if ((e as NodeJS.ErrnoException).code) throw new StatusError(`failed to ${what}: ${(e as Error).message}`, 1);
    throw e;
  }
}

export const exportCmd: Command = {
  name: 'export',
  usage: 'export [OPTIONS] CONTAINER',
  description: "Export a container's filesystem as a tar archive",
  flags: [{ long: 'output', short: 'o', kind: 'string', help: 'Write to a file, instead of STDOUT' }],
  args: { min: 1, max: 1 },
  async run(ctx, p) {
    const file = p.str('output');
    if (!file && ctx.out.isTTY) throw new StatusError('cowardly refusing to save to a terminal. Use the -o flag or redirect', 1);
    const res = await ctx.client.request('GET', `/containers/${enc(p.args[0]!)}/export`);
    await writeOutput(ctx, res, file, 'export container');
    return 0;
  },
};
