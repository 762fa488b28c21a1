/**
 * The one ingest path for layers, shared by pull, import and load (ingestLayer):
 *
 *   bytes ──→ content writer (hashed; verified against the expected digest at commit)
 *        └──→ unpacker, into a staged or prepared snapshot (storage/layer.ts)
 *   … then commit in chain order, once the blob verified and the layer below is committed.
 *
 * and its twin for layers berth makes itself, commit and build steps (ingestDiff): the packer reads
 * the snapshot's changes once, writes each entry into the staged or prepared snapshot and its tar to
 * the content writer, so nothing is unpacked from the tar again.
 *
 * Everything it creates is held by the caller's lease until the caller is done; on failure nothing
 * half-made stays (the writer aborts, the snapshot is discarded), and what was fully made is left to
 * the caller's release + images.collect(). It lives in image/ because it joins content/ and storage/,
 * which know nothing of each other.
 */
import { once } from 'node:events';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import type { BlobInfo, ContentStore, Lease } from '../content/index.js';
import type { Packed } from '../archive/index.js';
import { chainIdOf, unpackLayer, type Info, type LayerDiff, type LayerTarget, type UnpackedLayer } from '../storage/index.js';

function isAbort(err: unknown): boolean {
  return (err as Error)?.name === 'AbortError';
}

/**
 * Until `tee` drains or closes. Both listeners go once either fires: a 'close' listener left behind
 * per wait added up over a big layer.
 */
function room(tee: Writable, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const finish = (err?: Error): void => {
      tee.off('drain', ok);
      tee.off('close', ok);
      signal?.removeEventListener('abort', aborted);
      if (err) reject(err);
      else resolve();
    };
    const ok = (): void => finish();
    // As events.once would reject: an AbortError, the signal's reason as its cause.
    const aborted = (): void => finish(Object.assign(new Error('The operation was aborted', { cause: signal?.reason }), { name: 'AbortError' }));
    if (signal?.aborted) return aborted();
    tee.on('drain', ok);
    tee.on('close', ok);
    signal?.addEventListener('abort', aborted);
  });
}

/**
 * Write `chunks` into a new blob, also into `tee` (ended once the digest verified, destroyed on failure).
 * A failure aborts the writer: no blob, no ingest file.
 */
export async function writeBlob(content: ContentStore, chunks: AsyncIterable<Buffer>,
  opts: { expected?: string; lease: Lease; tee?: Writable; signal?: AbortSignal }): Promise<BlobInfo> {
  const { expected, lease, tee, signal } = opts;
  if (expected) lease.blob(expected);
  const w = content.writer();
  w.on('error', () => {}); // surfaced by write/commit
  tee?.on('error', () => {}); // its reader reports its own failure
  try {
    for await (const b of chunks) {
      signal?.throwIfAborted();
      // Both 'drain' listeners go on at once: one registered after waiting for the other could miss its event.
      const full: Promise<unknown>[] = [];
      if (!w.write(b)) full.push(once(w, 'drain', { signal }));
      if (tee && !tee.destroyed && !tee.write(b)) full.push(room(tee, signal));
      if (full.length) await Promise.all(full);
    }
    const info = await w.commit(expected);
    lease.blob(info.digest);
    tee?.end();
    return info;
  } catch (err) {
    await w.abort();
    tee?.destroy(err as Error);
    throw err;
  }
}

/** A layer unpacked and verified, waiting for its turn in the chain. */
export interface IngestedLayer {
  blob: BlobInfo;
  diffId: string;
  size: number;
  /** Commit on `parent` (the lease holds the chain ID first); an existing layer of that chain ID wins. */
  commit(parent: string | null): Promise<Info>;
  discard(): Promise<void>;
}

/** Hold the layer's chain ID in the lease, then commit it. */
function leased(u: UnpackedLayer, lease: Lease): Pick<IngestedLayer, 'commit' | 'discard' | 'diffId' | 'size'> {
  return {
    diffId: u.diffId,
    size: u.size,
    commit: (parent) => {
      lease.snapshot(chainIdOf(parent, u.diffId));
      return u.commit(parent);
    },
    discard: () => u.discard(),
  };
}

/**
 * Unpack an existing blob's bytes (`tar`, already decompressed as needed) for a layer on `parent`.
 */
export async function unpackFromContent(storage: LayerTarget, tar: Readable, parent: Promise<string | null>, lease: Lease)
  : Promise<Pick<IngestedLayer, 'commit' | 'discard' | 'diffId' | 'size'>> {
  return leased(await unpackLayer(storage, tar, parent), lease);
}

/**
 * Bytes → blob and → snapshot at once. `toTar` turns the blob's bytes into the tar the unpacker reads
 * (e.g. zstd; gzip the applier detects itself). `parent` resolves to the committed layer below once there
 * is one (drivers without stageLayer cannot start unpacking before that).
 */
export async function ingestLayer(content: ContentStore, storage: LayerTarget, chunks: AsyncIterable<Buffer>, opts: {
  expected?: string; toTar?: (blob: Readable) => Readable; parent: Promise<string | null>; lease: Lease; signal?: AbortSignal;
}): Promise<IngestedLayer> {
  const tee = new PassThrough({ highWaterMark: 1 << 20 });
  const tar = opts.toTar ? opts.toTar(tee) : tee;
  const unpacking = unpackLayer(storage, tar, opts.parent);
  // A tar the unpacker rejects stops the bytes too.
  const local = new AbortController();
  unpacking.catch(() => local.abort());
  const signal = opts.signal ? AbortSignal.any([opts.signal, local.signal]) : local.signal;
  const writing = writeBlob(content, chunks, { expected: opts.expected, lease: opts.lease, tee, signal });
  const [u, w] = await Promise.allSettled([unpacking, writing]);
  if (w.status === 'rejected') {
    if (u.status === 'fulfilled') await u.value.discard();
    // An abort we caused because the unpacker failed: its error is the one that tells.
    throw isAbort(w.reason) && u.status === 'rejected' ? u.reason : w.reason;
  }
  if (u.status === 'rejected') throw u.reason;
  return { blob: w.value, ...leased(u.value, opts.lease) };
}

/**
 * A snapshot's changes → blob and new layer, in one pass: the packer applies each entry into the new
 * layer as it packs it, and its tar goes to the content writer only (nothing is unpacked again).
 * The blob is the uncompressed tar, so its digest is the diffId.
 */
export async function ingestDiff(content: ContentStore, storage: LayerTarget, diff: LayerDiff, opts: {
  parent: Promise<string | null>; lease: Lease;
}): Promise<IngestedLayer> {
  let packed: (p: Packed) => void = () => {};
  let unready: (err: unknown) => void = () => {};
  const ready = new Promise<Packed>((resolve, reject) => { packed = resolve; unready = reject; });
  const unpacking = unpackLayer(storage, (into) => {
    const p = diff.pack(into);
    packed(p);
    return p.done;
  }, opts.parent);
  // No layer dir to fill (prepare failed): no tar either.
  unpacking.catch(unready);
  async function* bytes(): AsyncGenerator<Buffer> {
    yield* (await ready).tar as AsyncIterable<Buffer>;
  }
  const writing = writeBlob(content, bytes(), { lease: opts.lease });
  const [u, w] = await Promise.allSettled([unpacking, writing]);
  if (w.status === 'rejected') {
    if (u.status === 'fulfilled') await u.value.discard();
    // The packer's failure stopped the tar: its error is the one that tells.
    throw isAbort(w.reason) && u.status === 'rejected' ? u.reason : w.reason;
  }
  if (u.status === 'rejected') throw u.reason;
  if (u.value.diffId !== w.value.digest) {
    await u.value.discard();
    throw new Error(`layer diffId ${u.value.diffId} differs from its blob ${w.value.digest}`);
  }
  return { blob: w.value, ...leased(u.value, opts.lease) };
}
