/**
 * The build context on the daemon's side: the tar the client sent, unpacked once into a private
 * directory, and what COPY/ADD ask of it — source paths resolved inside it (never outside: `..`
 * refused, symlinks and absolute names resolved within the context root), wildcards expanded,
 * and a digest of the sources' content and metadata for the build cache (mtimes left out, as docker).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { applyLayer, applyLayerOffThread, safeJoin } from '../archive/index.js';
import { InvalidParameter, NotFound } from '../errors.js';
import { IgnoreRules } from './dockerignore.js';

const BIG_CONTEXT = 4 << 20;

/** Reads up to `limit` bytes ahead: is the stream longer? The returned stream yields every byte. */
async function peekSize(src: Readable, limit: number): Promise<{ big: boolean; stream: Readable }> {
  const it = src[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head: Buffer[] = [];
  let n = 0;
  let ended = false;
  while (n < limit) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    head.push(r.value);
    n += r.value.length;
  }
  const gzip = head[0] !== undefined && head[0][0] === 0x1f && head[0][1] === 0x8b;
  const stream = Readable.from((async function* () {
    let total = 0;
    for (const b of head) {
      total += b.length;
      yield b;
    }
    for (;;) {
      if (ended) break;
      const r = await it.next();
      if (r.done) break;
      total += r.value.length;
      yield r.value;
    }
    // The docker CLI's `-f -` context ends right after the last entry's data, without its padding
    // and the end-of-archive blocks (dockerd's reader accepts that): complete them.
    if (!gzip) yield Buffer.alloc((512 - (total % 512)) % 512 + 1024);
  })(), { objectMode: false });
  return { big: !ended, stream };
}

export function hasWildcard(s: string): boolean {
  return /[*?[]/.test(s);
}

/** Go's filepath.Match for one whole path: `*` and `?` within a component, `[...]` classes. */
export function matchPath(pattern: string, name: string): boolean {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) return false;
      re += '[' + pattern.slice(i + 1, end).replace(/^\^/, '^').replace(/^!/, '^').replace(/\\/g, '\\\\') + ']';
      i = end;
    } else if (c === '\\' && i + 1 < pattern.length) re += pattern[++i]!.replace(/[.+^${}()|[\]\\*?]/g, '\\$&');
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(re + '$', 's').test(name);
}

/** A source a COPY/ADD names: its path in the context (relative) and on disk. */
export interface Source { rel: string; abs: string; stat: fs.Stats }

export class BuildContext {
  private readonly digests = new Map<string, string>();

  constructor(readonly root: string) {}

  /**
   * Unpack the client's tar (plain or gzip) into `dir` and read the Dockerfile (null when absent).
   * The Dockerfile and .dockerignore are sent whatever the ignore rules say; when the rules exclude
   * them they are removed once read, so COPY cannot see them (as dockerd does).
   */
  static async unpack(tar: Readable, dir: string, dockerfile: string): Promise<{ context: BuildContext; dockerfile: string | null }> {
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    // A big context unpacks on a worker thread, in parallel with receiving it; a small one is not
    // worth the worker's start-up (a fully cached rebuild takes a few tens of milliseconds).
    const { big, stream } = await peekSize(tar, BIG_CONTEXT);
    await (big ? applyLayerOffThread : applyLayer)(stream, dir, 'delete');
    const ctx = new BuildContext(dir);
    const rel = ctx.checkInside(dockerfile);
    const text = await fsp.readFile(safeJoin(dir, rel), 'utf8').catch(() => null);
    const ignore = await fsp.readFile(path.join(dir, '.dockerignore'), 'utf8').catch(() => null);
    if (ignore !== null) {
      const rules = IgnoreRules.parse(ignore);
      for (const f of ['.dockerignore', rel]) if (rules.excludes(f)) await fsp.rm(safeJoin(dir, f), { force: true });
    }
    return { context: ctx, dockerfile: text };
  }

  /** A context-relative path; `..` that climbs out is refused, like docker. */
  checkInside(src: string): string {
    const norm = path.posix.normalize('/' + src.replace(/\\/g, '/')).slice(1);
    const lexical = path.posix.normalize(src);
    if (lexical === '..' || lexical.startsWith('../')) throw new InvalidParameter(`forbidden path outside the build context: ${src} ()`);
    return norm;
  }

  /** The sources one COPY/ADD argument names (a wildcard may name several, sorted). */
  sources(src: string): Source[] {
    const rel = this.checkInside(src);
    if (hasWildcard(rel)) {
      const out: Source[] = [];
      const parts = rel.split('/');
      const walk = (dir: string, i: number, prefix: string) => {
        if (i === parts.length) return;
        let names: string[];
        try {
          names = fs.readdirSync(dir).sort();
        } catch {
          return;
        }
        for (const n of names) {
          if (!matchPath(parts[i]!, n)) continue;
          const relN = prefix ? `${prefix}/${n}` : n;
          const abs = path.join(dir, n);
          if (i === parts.length - 1) out.push({ rel: relN, abs, stat: fs.lstatSync(abs) });
          else walk(abs, i + 1, relN);
        }
      };
      walk(this.root, 0, '');
      if (out.length === 0) throw new NotFound(`COPY failed: no source files were specified`);
      return out;
    }
    const abs = safeJoin(this.root, rel);
    let stat: fs.Stats;
    try {
      stat = fs.statSync(abs);
    } catch {
      throw new NotFound(`COPY failed: file not found in build context or excluded by .dockerignore: stat ${src}: file does not exist`);
    }
    return [{ rel, abs, stat }];
  }

  /** Digest of a source tree's names, types, modes, sizes, link targets and contents. */
  async digest(s: Source): Promise<string> {
    const hit = this.digests.get(s.abs);
    if (hit) return hit;
    const h = createHash('sha256');
    const visit = async (abs: string, rel: string, st: fs.Stats): Promise<void> => {
      h.update(`${rel}\0${st.mode}\0`);
      if (st.isSymbolicLink()) h.update(`l${await fsp.readlink(abs)}\0`);
      else if (st.isFile()) {
        h.update(`f${st.size}\0`);
        for await (const chunk of fs.createReadStream(abs)) h.update(chunk as Buffer);
      } else if (st.isDirectory()) {
        for (const n of (await fsp.readdir(abs)).sort()) {
          const child = path.join(abs, n);
          await visit(child, `${rel}/${n}`, await fsp.lstat(child));
        }
      }
    };
    await visit(s.abs, '.', s.stat);
    const d = h.digest('hex');
    this.digests.set(s.abs, d);
    return d;
  }

  async remove(): Promise<void> {
    await fsp.rm(this.root, { recursive: true, force: true });
  }
}
