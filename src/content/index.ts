/**
 * Content store: immutable blobs addressed by their sha256 digest.
 *
 * Lifecycle of a blob:
 *   writer() → write bytes (hashed as they pass) → commit(expected?) → blob visible at blobs/sha256/<hex>
 *                                             ↘ abort() → nothing left behind
 * Bytes land in <root>/ingest/<random> first; commit fsyncs the file, checks the digest and renames it
 * into place (then fsyncs the directory), so a blob is either absent or complete, whatever instant the
 * process dies at. Ingest files left by a crash are dropped by recover(), which the daemon calls once at
 * start-up before any writer exists. Two writers of the same content may race: both renames target the
 * same name with the same bytes, so the result is the same.
 *
 * Blobs carry no references. Operations in progress hold what they make with a lease (leases, see
 * lease.ts); the image store's collect() is the one place that decides what is garbage and deletes it.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { DigestMismatch, InvalidParameter, NotFound } from '../errors.js';
import { DurableFileWriter, fsyncPath } from '../util/fs.js';
import { Leases } from './lease.js';

export { Leases, type Lease } from './lease.js';

export interface BlobInfo { digest: string; size: number }

export interface BlobWriter extends Writable {
  /** Ends the stream if still open, fsyncs, verifies `expected` (if given) and publishes the blob. */
  commit(expected?: string): Promise<BlobInfo>;
  /** Discards everything written so far. Safe to call after a failed commit. */
  abort(): Promise<void>;
}

export interface ContentStore {
  /** Holds of operations in progress, in memory; see lease.ts. */
  readonly leases: Leases;
  writer(): BlobWriter;
  put(data: Buffer | string, expected?: string): Promise<BlobInfo>;
  has(digest: string): boolean;
  info(digest: string): BlobInfo | null;
  /** Where the blob lives (whether or not it exists). Throws InvalidParameter on a malformed digest. */
  path(digest: string): string;
  read(digest: string): Promise<Buffer>;
  readStream(digest: string): Readable;
  delete(digest: string): Promise<void>;
  list(): AsyncIterable<BlobInfo>;
  recover(): Promise<void>;
}

const DIGEST_RE = /^sha256:([a-f0-9]{64})$/;

/** Returns the hex part of a sha256 digest, or throws InvalidParameter (also guards path joins). */
export function digestHex(digest: string): string {
  const m = DIGEST_RE.exec(digest);
  if (!m) throw new InvalidParameter(`invalid digest: ${JSON.stringify(digest)}`);
  return m[1]!;
}

export function isDigest(s: string): boolean {
  return DIGEST_RE.test(s);
}

export function sha256Digest(data: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

class FileBlobWriter extends DurableFileWriter implements BlobWriter {
  private readonly hash: Hash = createHash('sha256');
  private size = 0;
  private done = false;

  constructor(private readonly tmp: string, private readonly publish: (tmp: string, info: BlobInfo) => Promise<void>) {
    super(tmp, 'wx');
  }

  protected override onChunk(chunk: Buffer): void {
    this.hash.update(chunk);
    this.size += chunk.length;
  }

  private async ended(): Promise<void> {
    if (this.writableFinished) return;
    if (this.destroyed) throw this.errored ?? new Error('blob writer was destroyed');
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: Error): void => { this.off('finish', onFin); reject(e); };
      const onFin = (): void => { this.off('error', onErr); resolve(); };
      this.once('error', onErr);
      this.once('finish', onFin);
      if (!this.writableEnded) this.end();
    });
  }

  async commit(expected?: string): Promise<BlobInfo> {
    if (this.done) throw new Error('blob writer already committed or aborted');
    if (expected !== undefined) digestHex(expected);
    try {
      await this.ended();
      const digest = 'sha256:' + this.hash.digest('hex');
      if (expected !== undefined && expected !== digest) {
        throw new DigestMismatch(`digest mismatch: expected ${expected}, got ${digest}`);
      }
      const info = { digest, size: this.size };
      await this.publish(this.tmp, info);
      this.done = true;
      return info;
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  async abort(): Promise<void> {
    this.done = true;
    if (!this.destroyed) {
      await new Promise<void>((res) => { this.once('close', () => res()); this.destroy(); });
    }
    await fsp.rm(this.tmp, { force: true });
  }
}

class FsContentStore implements ContentStore {
  readonly leases = new Leases();
  private readonly ingestDir: string;
  private readonly blobDir: string;

  constructor(root: string) {
    this.ingestDir = path.join(root, 'ingest');
    this.blobDir = path.join(root, 'blobs', 'sha256');
    fs.mkdirSync(this.ingestDir, { recursive: true });
    fs.mkdirSync(this.blobDir, { recursive: true });
  }

  writer(): BlobWriter {
    const tmp = path.join(this.ingestDir, randomBytes(12).toString('hex'));
    return new FileBlobWriter(tmp, async (file, info) => {
      await fsp.rename(file, this.path(info.digest));
      await fsyncPath(this.blobDir);
    });
  }

  async put(data: Buffer | string, expected?: string): Promise<BlobInfo> {
    const w = this.writer();
    w.on('error', () => {}); // surfaced by commit()
    w.end(typeof data === 'string' ? Buffer.from(data) : data);
    return w.commit(expected);
  }

  path(digest: string): string {
    return path.join(this.blobDir, digestHex(digest));
  }

  has(digest: string): boolean {
    return this.info(digest) !== null;
  }

  info(digest: string): BlobInfo | null {
    const st = fs.statSync(this.path(digest), { throwIfNoEntry: false });
    return st ? { digest, size: st.size } : null;
  }

  async read(digest: string): Promise<Buffer> {
    try {
      return await fsp.readFile(this.path(digest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFound(`blob ${digest} not found`);
      throw err;
    }
  }

  readStream(digest: string): Readable {
    const p = this.path(digest);
    // Open synchronously so a missing blob is a thrown NotFound, not a late stream error.
    let fd: number;
    try {
      fd = fs.openSync(p, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFound(`blob ${digest} not found`);
      throw err;
    }
    return fs.createReadStream(p, { fd, highWaterMark: 1 << 20 });
  }

  async delete(digest: string): Promise<void> {
    await fsp.rm(this.path(digest), { force: true });
  }

  async *list(): AsyncIterable<BlobInfo> {
    for (const name of await fsp.readdir(this.blobDir)) {
      if (!/^[a-f0-9]{64}$/.test(name)) continue;
      const st = await fsp.stat(path.join(this.blobDir, name)).catch(() => null);
      if (st) yield { digest: 'sha256:' + name, size: st.size };
    }
  }

  async recover(): Promise<void> {
    for (const name of await fsp.readdir(this.ingestDir)) {
      await fsp.rm(path.join(this.ingestDir, name), { force: true, recursive: true });
    }
  }
}

export function openContentStore(root: string): ContentStore {
  return new FsContentStore(root);
}
