/**
 * `docker save`: images as one tar in the layout docker 25+ writes, readable both as a docker archive
 * and as an OCI image layout:
 *
 *   blobs/sha256/<hex>   every layer (uncompressed, so its digest is its diff ID), config and manifest, once
 *   index.json           OCI index: one manifest descriptor per tag (io.containerd.image.name annotations)
 *   manifest.json        docker's [{Config, RepoTags, Layers}] with paths into blobs/
 *   oci-layout           {"imageLayoutVersion": "1.0.0"}
 *   repositories         the legacy {repo: {tag: top layer}} map
 *
 * planSave resolves every name first, so a missing image is an error before any byte is sent; writeSave
 * then streams. Layers come from the content store: the uncompressed blob when there is one (import,
 * load), else the pulled blob decompressed (counted once first: a tar header needs the size up front).
 */
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { InvalidParameter, NotFound } from '../errors.js';
import type { ContentStore } from '../content/index.js';
import { digestHex, sha256Digest } from '../content/index.js';
import { layerCompression, ZstdDecompress } from '../registry/client/media.js';
import { MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_LAYER, MEDIA_TYPE_OCI_MANIFEST } from './import.js';
import { familiarString, parseNormalizedNamed, parseReference, repositoryName } from './reference.js';
import type { Image, ImageStore } from './store.js';

export const MEDIA_TYPE_OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

interface SaveItem {
  image: Image;
  /** Full references ("docker.io/library/busybox:latest") saved with it; empty when named by ID. */
  refs: string[];
}

export interface SavePlan { items: SaveItem[] }

const ID_RE = /^(sha256:)?[a-f0-9]{1,64}$/;

/** What each name means, docker's way: a repository without a tag saves all its tags; an ID saves the image untagged. */
export function planSave(images: ImageStore, names: string[]): SavePlan {
  if (names.length === 0) throw new InvalidParameter('no images specified');
  const byId = new Map<string, SaveItem>();
  const add = (image: Image, ref?: string): void => {
    const item = byId.get(image.id) ?? { image, refs: [] };
    if (ref && !item.refs.includes(ref)) item.refs.push(ref);
    byId.set(image.id, item);
  };
  for (const name of names) {
    let ref;
    try {
      ref = parseReference(name);
    } catch {
      ref = null;
    }
    // parseReference fills in ":latest", so "no tag given" is read off the text.
    const nameOnly = ref !== null && !ID_RE.test(name) && !name.includes('@') && !name.slice(name.lastIndexOf('/') + 1).includes(':');
    if (nameOnly) {
      const repo = repositoryName(ref!);
      const tagged = images.list().flatMap((img) => img.repoTags.filter((t) => repositoryName(parseNormalizedNamed(t)) === repo).map((t) => ({ img, t })));
      if (tagged.length) {
        for (const { img, t } of tagged) add(img, fullRef(t));
        continue;
      }
    }
    const image = images.resolve(name);
    if (ref !== null && !ID_RE.test(name) && ref.digest === undefined) add(image, fullRef(name));
    else add(image);
  }
  return { items: [...byId.values()] };
}

function fullRef(s: string): string {
  const r = parseNormalizedNamed(s);
  return `${repositoryName(r)}:${r.tag ?? 'latest'}`;
}

interface LayerSource { size: number; open(): Readable }

function toTar(content: ContentStore, digest: string, mediaType: string): () => Readable {
  const c = layerCompression(mediaType);
  return () => {
    const raw = content.readStream(digest);
    if (c === 'none') return raw;
    const dec = c === 'gzip' ? createGunzip({ chunkSize: 256 << 10 }) : new ZstdDecompress();
    raw.on('error', (e) => dec.destroy(e));
    return raw.pipe(dec);
  };
}

async function countBytes(r: Readable): Promise<number> {
  let n = 0;
  for await (const chunk of r) n += (chunk as Buffer).length;
  return n;
}

/** The uncompressed tar of layer i of img, from the content store. */
async function layerSource(content: ContentStore, img: Image, i: number): Promise<LayerSource> {
  const diffId = img.layers[i]!.diffId;
  const plain = content.info(diffId);
  if (plain) return { size: plain.size, open: () => content.readStream(diffId) };
  if (img.manifestDigest && content.has(img.manifestDigest)) {
    const m = JSON.parse((await content.read(img.manifestDigest)).toString('utf8')) as { layers?: { mediaType: string; digest: string }[] };
    const l = m.layers?.[i];
    if (l && content.has(l.digest)) {
      const open = toTar(content, l.digest, l.mediaType);
      return { size: await countBytes(open()), open };
    }
  }
  throw new NotFound(`layer ${diffId} of image ${img.id} is not in the content store`);
}

/** Stream the plan as a tar to out. */
export async function writeSave(plan: SavePlan, content: ContentStore, out: Writable): Promise<void> {
  const pack = tar.pack();
  const sent = pipeline(pack, out);
  sent.catch(() => {});
  const mtime = new Date();
  const file = (name: string, size: number, body: Readable | Buffer): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const header = { name, size, mode: 0o644, mtime, type: 'file' as const };
      if (Buffer.isBuffer(body)) {
        pack.entry(header, body, (err) => (err ? reject(err) : resolve()));
        return;
      }
      const entry = pack.entry(header, (err) => (err ? reject(err) : resolve()));
      pipeline(body, entry as unknown as NodeJS.WritableStream).catch(reject);
    });
  const dir = (name: string): Promise<void> =>
    new Promise<void>((resolve, reject) => pack.entry({ name, type: 'directory', mode: 0o755, mtime }, (err) => (err ? reject(err) : resolve())));
  const written = new Set<string>();
  /** Sizes of layers already in the tar, by diff ID: a shared layer is written once, described in each manifest. */
  const layerSizes = new Map<string, number>();
  const blob = async (digest: string, size: number, body: () => Readable | Buffer): Promise<string> => {
    const name = `blobs/sha256/${digestHex(digest)}`;
    if (!written.has(digest)) {
      written.add(digest);
      await file(name, size, body());
    }
    return name;
  };

  try {
    await dir('blobs/');
    await dir('blobs/sha256/');
    const index: object[] = [];
    const manifests: object[] = [];
    const repositories: Record<string, Record<string, string>> = {};
    for (const { image, refs } of plan.items) {
      const layerPaths: string[] = [];
      const layerDescs: object[] = [];
      for (let i = 0; i < image.layers.length; i++) {
        const diffId = image.layers[i]!.diffId;
        let size = layerSizes.get(diffId);
        if (size === undefined) {
          const src = await layerSource(content, image, i);
          size = src.size;
          layerSizes.set(diffId, size);
          await blob(diffId, size, src.open);
        }
        layerPaths.push(`blobs/sha256/${digestHex(diffId)}`);
        layerDescs.push({ mediaType: MEDIA_TYPE_OCI_LAYER, digest: diffId, size });
      }
      const config = await content.read(image.id);
      const configPath = await blob(image.id, config.length, () => config);
      const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPE_OCI_MANIFEST,
        config: { mediaType: MEDIA_TYPE_OCI_CONFIG, digest: image.id, size: config.length },
        layers: layerDescs,
      }));
      const manifestDigest = sha256Digest(manifest);
      await blob(manifestDigest, manifest.length, () => manifest);
      const desc = { mediaType: MEDIA_TYPE_OCI_MANIFEST, digest: manifestDigest, size: manifest.length };
      if (refs.length === 0) index.push(desc);
      for (const ref of refs) {
        const r = parseNormalizedNamed(ref);
        index.push({ ...desc, annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': r.tag ?? 'latest' } });
        const repo = familiarString(parseNormalizedNamed(repositoryName(r)));
        (repositories[repo] ??= {})[r.tag ?? 'latest'] = digestHex(image.layers[image.layers.length - 1]?.diffId ?? image.id);
      }
      manifests.push({ Config: configPath, RepoTags: refs.length ? refs.map((x) => familiarString(parseNormalizedNamed(x))) : null, Layers: layerPaths });
    }
    const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v) + '\n');
    const put = (name: string, b: Buffer): Promise<void> => file(name, b.length, b);
    await put('index.json', json({ schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests: index }));
    await put('manifest.json', json(manifests));
    await put('oci-layout', json({ imageLayoutVersion: '1.0.0' }));
    if (Object.keys(repositories).length) await put('repositories', json(repositories));
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    throw err;
  }
  await sent;
}
