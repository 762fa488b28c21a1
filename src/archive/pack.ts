import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import * as sys from '../sys/index.js';

type Header = Partial<tar.Header> & { name: string; pax?: Record<string, string> };

const S_IFMT = 0o170000;

interface WalkOptions {
  /** Translate overlay whiteouts (char 0/0, opaque xattr) to OCI `.wh.` entries. */
  overlay: boolean;
}

function paxXattrs(full: string): Record<string, string> | undefined {
  let names: string[];
  try {
    names = sys.listxattr(full);
  } catch {
    return undefined;
  }
  const pax: Record<string, string> = {};
  for (const name of names) {
    if (name.startsWith('trusted.overlay.')) continue;
    const value = sys.getxattr(full, name);
    if (value) pax[`SCHILY.xattr.${name}`] = value.toString('utf8');
  }
  return Object.keys(pax).length ? pax : undefined;
}

function baseHeader(name: string, st: fs.Stats): Header {
  return { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime, size: 0 };
}

async function add(p: tar.Pack, h: Header, content?: string): Promise<void> {
  if (content === undefined) {
    // An explicit empty body: without one a 'file' entry of size 0 would wait for data forever.
    await new Promise<void>((resolve, reject) => p.entry(h, Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
    return;
  }
  const sink = p.entry(h);
  await pipeline(fs.createReadStream(content), sink as unknown as NodeJS.WritableStream);
}

/** Depth-first, names sorted, so the same tree always gives the same tar (and diffId). */
async function walk(p: tar.Pack, root: string, opts: WalkOptions): Promise<void> {
  const seen = new Map<string, string>(); // "dev:ino" -> first name, for hard links
  const visit = async (rel: string): Promise<void> => {
    const entries = fs.readdirSync(path.join(root, rel)).sort();
    for (const entry of entries) {
      const name = rel ? `${rel}/${entry}` : entry;
      const full = path.join(root, name);
      const st = fs.lstatSync(full);
      const type = st.mode & S_IFMT;
      if (opts.overlay && type === sys.S_IFCHR && st.rdev === 0) {
        const wh = rel ? `${rel}/.wh.${entry}` : `.wh.${entry}`;
        await add(p, { ...baseHeader(wh, st), mode: 0o644, type: 'file' });
        continue;
      }
      const h = baseHeader(name, st);
      const pax = paxXattrs(full);
      if (pax) h.pax = pax;
      if (st.isDirectory()) {
        await add(p, { ...h, type: 'directory' });
        const opaque = opts.overlay && sys.getxattr(full, 'trusted.overlay.opaque')?.toString() === 'y';
        if (opaque) await add(p, { ...baseHeader(`${name}/.wh..wh..opq`, st), mode: 0o644, type: 'file' });
        await visit(name);
      } else if (st.isSymbolicLink()) {
        await add(p, { ...h, type: 'symlink', linkname: fs.readlinkSync(full) });
      } else if (st.isFile()) {
        const id = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? seen.get(id) : undefined;
        if (first !== undefined) {
          await add(p, { ...h, type: 'link', linkname: first });
        } else {
          if (st.nlink > 1) seen.set(id, name);
          await add(p, { ...h, type: 'file', size: st.size }, full);
        }
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const rdev = st.rdev;
        const devmajor = ((rdev >> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
        const devminor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
        await add(p, { ...h, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor, devminor });
      } else if (st.isFIFO()) {
        await add(p, { ...h, type: 'fifo' });
      }
      // sockets are not archived (tar has no type for them; Docker skips them too)
    }
  };
  await visit('');
}

function packWith(dir: string, opts: WalkOptions): Readable {
  const p = tar.pack();
  walk(p, dir, opts).then(
    () => p.finalize(),
    (err: unknown) => p.destroy(err instanceof Error ? err : new Error(String(err))),
  );
  // tar-stream's pack is a streamx stream; hand out a genuine node Readable.
  return Readable.from(p);
}

/** Tar of the changes recorded in an overlay upper dir, whiteouts in OCI form. */
export function diffLayer(upperDir: string): Readable {
  return packWith(upperDir, { overlay: true });
}

/** Tar of a directory tree as-is. */
export function packDir(dir: string): Readable {
  return packWith(dir, { overlay: false });
}
