/**
 * `docker import`: a one-layer image from a rootfs tarball (plain or gzip).
 *
 * The tar is read once: each uncompressed chunk goes both to the content store (the layer blob) and to
 * storage.applyLayer (the unpacked snapshot). Then the OCI config and manifest are written as blobs and
 * the image is recorded with store.add(), which is the single commit point.
 */
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { InvalidParameter } from '../errors.js';
import { log } from '../log.js';
import type { ContentStore } from '../content/index.js';
import { applyChanges } from './changes.js';
import type { EventBus } from '../events/index.js';
import { imageAttributes } from './events.js';
import { familiarString, parseReference } from './reference.js';
import type { ContainerConfig, Image, ImageConfig, ImageStore, LayerStore } from './store.js';

export const MEDIA_TYPE_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_TYPE_OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const MEDIA_TYPE_OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';

export interface ImportOptions { ref?: string; changes?: string[]; message?: string; platform?: string; events?: EventBus }

const GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** "linux/arm64/v8" → parts; defaults to the host's platform. */
export function parsePlatform(s: string | undefined): { os: string; architecture: string; variant?: string } {
  if (!s) return { os: 'linux', architecture: GOARCH[process.arch] ?? process.arch };
  const parts = s.toLowerCase().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9_.-]+$/.test(p))) {
    throw new InvalidParameter(`"${s}": unknown operating system or architecture: invalid argument`);
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** Reads the first chunk to tell a gzip stream from a plain tar; returns a stream of all the bytes. */
async function sniffGzip(src: Readable): Promise<{ gzip: boolean; stream: Readable }> {
  const it = src[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await it.next();
  const gzip = !first.done && first.value.length >= 2 && first.value[0] === 0x1f && first.value[1] === 0x8b;
  async function* all(): AsyncGenerator<Buffer> {
    if (first.done) return;
    yield first.value;
    for (;;) {
      const n = await it.next();
      if (n.done) return;
      yield n.value;
    }
  }
  return { gzip, stream: Readable.from(all(), { objectMode: false }) };
}

export async function importImage(store: ImageStore, content: ContentStore, storage: LayerStore, tar: Readable, opts: ImportOptions): Promise<Image> {
  const platform = parsePlatform(opts.platform);
  const cfg: ContainerConfig = applyChanges({}, opts.changes ?? []);
  // Validate the name before reading any byte, so a bad name costs nothing.
  if (opts.ref !== undefined) {
    if (parseReference(opts.ref).digest !== undefined) throw new InvalidParameter('refusing to create a tag with a digest reference');
  }

  const blob = content.writer();
  blob.on('error', () => {}); // surfaced by commit()
  const tee = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (blob.write(chunk)) cb(null, chunk);
      else blob.once('drain', () => cb(null, chunk));
    },
  });

  let layerBlob;
  let layer;
  try {
    const applied = storage.applyLayer(null, tee).then((info) => {
      tee.resume(); // read any trailing bytes the unpacker left, so the blob is the whole stream
      return info;
    }, (err: unknown) => {
      tee.destroy(err as Error);
      throw err;
    });
    const { gzip, stream } = await sniffGzip(tar);
    const copy = gzip ? pipeline(stream, createGunzip(), tee) : pipeline(stream, tee);
    // Wait for both sides before cleaning up, so no write lands after abort().
    const [copied, info] = await Promise.allSettled([copy, applied]);
    if (info.status === 'rejected') throw info.reason;
    if (copied.status === 'rejected') throw copied.reason;
    layer = info.value;
    layerBlob = await blob.commit();
  } catch (err) {
    await blob.abort();
    throw err;
  }
  if (layerBlob.digest !== layer.diffId) {
    log.warn('import: layer blob digest differs from the diff ID storage computed', { blob: layerBlob.digest, diffId: layer.diffId });
  }

  const created = new Date().toISOString();
  const config: ImageConfig = {
    created,
    ...platform,
    config: cfg,
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    history: [{ created, comment: opts.message || 'Imported from -' }],
  };
  const configBlob = await content.put(JSON.stringify(config));
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_MANIFEST,
    config: { mediaType: MEDIA_TYPE_OCI_CONFIG, digest: configBlob.digest, size: configBlob.size },
    layers: [{ mediaType: MEDIA_TYPE_OCI_LAYER, digest: layerBlob.digest, size: layerBlob.size }],
  };
  const manifestBlob = await content.put(JSON.stringify(manifest));
  const img = store.add(configBlob.digest, { tags: opts.ref !== undefined ? [opts.ref] : [], manifestDigest: manifestBlob.digest });
  // dockerd: the new name's tag event, then import.
  if (opts.ref !== undefined) opts.events?.publish('image', 'tag', img.id, imageAttributes(img, familiarString(parseReference(opts.ref))));
  opts.events?.publish('image', 'import', img.id, imageAttributes(img, img.id));
  return img;
}
