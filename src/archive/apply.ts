import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { InvalidParameter } from '../errors.js';
import { log } from '../log.js';
import * as sys from '../sys/index.js';
import { PaxTap, type PaxRecords } from './pax.js';
import { cleanName, climbsOut, safeJoin, safeJoinParent } from './safejoin.js';

/**
 * How a layer's `.wh.` entries land: 'overlay' writes overlayfs' own marks (a 0/0 char device, the opaque
 * xattr) into what will be an overlay upper/lower dir; 'delete' really removes what they name, for a tree
 * that is the full filesystem (a mounted snapshot, or a copy driver's dir).
 */
export type WhiteoutMode = 'overlay' | 'delete';

/** Owner ids of one side to the other's: a remapped container's ids to the host's, or back. */
export type IdShift = (uid: number, gid: number) => { uid: number; gid: number };

/** How `docker cp` extracts (extractTar): other choices than a layer's. */
export interface ExtractOptions {
  /** Where the tar's root lands, relative to root; symlinks still resolve inside root. Default ''. */
  base?: string;
  /** Every member owned by this uid/gid instead of the tar's (docker cp without -a). */
  owner?: { uid: number; gid: number };
  /** Owners through this map after `owner` (into a remapped container: its ids to the host's). */
  ids?: IdShift;
  /** Member names as the caller wants them (docker's RebaseArchiveEntries); hard link targets too. */
  rename?: (name: string) => string;
  /** Refuse to replace a directory with a non-directory and the reverse (docker's NoOverwriteDirNonDir). */
  noOverwriteDirNonDir?: boolean;
  /** A member (or hard link target) whose name climbs above the root is an error, not clamped at the root. */
  strict?: boolean;
}

export interface ApplyResult {
  /** "sha256:<hex>" of the uncompressed tar. */
  diffId: string;
  /** Bytes of file content unpacked. */
  size: number;
}

export type TarHeader = Partial<Omit<tar.Header, 'pax' | 'type'>> & Pick<tar.Header, 'name'> & { type?: tar.Header['type'] | null };
/**
 * An entry's content: tar-stream's stream (a streamx Readable: async-iterable, resumable), the whole
 * content in one buffer, or pieces from a packer that applies while it packs (it reads them itself).
 */
type Body = (AsyncIterable<unknown> & { resume(): unknown }) | Buffer | AsyncIterable<Buffer>;

/** Let the body go unread. */
function skip(body: Body): void {
  if (!Buffer.isBuffer(body) && 'resume' in body) body.resume();
}

/** Entries applied one by one onto a directory, as applyLayer does from a tar; finish() once after the last. */
export interface EntryApplier {
  /** Bytes of file content applied so far. */
  readonly size: number;
  entry(header: TarHeader, body: Body, pax: PaxRecords): Promise<void>;
  finish(): void;
}

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE = '.wh..wh..opq';
const XATTR_PREFIX = 'SCHILY.xattr.';

/** Hashes (and counts) the bytes flowing through: the diffId is the digest of the uncompressed tar. */
class Digester extends Transform {
  readonly hash = crypto.createHash('sha256');
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    cb(null, chunk);
  }
}

/** Look at the first bytes to tell gzip from plain tar, without losing them. */
export async function decompressed(input: Readable): Promise<Readable[]> {
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head: Buffer[] = [];
  let have = 0;
  let ended = false;
  while (have < 4) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    head.push(chunk);
    have += chunk.length;
  }
  const first = Buffer.concat(head);
  const rest = Readable.from(
    (async function* () {
      if (first.length) yield first;
      if (ended) return;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield r.value;
      }
    })(),
    { objectMode: false },
  );
  // zlib's default 16 KiB output chunks halve inflate throughput (one threadpool round trip each).
  if (first[0] === 0x1f && first[1] === 0x8b) return [rest, zlib.createGunzip({ chunkSize: 256 << 10 })];
  if (first.length >= 4 && first.readUInt32LE(0) === 0xfd2fb528) {
    rest.destroy();
    throw new InvalidParameter('zstd-compressed layers are not supported');
  }
  return [rest];
}

interface DirTimes {
  path: string;
  mtime: Date;
}

/** Files up to this size are read whole and written with a few synchronous calls; bigger ones stream. */
const SMALL_FILE = 1 << 20;

/** The daemon's umask: a file created with a mode the umask would trim needs a chmod after. */
const UMASK = process.umask();

async function collect(body: Body): Promise<Buffer> {
  if (Buffer.isBuffer(body)) return body;
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
}

/**
 * Applies entries one at a time with synchronous calls. Creating a file on ext4 is serialised on
 * its directory, so handing each call to the libuv pool overlapped nothing and cost ~20 µs of
 * dispatch per call on the main thread; the event loop still runs between entries.
 */
class Applier implements EntryApplier {
  size = 0;
  private readonly dirs: DirTimes[] = [];
  /** Resolved, existing parent directories by tar dirname; dropped whenever a removal could change a resolution. */
  private readonly parents = new Map<string, string>();
  /**
   * When unpacking into an empty dir, every path that exists is one this unpack made:
   * a path not in here needs no lstat.
   */
  private readonly created: Set<string> | null;

  /** 'delete' mode: paths this layer wrote, which an opaque marker of the same layer must keep. */
  private readonly written = new Set<string>();

  constructor(private readonly root: string, private readonly whiteouts: WhiteoutMode | 'none', private readonly opts: ExtractOptions = {}) {
    this.created = fs.readdirSync(root).length === 0 && !opts.base ? new Set([root]) : null;
  }

  async entry(header: TarHeader, body: Body, pax: PaxRecords): Promise<void> {
    const { owner, ids, rename, base: at } = this.opts;
    if (this.opts.strict && (climbsOut(header.name) || (header.type === 'link' && climbsOut(header.linkname ?? '')))) {
      throw new InvalidParameter(`invalid tar member "${header.name}": it points outside of the archive`);
    }
    let h = header;
    if (owner || ids || rename) {
      h = { ...h, ...owner };
      if (ids) Object.assign(h, ids(h.uid ?? 0, h.gid ?? 0));
      if (rename) {
        h.name = rename(h.name);
        if (h.type === 'link' && h.linkname) h.linkname = rename(h.linkname);
      }
    }
    const rel = at ? cleanName(`${at}/${cleanName(h.name)}`) : cleanName(h.name);
    if (at && cleanName(h.name) === '') {
      // The tar's own root is the extraction point, which exists already: nothing of it changes.
      skip(body);
      return;
    }
    if (rel === '') {
      // The root itself ("./"): only its metadata applies.
      skip(body);
      if (h.type === 'directory') this.meta(this.root, h, pax, true);
      return;
    }
    const { parent, target, base } = this.resolve(rel);

    if (this.whiteouts === 'none') {
      if (this.opts.noOverwriteDirNonDir) this.checkOverwrite(target, h.type === 'directory', rel);
    } else if (base === OPAQUE) {
      skip(body);
      if (this.whiteouts === 'overlay') {
        sys.setxattr(parent, 'trusted.overlay.opaque', Buffer.from('y'));
        return;
      }
      // What the layers below put in this dir goes; what this layer wrote stays.
      for (const name of fs.readdirSync(parent)) {
        const p = path.join(parent, name);
        if (!this.written.has(p)) this.clear(p, false);
      }
      return;
    } else if (base.startsWith(WHITEOUT_PREFIX)) {
      skip(body);
      const victim = path.join(parent, base.slice(WHITEOUT_PREFIX.length));
      if (path.dirname(victim) !== parent) throw new InvalidParameter(`invalid whiteout name ${h.name}`);
      this.clear(victim, false);
      if (this.whiteouts === 'delete') return;
      sys.mknod(victim, sys.S_IFCHR, 0, 0);
      sys.lchown(victim, h.uid ?? 0, h.gid ?? 0);
      return;
    }
    if (this.whiteouts === 'delete') this.written.add(target);

    const perm = (h.mode ?? 0o644) & 0o7777;
    switch (h.type) {
      case 'directory': {
        skip(body);
        if (!this.clear(target, true)) fs.mkdirSync(target, { mode: 0o700 });
        this.meta(target, h, pax, true);
        this.parents.set(rel, target);
        return;
      }
      case 'file':
      case 'contiguous-file':
      case null:
      case undefined: {
        this.clear(target, false);
        this.size += h.size ?? 0;
        if (Buffer.isBuffer(body) || (h.size ?? 0) <= SMALL_FILE) {
          this.writeSmall(target, await collect(body), h, pax);
          return;
        }
        // 'wx' is O_CREAT|O_EXCL: never opens through a symlink planted at target. Written with sync
        // calls: a pool round trip per 64 KiB chunk of a socket cost more than the write into the page
        // cache (a 206 MB docker load's outer tar: 1.0-1.3 s through a write stream, 0.62-0.66 s so).
        const fd = fs.openSync(target, 'wx', 0o600);
        try {
          for await (const chunk of body as AsyncIterable<Buffer>) writeAllSync(fd, chunk);
        } finally {
          fs.closeSync(fd);
        }
        break;
      }
      case 'symlink': {
        skip(body);
        // No cached parent can pass through target: it was no directory a moment ago (clear() drops the cache when it removes one).
        this.clear(target, false);
        fs.symlinkSync(h.linkname ?? '', target);
        break;
      }
      case 'link': {
        skip(body);
        const link = cleanName(h.linkname ?? '');
        const src = safeJoinParent(this.root, at ? cleanName(`${at}/${link}`) : link).target;
        if (src === this.root || src === target) throw new InvalidParameter(`invalid hardlink ${h.name} -> ${h.linkname}`);
        this.clear(target, false);
        fs.linkSync(src, target);
        return; // a hard link shares the inode's metadata; the header's copy adds nothing
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        skip(body);
        this.clear(target, false);
        const kind = h.type === 'fifo' ? sys.S_IFIFO : h.type === 'block-device' ? sys.S_IFBLK : sys.S_IFCHR;
        sys.mknod(target, kind | perm, h.devmajor ?? 0, h.devminor ?? 0);
        break;
      }
      default:
        skip(body);
        throw new InvalidParameter(`unhandled tar entry type ${String(h.type)} for ${h.name}`);
    }
    this.meta(target, h, pax, false);
  }

  /** safeJoinParent, creating the parent; cached per directory until a removal could change the answer. */
  private resolve(rel: string): { parent: string; target: string; base: string } {
    // rel is clean (cleanName): its last slash splits it, as dirname/basename would.
    const slash = rel.lastIndexOf('/');
    const dir = slash < 0 ? '.' : rel.slice(0, slash);
    const base = rel.slice(slash + 1);
    let parent = this.parents.get(dir);
    if (parent === undefined) {
      parent = safeJoin(this.root, dir);
      fs.mkdirSync(parent, { recursive: true, mode: 0o755 });
      this.parents.set(dir, parent);
      for (let d = parent; this.created && !this.created.has(d); d = path.dirname(d)) this.created.add(d);
    }
    return { parent, target: parent.endsWith('/') ? parent + base : `${parent}/${base}`, base };
  }

  /** docker's NoOverwriteDirNonDir: a directory stays a directory and a non-directory stays one. */
  private checkOverwrite(target: string, isDir: boolean, rel: string): void {
    const st = fs.lstatSync(target, { throwIfNoEntry: false });
    if (!st || st.isDirectory() === isDir) return;
    throw new InvalidParameter(isDir
      ? `cannot overwrite non-directory "/${rel}" with directory "/${rel}"`
      : `cannot overwrite directory "/${rel}" with non-directory "/${rel}"`);
  }

  /** Remove whatever sits at `target` (never following a symlink), unless it is a directory and `keepDir`. */
  private clear(target: string, keepDir: boolean): boolean {
    if (this.created && !this.created.has(target)) {
      this.created.add(target); // every clear() is followed by a create at target
      return false;
    }
    let st: fs.Stats;
    try {
      st = fs.lstatSync(target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    if (keepDir && st.isDirectory()) return true;
    fs.rmSync(target, { recursive: true, force: true });
    this.parents.clear();
    return false;
  }

  /**
   * A small file in one go: create exclusively with its final mode, write, then only the
   * calls that change something (we are root, so a new file is already 0:0; the umask
   * or special bits may need a chmod), xattrs, and times, through the open fd.
   */
  private writeSmall(target: string, data: Buffer, h: TarHeader, pax: PaxRecords): void {
    const perm = (h.mode ?? 0o644) & 0o7777;
    const uid = h.uid ?? 0;
    const gid = h.gid ?? 0;
    const fd = fs.openSync(target, 'wx', perm & 0o777);
    try {
      if (data.length) fs.writeSync(fd, data, 0, data.length, 0);
      const owned = uid !== 0 || gid !== 0;
      if (owned) fs.fchownSync(fd, uid, gid);
      // chown clears setuid/setgid, so special bits are set after it.
      if (owned || perm & (0o7000 | UMASK)) fs.fchmodSync(fd, perm);
      this.xattrs(target, pax, false);
      const mtime = h.mtime ?? new Date(0);
      fs.futimesSync(fd, mtime, mtime);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Owner, then mode (chown clears setuid bits; symlinks have none), xattrs, and times (directories: deferred to the end). */
  private meta(target: string, h: TarHeader, pax: PaxRecords, isDir: boolean): void {
    const isLink = h.type === 'symlink';
    if (!isLink || h.uid || h.gid) sys.lchown(target, h.uid ?? 0, h.gid ?? 0);
    if (!isLink) fs.chmodSync(target, (h.mode ?? (isDir ? 0o755 : 0o644)) & 0o7777);
    this.xattrs(target, pax, isLink);
    const mtime = h.mtime ?? new Date(0);
    if (isDir) this.dirs.push({ path: target, mtime });
    else fs.lutimesSync(target, mtime, mtime);
  }

  private xattrs(target: string, pax: PaxRecords, isLink: boolean): void {
    for (const [key, value] of pax) {
      if (!key.startsWith(XATTR_PREFIX)) continue;
      const name = key.slice(XATTR_PREFIX.length);
      // overlay's own xattrs (redirect, metacopy, ...) would change what the mount shows: a tar may not set them.
      if (name.startsWith('trusted.overlay.')) continue;
      try {
        sys.setxattr(target, name, value);
      } catch (err) {
        if (!(err instanceof sys.SysError && (err.code === 'ENOTSUP' || (isLink && err.code === 'EPERM')))) throw err;
        log.warn('xattr not applied', { path: target, name, error: err.code });
      }
    }
  }

  finish(): void {
    // Deepest first, so setting a child's times does not disturb its parent's.
    for (const d of this.dirs.reverse()) fs.utimesSync(d.path, d.mtime, d.mtime);
  }
}

/**
 * Unpack a layer tar (plain or gzip) into dir with OCI layer semantics, its
 * `.wh.` whiteouts as `whiteouts` says (overlay's marks by default).
 * Every write goes through safeJoin, so a hostile tar cannot escape dir.
 */
export async function applyLayer(input: Readable, dir: string, whiteouts: WhiteoutMode = 'overlay'): Promise<ApplyResult> {
  return run(input, layerApplier(dir, whiteouts));
}

/** The applier applyLayer uses, for a caller that has the entries without a tar (the packer, applying while it packs). */
export function layerApplier(dir: string, whiteouts: WhiteoutMode): EntryApplier {
  const root = safeJoin(dir, '/');
  fs.mkdirSync(root, { recursive: true });
  return new Applier(root, whiteouts);
}

/**
 * Extract a plain tar (or gzip) as `docker cp` does: `.wh.` names are ordinary files, every path
 * (and every symlink met on the way) resolved inside root, options as ExtractOptions says.
 */
export async function extractTar(input: Readable, root: string, opts: ExtractOptions = {}): Promise<ApplyResult> {
  return run(input, new Applier(path.resolve(root), 'none', opts));
}

async function run(input: Readable, applier: EntryApplier): Promise<ApplyResult> {
  const digester = new Digester();
  const extract = tar.extract();
  const tap = new PaxTap();
  extract.on('entry', (header, stream, next) => {
    applier.entry(header, stream, tap.next()).then(
      () => next(),
      (err: unknown) => {
        stream.resume();
        next(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
  const source = await decompressed(input);
  // tar-stream's extract is a streamx Writable, which node's pipeline drives like its own.
  await pipeline([...source, digester, tap, extract as unknown as NodeJS.WritableStream]);
  applier.finish();
  return { diffId: `sha256:${digester.hash.digest('hex')}`, size: applier.size };
}

function writeAllSync(fd: number, b: Buffer): void {
  for (let off = 0; off < b.length;) off += fs.writeSync(fd, b, off, b.length - off);
}
