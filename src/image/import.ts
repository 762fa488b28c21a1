/**
 * `docker import`: a one-layer image from a rootfs tarball (plain or gzip).
 *
 * The tar is read once, through the ingest path (ingest.ts): each uncompressed chunk goes both to the
 * content store (the layer blob) and to the unpacker (the layer snapshot). Then the OCI config and
 * manifest are written as blobs and the image is recorded with store.add(), which is the single commit
 * point. A lease holds all of it meanwhile; a failure releases it and collects what was made.
 */
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { InvalidParameter } from '../errors.js';
import { log } from '../log.js';
import type { ContentStore } from '../content/index.js';
import type { LayerTarget } from '../storage/index.js';
import { ingestLayer } from './ingest.js';
import { applyChanges } from './changes.js';
import type { EventBus } from '../events/index.js';
import { imageAttributes } from './events.js';
import { familiarString, parseReference } from './reference.js';
import type { ContainerConfig, Image, ImageConfig, ImageStore } from './store.js';

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

export async function importImage(store: ImageStore, content: ContentStore, storage: LayerTarget, tar: Readable, opts: ImportOptions): Promise<Image> {
  const platform = parsePlatform(opts.platform);
  const cfg: ContainerConfig = applyChanges({}, opts.changes ?? []);
  // Validate the name before reading any byte, so a bad name costs nothing.
  if (opts.ref !== undefined) {
    if (parseReference(opts.ref).digest !== undefined) throw new InvalidParameter('refusing to create a tag with a digest reference');
  }

  const lease = content.leases.create();
  const layers: string[] = [];
  try {
    const { gzip, stream } = await sniffGzip(tar);
    const bytes = gzip ? stream.pipe(createGunzip()) : stream;
    if (gzip) stream.on('error', (e) => bytes.destroy(e));
    const ingested = await ingestLayer(content, storage, bytes, { parent: Promise.resolve(null), lease });
    const layerBlob = ingested.blob;
    const layer = await ingested.commit(null);
    layers.push(layer.name);
    if (layerBlob.digest !== ingested.diffId) {
      log.warn('import: layer blob digest differs from the diff ID storage computed', { blob: layerBlob.digest, diffId: ingested.diffId });
    }

    const created = new Date().toISOString();
    const config: ImageConfig = {
      created,
      ...platform,
      config: cfg,
      rootfs: { type: 'layers', diff_ids: [ingested.diffId] },
      history: [{ created, comment: opts.message || 'Imported from -' }],
    };
    const configBlob = await content.put(JSON.stringify(config));
    lease.blob(configBlob.digest);
    const manifest = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      config: { mediaType: MEDIA_TYPE_OCI_CONFIG, digest: configBlob.digest, size: configBlob.size },
      layers: [{ mediaType: MEDIA_TYPE_OCI_LAYER, digest: layerBlob.digest, size: layerBlob.size }],
    };
    const manifestBlob = await content.put(JSON.stringify(manifest));
    lease.blob(manifestBlob.digest);
    const image = store.add(configBlob.digest, { tags: opts.ref !== undefined ? [opts.ref] : [], manifestDigest: manifestBlob.digest });
    lease.release();
    // dockerd: the new name's tag event, then import.
    if (opts.ref !== undefined) opts.events?.publish('image', 'tag', image.id, imageAttributes(image, familiarString(parseReference(opts.ref))));
    opts.events?.publish('image', 'import', image.id, imageAttributes(image, image.id));
    return image;
  } catch (err) {
    const held = [...lease.blobs];
    lease.release();
    await store.collect({ layers, blobs: held });
    throw err;
  }
}
