import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import * as sys from '../sys/index.js';
import { layerApplier, type ApplyResult, type EntryApplier, type IdShift, type TarHeader, type WhiteoutMode } from './apply.js';
import { encodePax } from './pax.js';

/*
 * A small ustar + PAX writer of our own: tar-stream cannot emit PAX records
 * with binary values (xattrs such as security.capability), and layers need them.
 * Output is deterministic for a given tree: sorted names, no atime/ctime.
 *
 * The bytes go out in chunks of CHUNK: a layer of small files is mostly 512-byte headers and
 * paddings, and a stream chunk for each cost more than reading the files. Files up to SMALL_FILE
 * are read with one call into the chunk itself.
 */

const BLOCK = 512;
const CHUNK = 1 << 20;
/** Read whole, straight into the output chunk. */
const INLINE_FILE = 64 << 10;
/** Read whole into a buffer of their own (and applied with one write, as applyLayer does); bigger ones go by pieces. */
const SMALL_FILE = 1 << 20;
/** Most time the packer runs before it lets the event loop run. */
const SLICE_MS = 20;
const S_IFMT = 0o170000;
const TYPE = { file: '0', link: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6', pax: 'x' } as const;
type TypeFlag = (typeof TYPE)[keyof typeof TYPE];
/** tar-stream's names of the types, which the applier takes. */
const TYPE_NAME: Record<Exclude<TypeFlag, 'x'>, TarHeader['type']> = {
  0: 'file', 1: 'link', 2: 'symlink', 3: 'character-device', 4: 'block-device', 5: 'directory', 6: 'fifo',
};

interface Member {
  name: string;
  type: TypeFlag;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number; // seconds
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extra PAX records (xattrs). */
  records?: [string, Buffer][];
}

function writeOctal(buf: Buffer, value: number, offset: number, width: number): boolean {
  const s = Math.floor(value).toString(8);
  if (s.length > width - 1) return false;
  buf.write(s.padStart(width - 1, '0'), offset, 'ascii');
  buf[offset + width - 1] = 0;
  return true;
}

const fits = (s: string, max: number): boolean => Buffer.byteLength(s) <= max;

/** The ustar header of m into h (512 zero bytes); what does not fit goes to `records`. */
function encodeHeader(m: Member, records: [string, Buffer][], h: Buffer): void {
  if (fits(m.name, 100)) h.write(m.name, 0, 'utf8');
  else {
    records.push(['path', Buffer.from(m.name)]);
    h.write(m.name.slice(-99).replace(/^[^\x20-\x7e]+/, ''), 0, 'ascii');
  }
  writeOctal(h, m.mode & 0o7777, 100, 8);
  if (!writeOctal(h, m.uid, 108, 8)) records.push(['uid', Buffer.from(String(m.uid))]);
  if (!writeOctal(h, m.gid, 116, 8)) records.push(['gid', Buffer.from(String(m.gid))]);
  if (!writeOctal(h, m.size, 124, 12)) {
    records.push(['size', Buffer.from(String(m.size))]);
    writeOctal(h, 0, 124, 12);
  }
  writeOctal(h, Math.max(0, m.mtime), 136, 12);
  h.write(m.type, 156, 'ascii');
  if (m.linkname !== undefined) {
    if (fits(m.linkname, 100)) h.write(m.linkname, 157, 'utf8');
    else records.push(['linkpath', Buffer.from(m.linkname)]);
  }
  h.write('ustar\u000000', 257, 'ascii');
  writeOctal(h, m.devmajor ?? 0, 329, 8);
  writeOctal(h, m.devminor ?? 0, 337, 8);
}

/** Bytes from here on stay zero in our headers (no uname, gname or prefix): the checksum need not add them. */
const HEADER_END = 345;

function checksum(h: Buffer, withLink: boolean): void {
  h.fill(0x20, 148, 156);
  let sum = 0;
  // Without a link name, 157-256 are zeros too.
  const skipFrom = withLink ? HEADER_END : 157;
  for (let i = 0; i < skipFrom; i++) sum += h[i]!;
  for (let i = withLink ? HEADER_END : 257; i < HEADER_END; i++) sum += h[i]!;
  h.write(sum.toString(8).padStart(6, '0') + '\u0000 ', 148, 'ascii');
}

/** Where headers are encoded before they go into the chunk (one at a time: encoding is synchronous). */
const scratch = Buffer.alloc(BLOCK);

const paddingOf = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

/** One item of a change list: the entry at `name` under the root as it is, or a whiteout of `name`. */
export interface ChangeItem {
  name: string;
  whiteout?: boolean;
}

/** Where a packer also writes what it packs: a layer dir, with whiteouts as applyLayer writes them there. */
export interface ApplyTarget {
  dir: string;
  whiteouts: WhiteoutMode;
}

class Aborted extends Error {
  override name = 'AbortError';
  constructor() {
    super('tar stream closed before the end');
  }
}

/**
 * Packs entries into a tar, handed out through `emit` in big chunks (and hashed on the way: the
 * diffId), and, given an applier, hands each entry with the very bytes packed to it: the applied
 * tree is what unpacking this tar gives, even while the source changes underneath.
 */
export class Packer {
  private buf = Buffer.allocUnsafe(CHUNK);
  private off = 0;
  /** Complete chunks (and big files' pieces), in order, not yet out. */
  private readonly pending: Buffer[] = [];
  private readonly hash = crypto.createHash('sha256');
  /** "dev:ino" -> first name, for hard links. */
  private readonly seen = new Map<string, string>();
  private sliceStart = performance.now();

  /** ids: owners as the tar should name them (a remapped container's host uids back to its own). */
  constructor(private readonly emit: (chunk: Buffer) => Promise<void>, private readonly applier: EntryApplier | null,
    private readonly ids?: IdShift) {}

  /** n bytes at the end of the current chunk (n <= CHUNK), for the caller to fill. */
  private take(n: number): Buffer {
    if (this.off + n > this.buf.length) this.spill();
    const b = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return b;
  }

  private zeros(n: number): void {
    if (n > 0) this.take(n).fill(0);
  }

  /** The chunk so far goes out at the next flush; a fresh one (never reused: the applier may hold slices of the old). */
  private spill(): void {
    if (this.off === 0) return;
    this.pending.push(this.buf.subarray(0, this.off));
    this.buf = Buffer.allocUnsafe(CHUNK);
    this.off = 0;
  }

  /** Send what is complete; let the event loop run now and then. */
  private async flush(all = false): Promise<void> {
    if (all) this.spill();
    while (this.pending.length) {
      const c = this.pending.shift()!;
      this.hash.update(c);
      await this.emit(c);
      this.sliceStart = performance.now();
    }
    if (performance.now() - this.sliceStart > SLICE_MS) {
      await new Promise<void>((r) => setImmediate(r));
      this.sliceStart = performance.now();
    }
  }

  private owned(m: Member): Member {
    return this.ids ? { ...m, ...this.ids(m.uid, m.gid) } : m;
  }

  private header(member: Member): void {
    const m = this.owned(member);
    const records: [string, Buffer][] = m.records?.length ? [...m.records] : [];
    const main = scratch.fill(0);
    encodeHeader(m, records, main);
    checksum(main, m.linkname !== undefined);
    if (records.length) {
      const saved = Buffer.from(main);
      const pax = encodePax(records);
      const ph = this.take(BLOCK).fill(0);
      encodeHeader({ name: 'PaxHeader', type: TYPE.pax, mode: 0o644, uid: 0, gid: 0, size: pax.length, mtime: m.mtime }, [], ph);
      checksum(ph, false);
      for (let o = 0; o < pax.length; o += CHUNK) pax.copy(this.take(Math.min(CHUNK, pax.length - o)), 0, o);
      this.zeros(paddingOf(pax.length));
      saved.copy(this.take(BLOCK));
      return;
    }
    main.copy(this.take(BLOCK));
  }

  /** A member without content: out, and to the applier. */
  private async plain(m: Member): Promise<void> {
    this.header(m);
    await this.apply(m, Buffer.alloc(0));
    await this.flush();
  }

  private async apply(member: Member, body: Buffer | AsyncIterable<Buffer>): Promise<void> {
    if (!this.applier) return;
    const m = this.owned(member);
    const h: TarHeader = {
      name: m.name, type: TYPE_NAME[m.type as Exclude<TypeFlag, 'x'>], mode: m.mode & 0o7777, uid: m.uid, gid: m.gid,
      size: m.size, mtime: new Date(m.mtime * 1000),
    };
    if (m.linkname !== undefined) h.linkname = m.linkname;
    if (m.devmajor !== undefined) h.devmajor = m.devmajor;
    if (m.devminor !== undefined) h.devminor = m.devminor;
    await this.applier.entry(h, body, new Map(m.records ?? []));
  }

  /** Every entry of `dir` as `${prefix}/<entry>` (`<entry>` for an empty prefix), depth first, names sorted. */
  async tree(dir: string, prefix: string, overlay: boolean): Promise<void> {
    await this.below(path.resolve(dir), prefix, overlay);
  }

  /** tree() below a resolved dir: paths are joined by hand (path.join per entry cost more than its lstat). */
  private async below(dir: string, prefix: string, overlay: boolean): Promise<void> {
    const at = dir.endsWith('/') ? dir : `${dir}/`;
    for (const entry of fs.readdirSync(dir).sort()) {
      await this.entry(at + entry, prefix ? `${prefix}/${entry}` : entry, overlay);
    }
  }

  /** A directory's own header (no contents). */
  async dir(full: string, name: string): Promise<void> {
    const st = fs.lstatSync(full);
    await this.plain({ name, type: TYPE.dir, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: 0, mtime: Math.floor(st.mtimeMs / 1000), records: xattrRecords(full) });
  }

  /** An OCI whiteout of `name` (a path under root), owned like its parent there. */
  async whiteout(root: string, name: string): Promise<void> {
    const dir = path.posix.dirname(name);
    const st = fs.lstatSync(path.dirname(path.join(root, name)));
    await this.plain(marker(`${dir === '.' ? '' : `${dir}/`}.wh.${path.posix.basename(name)}`, st));
  }

  /** One path (never followed) as member `name`, and everything below it if it is a directory. */
  async member(full: string, name: string, overlay: boolean): Promise<void> {
    await this.entry(path.resolve(full), name, overlay);
  }

  private async entry(full: string, name: string, overlay: boolean): Promise<void> {
    const st = fs.lstatSync(full);
    const type = st.mode & S_IFMT;
    if (overlay && type === sys.S_IFCHR && st.rdev === 0) {
      const slash = name.lastIndexOf('/');
      await this.plain(marker(`${name.slice(0, slash + 1)}.wh.${name.slice(slash + 1)}`, st));
      return;
    }
    const m: Member = {
      name, type: TYPE.file, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: 0,
      mtime: Math.floor(st.mtimeMs / 1000), records: xattrRecords(full),
    };
    if (st.isDirectory()) {
      await this.plain({ ...m, name: `${name}/`, type: TYPE.dir });
      if (overlay && sys.getxattr(full, 'trusted.overlay.opaque')?.toString() === 'y') await this.plain(marker(`${name}/.wh..wh..opq`, st));
      await this.below(full, name, overlay);
    } else if (st.isSymbolicLink()) {
      await this.plain({ ...m, type: TYPE.symlink, linkname: fs.readlinkSync(full) });
    } else if (st.isFile()) {
      const id = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1 ? this.seen.get(id) : undefined;
      if (first !== undefined) {
        await this.plain({ ...m, type: TYPE.link, linkname: first });
        return;
      }
      if (st.nlink > 1) this.seen.set(id, name);
      await this.file(full, { ...m, size: st.size });
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      const rdev = st.rdev;
      const devmajor = ((rdev >> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
      const devminor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
      await this.plain({ ...m, type: st.isCharacterDevice() ? TYPE.char : TYPE.block, devmajor, devminor });
    } else if (st.isFIFO()) {
      await this.plain({ ...m, type: TYPE.fifo });
    }
    // sockets are not archived (tar has no type for them; Docker skips them too)
  }

  /**
   * A regular file of m.size bytes (its lstat): exactly that many go out, whatever happens to the file
   * meanwhile (zeros if it shrank), or the tar's framing would break. O_NOFOLLOW|O_NONBLOCK: what was
   * lstat'ed as a file and is swapped for a symlink or FIFO before the open is not followed or waited on.
   */
  private async file(full: string, m: Member): Promise<void> {
    const fd = fs.openSync(full, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    try {
      this.header(m);
      if (m.size <= SMALL_FILE) {
        const data = m.size <= INLINE_FILE ? this.take(m.size) : Buffer.allocUnsafe(m.size);
        readFully(fd, data, 0);
        if (m.size > INLINE_FILE) {
          this.spill();
          this.pending.push(data);
        }
        this.zeros(paddingOf(m.size));
        await this.apply(m, data);
        await this.flush();
        return;
      }
      await this.flush(true);
      const body = this.pieces(fd, m.size);
      await this.apply(m, body);
      // Whatever the applier left unread (nothing, unless it failed) still goes into the tar.
      for await (const _ of body);
      this.zeros(paddingOf(m.size));
      await this.flush();
    } finally {
      fs.closeSync(fd);
    }
  }

  /** A big file's content, a chunk at a time: each piece goes into the tar before the applier gets it. */
  private async *pieces(fd: number, size: number): AsyncGenerator<Buffer> {
    for (let pos = 0; pos < size; pos += CHUNK) {
      const piece = Buffer.allocUnsafe(Math.min(CHUNK, size - pos));
      readFully(fd, piece, pos);
      this.pending.push(piece);
      await this.flush();
      yield piece;
    }
  }

  /** The end-of-archive blocks; everything out. The diffId of what went out. */
  async end(): Promise<string> {
    this.zeros(2 * BLOCK);
    await this.flush(true);
    this.applier?.finish();
    return `sha256:${this.hash.digest('hex')}`;
  }
}

/** Fills b from the file at `pos`; what the file no longer has is zeros. */
function readFully(fd: number, b: Buffer, pos: number): void {
  let got = 0;
  while (got < b.length) {
    const n = fs.readSync(fd, b, got, b.length - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  if (got < b.length) b.fill(0, got);
}

function marker(name: string, st: fs.Stats): Member {
  return { name, type: TYPE.file, mode: 0o644, uid: st.uid, gid: st.gid, size: 0, mtime: Math.floor(st.mtimeMs / 1000) };
}

function xattrRecords(full: string): [string, Buffer][] {
  let names: string[];
  try {
    names = sys.listxattr(full);
  } catch {
    return [];
  }
  const out: [string, Buffer][] = [];
  for (const name of names.sort()) {
    if (name.startsWith('trusted.overlay.')) continue;
    const value = sys.getxattr(full, name);
    if (value) out.push([`SCHILY.xattr.${name}`, value]);
  }
  return out;
}

/** A tar packed by `job`, and (with `into`) applied there as it goes. */
export interface Packed {
  /** Started on its first read; each entry is applied before its bytes come out. */
  tar: Readable;
  /** Once the tar has ended: its diffId and the bytes of file content applied (0 without `into`). */
  done: Promise<ApplyResult>;
}

/**
 * Run `job` on a Packer whose output is a stream; `into` makes it apply every entry there too. The job
 * starts on the first read and waits for its reader (backpressure); a reader that goes away stops it.
 */
export function packWith(job: (p: Packer) => Promise<void>, into?: ApplyTarget, ids?: IdShift): Packed {
  let wake: (() => void) | null = null;
  let start: () => void = () => {};
  const started = new Promise<void>((r) => { start = r; });
  const tar = new Readable({
    highWaterMark: CHUNK,
    read() {
      start();
      wake?.();
    },
    destroy(err, cb) {
      start();
      wake?.();
      cb(err);
    },
  });
  const emit = async (chunk: Buffer): Promise<void> => {
    if (tar.destroyed) throw new Aborted();
    if (tar.push(chunk)) return;
    await new Promise<void>((r) => { wake = r; });
    wake = null;
    if (tar.destroyed) throw new Aborted();
  };
  const done = (async (): Promise<ApplyResult> => {
    await started;
    if (tar.destroyed) throw new Aborted();
    const applier = into ? layerApplier(into.dir, into.whiteouts) : null;
    const p = new Packer(emit, applier, ids);
    await job(p);
    const diffId = await p.end();
    tar.push(null);
    return { diffId, size: applier?.size ?? 0 };
  })();
  done.catch((err: unknown) => {
    if (!tar.destroyed) tar.destroy(err as Error);
  });
  return { tar, done };
}

/** Tar of a list of changes (parents before children) read from root: each entry as it is there (a directory's own header only), each whiteout as an OCI `.wh.` marker. */
export async function packChangeList(p: Packer, root: string, items: AsyncIterable<ChangeItem>): Promise<void> {
  for await (const it of items) {
    const full = path.join(root, it.name);
    if (it.whiteout) await p.whiteout(root, it.name);
    else if (fs.lstatSync(full).isDirectory()) await p.dir(full, `${it.name}/`);
    else await p.member(full, it.name, false);
  }
}

export function packChanges(root: string, items: AsyncIterable<ChangeItem>): Readable {
  return packWith((p) => packChangeList(p, root, items)).tar;
}

/** Tar of the changes recorded in an overlay upper dir, whiteouts in OCI form. */
export function diffLayer(upperDir: string): Readable {
  return packWith((p) => p.tree(upperDir, '', true)).tar;
}

/** Tar of a directory tree as-is. */
export function packDir(dir: string, ids?: IdShift): Readable {
  return packWith((p) => p.tree(dir, '', false), undefined, ids).tar;
}

/**
 * Tar of one path as member `name` (a directory with everything below it, as `name/...`): what
 * `docker cp` sends and receives. The path itself is not followed; name "." gives a directory's
 * contents as "./<entry>".
 */
export function packPath(full: string, name: string, ids?: IdShift): Readable {
  return packWith(async (p) => {
    if (name === '.' && fs.lstatSync(full).isDirectory()) {
      await p.dir(full, './');
      await p.tree(full, '.', false);
    } else await p.member(full, name, false);
  }, undefined, ids).tar;
}
