/**
 * The registry's content-addressed store on the local filesystem.
 *
 * Layout under `root` (every file is written temp + fsync + rename, so kill -9 at any
 * instant leaves either the old state or the new one, plus at worst an orphan temp
 * file or an unreferenced blob that `gc` collects):
 *
 *   blobs/<alg>/<hh>/<hex>                          blob bytes (manifests are blobs too)
 *   repositories/<name>/_layers/<alg>/<hex>          link: the blob is visible in <name>
 *   repositories/<name>/_manifests/revisions/<alg>/<hex>   {"mediaType"}: a manifest stored in <name>
 *   repositories/<name>/_manifests/tags/<tag>        the digest the tag points at
 *   repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>  descriptor of a manifest whose subject is <alg>:<hex>
 *   uploads/<uuid>/{info,data}                       an upload session: owning repo, bytes so far
 *
 * Lifecycle of a blob: startUpload → appendUpload* → finishUpload(digest) (or putBlob in
 * one go, or mountBlob from another repository) verifies the digest while streaming,
 * renames the bytes into blobs/ and writes the repository's link. unlinkBlob removes the
 * link only; the bytes stay until gc finds no manifest that references them.
 * Lifecycle of a manifest: putManifest checks references, stores the body as a blob,
 * then the revision, then the tag and referrer entries; deleteManifest removes them in
 * the reverse order.
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DurableFileWriter, fsyncPath } from '../../util/fs.js';
import {
  RegistryError,
  digestAlgorithm,
  isIndexType,
  parseManifest,
  referencedBlobs,
  validDigest,
  validTag,
  MT,
  type Descriptor,
  type ParsedManifest,
} from './spec.js';

/** Manifests are buffered (they are small by nature); anything bigger is refused. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Writes a small file so a crash leaves the old content or the new, never a mix. Temp names start with '.' (never a valid tag or digest hex). */
export async function writeAtomic(file: string, data: string | Buffer): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.tmp-${randomUUID()}`);
  const fh = await fs.open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, file);
  await fsyncPath(path.dirname(file));
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw e;
  }
}

const split = (digest: string): [string, string] => {
  const i = digest.indexOf(':');
  return [digest.slice(0, i), digest.slice(i + 1)];
};

/** Path arithmetic of the layout, shared with gc. */
export class Layout {
  constructor(readonly root: string) {}
  blob(digest: string): string {
    const [alg, hex] = split(digest);
    return path.join(this.root, 'blobs', alg, hex.slice(0, 2), hex);
  }
  blobsDir(): string {
    return path.join(this.root, 'blobs');
  }
  reposDir(): string {
    return path.join(this.root, 'repositories');
  }
  repo(name: string): string {
    return path.join(this.reposDir(), ...name.split('/'));
  }
  layerLink(name: string, digest: string): string {
    const [alg, hex] = split(digest);
    return path.join(this.repo(name), '_layers', alg, hex);
  }
  layersDir(name: string): string {
    return path.join(this.repo(name), '_layers');
  }
  revision(name: string, digest: string): string {
    const [alg, hex] = split(digest);
    return path.join(this.repo(name), '_manifests', 'revisions', alg, hex);
  }
  revisionsDir(name: string): string {
    return path.join(this.repo(name), '_manifests', 'revisions');
  }
  tagsDir(name: string): string {
    return path.join(this.repo(name), '_manifests', 'tags');
  }
  tag(name: string, tag: string): string {
    return path.join(this.tagsDir(name), tag);
  }
  referrersOf(name: string, subject: string): string {
    const [alg, hex] = split(subject);
    return path.join(this.repo(name), '_referrers', alg, hex);
  }
  referrer(name: string, subject: string, digest: string): string {
    return path.join(this.referrersOf(name, subject), digest.replace(':', '-'));
  }
  uploadsDir(): string {
    return path.join(this.root, 'uploads');
  }
  upload(uuid: string): string {
    return path.join(this.uploadsDir(), uuid);
  }

  /** Digests stored under a <alg>/<hex> tree (layer links, revisions). */
  async digestsUnder(dir: string): Promise<string[]> {
    const out: string[] = [];
    for (const alg of await readdirOrEmpty(dir)) {
      for (const hex of await readdirOrEmpty(path.join(dir, alg))) {
        const d = `${alg}:${hex}`;
        if (validDigest(d)) out.push(d);
      }
    }
    return out;
  }

  /** Every repository: a directory holding _layers or _manifests, found by walking the tree. */
  async repositories(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: string, prefix: string[]): Promise<void> => {
      const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
      let isRepo = false;
      for (const e of entries) {
        if (!e.isDirectory()) continue;
        if (e.name.startsWith('_')) isRepo = true;
        else await walk(path.join(dir, e.name), [...prefix, e.name]);
      }
      if (isRepo && prefix.length) out.push(prefix.join('/'));
    };
    await walk(this.reposDir(), []);
    return out.sort();
  }
}

interface Session {
  hash: Hash;
  size: number;
  busy: boolean;
}

export interface StoredManifest {
  digest: string;
  mediaType: string;
  body: Buffer;
}

export interface BlobInfo {
  digest: string;
  size: number;
  path: string;
}

/** Counts and hashes bytes on their way to disk. */
class Tap extends Transform {
  n = 0;
  constructor(
    readonly hash: Hash,
    readonly limit = Infinity,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null, d?: Buffer) => void): void {
    this.n += chunk.length;
    if (this.n > this.limit) return cb(new RegistryError('SIZE_INVALID', 'provided length did not match content length'));
    this.hash.update(chunk);
    cb(null, chunk);
  }
}

export class RegistryStore {
  readonly layout: Layout;
  /** Running hash of each upload this process has seen from the start; after a restart the file is re-read. */
  private sessions = new Map<string, Session>();

  constructor(readonly root: string) {
    this.layout = new Layout(root);
  }

  async init(): Promise<void> {
    for (const d of [this.layout.blobsDir(), this.layout.reposDir(), this.layout.uploadsDir()]) await fs.mkdir(d, { recursive: true });
  }

  // ---- blobs ----

  /** The blob if it is linked into `name` and its bytes exist. */
  async statBlob(name: string, digest: string): Promise<BlobInfo | undefined> {
    if (!(await exists(this.layout.layerLink(name, digest)))) return undefined;
    try {
      const st = await fs.stat(this.layout.blob(digest));
      return { digest, size: st.size, path: this.layout.blob(digest) };
    } catch {
      return undefined;
    }
  }

  private async link(name: string, digest: string): Promise<void> {
    const link = this.layout.layerLink(name, digest);
    if (!(await exists(link))) await writeAtomic(link, digest);
  }

  async unlinkBlob(name: string, digest: string): Promise<boolean> {
    try {
      await fs.unlink(this.layout.layerLink(name, digest));
      return true;
    } catch {
      return false;
    }
  }

  /** Links a blob of repository `from` into `name`; false when `from` does not have it. */
  async mountBlob(name: string, from: string, digest: string): Promise<boolean> {
    if (!(await this.statBlob(from, digest))) return false;
    await this.link(name, digest);
    return true;
  }

  /** Moves a fully written, fsynced temp file into blobs/ (or drops it when the blob is already there). */
  private async commitFile(tmp: string, digest: string): Promise<void> {
    const dst = this.layout.blob(digest);
    await fs.mkdir(path.dirname(dst), { recursive: true });
    if (await exists(dst)) {
      await fs.rm(tmp, { force: true });
      return;
    }
    await fs.rename(tmp, dst);
    await fsyncPath(path.dirname(dst));
  }

  /** Monolithic upload: the body is the whole blob. */
  async putBlob(name: string, digest: string, body: Readable, length?: number): Promise<void> {
    const dir = path.join(this.layout.uploadsDir(), `.mono-${randomUUID()}`);
    await fs.mkdir(dir, { recursive: true });
    const tmp = path.join(dir, 'data');
    try {
      const tap = new Tap(createHash(digestAlgorithm(digest)), length);
      await pipeline(body, tap, new DurableFileWriter(tmp, 'w'));
      if (length !== undefined && tap.n !== length) throw new RegistryError('SIZE_INVALID', 'provided length did not match content length', { expected: length, got: tap.n });
      const got = `${digestAlgorithm(digest)}:${tap.hash.digest('hex')}`;
      if (got !== digest) throw new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content', { expected: digest, got });
      await this.commitFile(tmp, digest);
      await this.link(name, digest);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  // ---- upload sessions ----

  async startUpload(name: string): Promise<string> {
    const uuid = randomUUID();
    const dir = this.layout.upload(uuid);
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'data'), '');
    await writeAtomic(path.join(dir, 'info'), JSON.stringify({ name, startedAt: new Date().toISOString() }));
    this.sessions.set(uuid, { hash: createHash('sha256'), size: 0, busy: false });
    return uuid;
  }

  /** Bytes received so far; BLOB_UPLOAD_UNKNOWN when the session does not exist in `name`. */
  async uploadSize(name: string, uuid: string): Promise<number> {
    if (!UUID_RE.test(uuid)) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry');
    const dir = this.layout.upload(uuid);
    let info: { name?: string };
    try {
      info = JSON.parse(await fs.readFile(path.join(dir, 'info'), 'utf8')) as { name?: string };
    } catch {
      throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry');
    }
    if (info.name !== name) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry');
    return (await fs.stat(path.join(dir, 'data'))).size;
  }

  /**
   * Appends one chunk. `start` (from Content-Range) must equal the bytes received so far,
   * else 416. A chunk that does not arrive whole is cut off again, so the session stays
   * at its previous size and the client may retry it.
   */
  async appendUpload(name: string, uuid: string, body: Readable, opts: { start?: number; length?: number } = {}): Promise<number> {
    const size = await this.uploadSize(name, uuid);
    if (opts.start !== undefined && opts.start !== size) {
      throw new RegistryError('RANGE_INVALID', 'invalid content range', { expectedStart: size, got: opts.start });
    }
    let s = this.sessions.get(uuid);
    if (s && s.busy) throw new RegistryError('BLOB_UPLOAD_INVALID', 'another chunk of this upload is in progress');
    if (!s || s.size !== size) {
      s = { hash: await this.hashFile(path.join(this.layout.upload(uuid), 'data'), 'sha256'), size, busy: false };
      this.sessions.set(uuid, s);
    }
    s.busy = true;
    const checkpoint = s.hash.copy();
    const tap = new Tap(s.hash, opts.length);
    const data = path.join(this.layout.upload(uuid), 'data');
    try {
      await pipeline(body, tap, new DurableFileWriter(data, 'a'));
      if (opts.length !== undefined && tap.n !== opts.length) throw new RegistryError('SIZE_INVALID', 'provided length did not match content length', { expected: opts.length, got: tap.n });
      s.size = size + tap.n;
      return s.size;
    } catch (e) {
      await fs.truncate(data, size).catch(() => {});
      s.hash = checkpoint;
      s.size = size;
      throw e;
    } finally {
      s.busy = false;
    }
  }

  private async hashFile(file: string, alg: 'sha256' | 'sha512'): Promise<Hash> {
    const h = createHash(alg);
    for await (const c of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) h.update(c);
    return h;
  }

  /** Ends a session: an optional last chunk, then the digest check; on mismatch nothing is stored and the session is gone. */
  async finishUpload(name: string, uuid: string, digest: string, last?: { body: Readable; start?: number; length?: number }): Promise<void> {
    if (last) await this.appendUpload(name, uuid, last.body, { start: last.start, length: last.length });
    else await this.uploadSize(name, uuid);
    const data = path.join(this.layout.upload(uuid), 'data');
    const s = this.sessions.get(uuid);
    const size = (await fs.stat(data)).size;
    const alg = digestAlgorithm(digest);
    const hash = s && s.size === size && alg === 'sha256' ? s.hash : await this.hashFile(data, alg);
    const got = `${alg}:${hash.digest('hex')}`;
    try {
      if (got !== digest) throw new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content', { expected: digest, got });
      await fsyncPath(data);
      await this.commitFile(data, digest);
      await this.link(name, digest);
    } finally {
      await this.cancelUpload(uuid);
    }
  }

  async cancelUpload(uuid: string): Promise<void> {
    this.sessions.delete(uuid);
    await fs.rm(this.layout.upload(uuid), { recursive: true, force: true });
  }

  // ---- manifests ----

  private async revisionType(name: string, digest: string): Promise<string | undefined> {
    try {
      return (JSON.parse(await fs.readFile(this.layout.revision(name, digest), 'utf8')) as { mediaType: string }).mediaType;
    } catch {
      return undefined;
    }
  }

  /** Resolves a tag or digest in `name` to the stored manifest; undefined when unknown. */
  async getManifest(name: string, reference: string): Promise<StoredManifest | undefined> {
    let digest = reference;
    if (!validDigest(reference)) {
      if (!validTag(reference)) return undefined;
      try {
        digest = (await fs.readFile(this.layout.tag(name, reference), 'utf8')).trim();
      } catch {
        return undefined;
      }
      if (!validDigest(digest)) return undefined;
    }
    const mediaType = await this.revisionType(name, digest);
    if (!mediaType) return undefined;
    try {
      return { digest, mediaType, body: await fs.readFile(this.layout.blob(digest)) };
    } catch {
      return undefined;
    }
  }

  /**
   * Stores a manifest under a tag or its digest. Checks the media type and JSON shape
   * (MANIFEST_INVALID), that a digest reference is the body's digest (DIGEST_INVALID),
   * and that every blob and child manifest it names is in `name` (MANIFEST_BLOB_UNKNOWN).
   */
  async putManifest(name: string, reference: string, body: Buffer, contentType: string | undefined): Promise<{ digest: string; manifest: ParsedManifest }> {
    const byDigest = validDigest(reference);
    if (!byDigest && !validTag(reference)) throw new RegistryError('MANIFEST_INVALID', 'manifest invalid', `invalid tag "${reference}"`);
    const m = parseManifest(body, contentType);
    const alg = byDigest ? digestAlgorithm(reference) : 'sha256';
    const digest = `${alg}:${createHash(alg).update(body).digest('hex')}`;
    if (byDigest && digest !== reference) throw new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content', { expected: reference, got: digest });
    const missing: string[] = [];
    for (const d of referencedBlobs(m)) if (!(await this.statBlob(name, d.digest))) missing.push(d.digest);
    for (const d of m.manifests ?? []) if (!(await this.revisionType(name, d.digest))) missing.push(d.digest);
    if (missing.length) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', 'blob unknown to registry', { digests: missing });

    const blob = this.layout.blob(digest);
    if (!(await exists(blob))) await writeAtomic(blob, body);
    await writeAtomic(this.layout.revision(name, digest), JSON.stringify({ mediaType: m.mediaType }));
    if (!byDigest) await writeAtomic(this.layout.tag(name, reference), digest);
    if (m.subject) {
      const desc = this.referrerDescriptor(m, digest, body.length);
      await writeAtomic(this.layout.referrer(name, m.subject.digest, digest), JSON.stringify(desc));
    }
    return { digest, manifest: m };
  }

  private referrerDescriptor(m: ParsedManifest, digest: string, size: number): Descriptor {
    const d: Descriptor = { mediaType: m.mediaType, digest, size };
    const artifactType = m.artifactType ?? (m.config && !isIndexType(m.mediaType) ? m.config.mediaType : undefined);
    if (artifactType) d.artifactType = artifactType;
    if (m.annotations && Object.keys(m.annotations).length) d.annotations = m.annotations;
    return d;
  }

  /**
   * Deletes by digest (the manifest, every tag pointing at it and its referrer entry) or by
   * tag (the tag only). False when unknown.
   */
  async deleteManifest(name: string, reference: string): Promise<boolean> {
    if (!validDigest(reference)) {
      if (!validTag(reference)) return false;
      try {
        await fs.unlink(this.layout.tag(name, reference));
        return true;
      } catch {
        return false;
      }
    }
    const stored = await this.getManifest(name, reference);
    if (!stored) return false;
    for (const t of await readdirOrEmpty(this.layout.tagsDir(name))) {
      if (!validTag(t)) continue;
      const target = await fs.readFile(this.layout.tag(name, t), 'utf8').catch(() => '');
      if (target.trim() === reference) await fs.rm(this.layout.tag(name, t), { force: true });
    }
    try {
      const m = parseManifest(stored.body, stored.mediaType);
      if (m.subject) await fs.rm(this.layout.referrer(name, m.subject.digest, reference), { force: true });
    } catch {}
    await fs.rm(this.layout.revision(name, reference), { force: true });
    return true;
  }

  // ---- listings ----

  async repoExists(name: string): Promise<boolean> {
    return exists(this.layout.repo(name));
  }

  /** Tags of `name`, sorted; NAME_UNKNOWN when the repository does not exist. */
  async tags(name: string): Promise<string[]> {
    if (!(await this.repoExists(name))) throw new RegistryError('NAME_UNKNOWN', 'repository name not known to registry', { name });
    return (await readdirOrEmpty(this.layout.tagsDir(name))).filter(validTag).sort();
  }

  async catalog(): Promise<string[]> {
    return this.layout.repositories();
  }

  /** Descriptors of the manifests in `name` whose subject is `digest`, optionally of one artifactType. */
  async referrers(name: string, digest: string, artifactType?: string): Promise<Descriptor[]> {
    const dir = this.layout.referrersOf(name, digest);
    const out: Descriptor[] = [];
    for (const f of (await readdirOrEmpty(dir)).sort()) {
      if (f.startsWith('.')) continue;
      try {
        const d = JSON.parse(await fs.readFile(path.join(dir, f), 'utf8')) as Descriptor;
        if (!(await this.revisionType(name, d.digest))) continue;
        if (artifactType === undefined || d.artifactType === artifactType) out.push(d);
      } catch {}
    }
    return out;
  }
}

export { MT };
