import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import * as sys from '../sys/index.js';
import { encodePax } from './pax.js';

/*
 * A small ustar + PAX writer of our own: tar-stream cannot emit PAX records
 * with binary values (xattrs such as security.capability), and layers need them.
 * Output is deterministic for a given tree: sorted names, no atime/ctime.
 */

const BLOCK = 512;
const S_IFMT = 0o170000;
const TYPE = { file: '0', link: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6', pax: 'x' } as const;

interface Member {
  name: string;
  type: (typeof TYPE)[keyof typeof TYPE];
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

function encodeHeader(m: Member, records: [string, Buffer][]): Buffer {
  const h = Buffer.alloc(BLOCK);
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
  return h;
}

function checksum(h: Buffer): Buffer {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\u0000 ', 148, 'ascii');
  return h;
}

const padding = (size: number): Buffer => Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);

/** Header block(s) of a member: a PAX header first when anything does not fit ustar. */
function headerBlocks(m: Member): Buffer[] {
  const records: [string, Buffer][] = [...(m.records ?? [])];
  const main = encodeHeader(m, records);
  if (records.length === 0) return [checksum(main)];
  const pax = encodePax(records);
  const paxHeader = encodeHeader(
    { name: 'PaxHeader', type: TYPE.pax, mode: 0o644, uid: 0, gid: 0, size: pax.length, mtime: m.mtime },
    [],
  );
  return [checksum(paxHeader), pax, padding(pax.length), checksum(main)];
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

interface WalkOptions {
  /** Translate overlay whiteouts (char 0/0, opaque xattr) to OCI `.wh.` entries. */
  overlay: boolean;
}

/** Depth-first, names sorted, so the same tree always gives the same tar (and diffId). */
async function* walk(root: string, opts: WalkOptions): AsyncGenerator<Buffer> {
  const seen = new Map<string, string>(); // "dev:ino" -> first name, for hard links
  yield* visit(root, '', opts, seen);
  yield Buffer.alloc(2 * BLOCK); // end of archive
}

/** The members below directory `dir`, named `${prefix}/<entry>` (just `<entry>` for an empty prefix). */
async function* visit(dir: string, prefix: string, opts: WalkOptions, seen: Map<string, string>): AsyncGenerator<Buffer> {
  for (const entry of fs.readdirSync(dir).sort()) {
    yield* member(path.join(dir, entry), prefix ? `${prefix}/${entry}` : entry, opts, seen);
  }
}

/** One path (never followed) as member `name`, and everything below it if it is a directory. */
async function* member(full: string, name: string, opts: WalkOptions, seen: Map<string, string>): AsyncGenerator<Buffer> {
  const marker = (n: string, st: fs.Stats): Member => ({
    name: n, type: TYPE.file, mode: 0o644, uid: st.uid, gid: st.gid, size: 0, mtime: Math.floor(st.mtimeMs / 1000),
  });
  const st = fs.lstatSync(full);
  const type = st.mode & S_IFMT;
  if (opts.overlay && type === sys.S_IFCHR && st.rdev === 0) {
    const slash = name.lastIndexOf('/');
    yield* headerBlocks(marker(`${name.slice(0, slash + 1)}.wh.${name.slice(slash + 1)}`, st));
    return;
  }
  const m: Member = {
    name, type: TYPE.file, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: 0,
    mtime: Math.floor(st.mtimeMs / 1000), records: xattrRecords(full),
  };
  if (st.isDirectory()) {
    yield* headerBlocks({ ...m, name: `${name}/`, type: TYPE.dir });
    if (opts.overlay && sys.getxattr(full, 'trusted.overlay.opaque')?.toString() === 'y') {
      yield* headerBlocks(marker(`${name}/.wh..wh..opq`, st));
    }
    yield* visit(full, name, opts, seen);
  } else if (st.isSymbolicLink()) {
    yield* headerBlocks({ ...m, type: TYPE.symlink, linkname: fs.readlinkSync(full) });
  } else if (st.isFile()) {
    const id = `${st.dev}:${st.ino}`;
    const first = st.nlink > 1 ? seen.get(id) : undefined;
    if (first !== undefined) {
      yield* headerBlocks({ ...m, type: TYPE.link, linkname: first });
      return;
    }
    if (st.nlink > 1) seen.set(id, name);
    yield* headerBlocks({ ...m, size: st.size });
    // Exactly st.size bytes: a file that changes while we read must not corrupt the framing.
    let left = st.size;
    if (left > 0) {
      for await (const chunk of fs.createReadStream(full, { start: 0, end: st.size - 1 })) {
        const b = chunk as Buffer;
        left -= b.length;
        yield b;
      }
    }
    if (left > 0) yield Buffer.alloc(left);
    yield padding(st.size);
  } else if (st.isCharacterDevice() || st.isBlockDevice()) {
    const rdev = st.rdev;
    const devmajor = ((rdev >> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
    const devminor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
    yield* headerBlocks({ ...m, type: st.isCharacterDevice() ? TYPE.char : TYPE.block, devmajor, devminor });
  } else if (st.isFIFO()) {
    yield* headerBlocks({ ...m, type: TYPE.fifo });
  }
  // sockets are not archived (tar has no type for them; Docker skips them too)
}

/** Tar of the changes recorded in an overlay upper dir, whiteouts in OCI form. */
export function diffLayer(upperDir: string): Readable {
  return Readable.from(walk(upperDir, { overlay: true }), { objectMode: false });
}

/** Tar of a directory tree as-is. */
export function packDir(dir: string): Readable {
  return Readable.from(walk(dir, { overlay: false }), { objectMode: false });
}

/**
 * Tar of one path as member `name` (a directory with everything below it, as `name/...`): what
 * `docker cp` sends and receives. The path itself is not followed; name "." gives a directory's
 * contents as "./<entry>".
 */
export function packPath(full: string, name: string): Readable {
  async function* all(): AsyncGenerator<Buffer> {
    const seen = new Map<string, string>();
    if (name === '.' && fs.lstatSync(full).isDirectory()) {
      yield* headerBlocks(dirMember(full, './'));
      yield* visit(full, '.', { overlay: false }, seen);
    } else yield* member(full, name, { overlay: false }, seen);
    yield Buffer.alloc(2 * BLOCK);
  }
  return Readable.from(all(), { objectMode: false });
}

function dirMember(full: string, name: string): Member {
  const st = fs.lstatSync(full);
  return { name, type: TYPE.dir, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: 0, mtime: Math.floor(st.mtimeMs / 1000), records: xattrRecords(full) };
}
