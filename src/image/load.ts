/**
 * `docker load`: images from a tar made by `docker save` (dockerd 20.10's <id>/layer.tar + <id>.json,
 * or docker 25+'s blobs/ with index.json), by berth save, or by skopeo (docker-archive, oci-archive).
 *
 * The tar is first unpacked whole into a private temp dir (every name checked: one that climbs out
 * of the archive, or a tar cut short, is an error before anything is stored). Then, per image:
 * config and layers are read from there (manifest.json when present, else the OCI index), each layer
 * goes through the one ingest path (blob + snapshot, its diff ID checked against the config), and
 * store.add() records the image; tags are moved onto it last. A lease holds everything until then;
 * on failure the lease is released and what was made is collected, as import does.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { extractTar, safeJoin } from '../archive/index.js';
import type { ContentStore } from '../content/index.js';
import { InvalidParameter } from '../errors.js';
import type { EventBus } from '../events/index.js';
import type { LayerTarget } from '../storage/index.js';
import { ZstdDecompress } from '../registry/client/media.js';
import { imageAttributes } from './events.js';
import { MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_MANIFEST } from './import.js';
import { ingestLayer, writeBlob } from './ingest.js';
import { familiarString, parseNormalizedNamed, parseReference } from './reference.js';
import { chainIds, type ImageConfig, type ImageStore } from './store.js';

/** One image found in the archive: paths inside the unpacked tree. */
export interface ArchiveImage {
  config: string;
  layers: string[];
  /** References as given (familiar or full); none when the archive names it by ID only. */
  tags: string[];
}

export interface LoadProgress {
  /** A layer's bytes, as they are unpacked (docker's "Loading layer" bars). */
  layer(id: string, current: number, total: number): void;
  /** A line for the user ("Loaded image: busybox:latest"). */
  line(text: string): void;
}

interface Descriptor { mediaType?: string; digest?: string; annotations?: Record<string, string>; platform?: { os?: string; architecture?: string } }

function readJSON<T>(root: string, rel: string): T {
  const file = safeJoin(root, rel);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new InvalidParameter(`invalid archive: ${rel} is missing`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new InvalidParameter(`invalid archive: ${rel} is not JSON: ${(err as Error).message}`);
  }
}

const blobPath = (digest: string): string => {
  const m = /^(\w+):([a-f0-9]+)$/.exec(digest);
  if (!m) throw new InvalidParameter(`invalid archive: bad digest ${JSON.stringify(digest)}`);
  return `blobs/${m[1]}/${m[2]}`;
};

/** An OCI index entry down to an image manifest: nested indexes pick this host's platform, else the first. */
function manifestOf(root: string, d: Descriptor, arch: string): { config: string; layers: string[] } {
  const m = readJSON<{ mediaType?: string; manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] }>(root, blobPath(d.digest ?? ''));
  if (m.manifests) {
    const pick = m.manifests.find((x) => x.platform?.os === 'linux' && x.platform?.architecture === arch) ?? m.manifests[0];
    if (!pick) throw new InvalidParameter('invalid archive: an index with no manifests');
    return manifestOf(root, pick, arch);
  }
  if (!m.config?.digest || !Array.isArray(m.layers)) throw new InvalidParameter(`invalid archive: manifest ${d.digest} has no config or layers`);
  return { config: blobPath(m.config.digest), layers: m.layers.map((l) => blobPath(l.digest ?? '')) };
}

/** The images of an unpacked archive: docker's manifest.json when there is one, else the OCI index. */
export function readArchive(root: string, arch: string): ArchiveImage[] {
  if (fs.existsSync(safeJoin(root, 'manifest.json'))) {
    const list = readJSON<{ Config?: unknown; RepoTags?: unknown; Layers?: unknown }[]>(root, 'manifest.json');
    if (!Array.isArray(list)) throw new InvalidParameter('invalid archive: manifest.json is not a list');
    return list.map((e) => {
      if (typeof e.Config !== 'string' || !Array.isArray(e.Layers) || e.Layers.some((l) => typeof l !== 'string')) {
        throw new InvalidParameter('invalid archive: a manifest.json entry without Config or Layers');
      }
      const tags = Array.isArray(e.RepoTags) ? e.RepoTags.filter((t): t is string => typeof t === 'string') : [];
      return { config: e.Config, layers: e.Layers as string[], tags };
    });
  }
  if (fs.existsSync(safeJoin(root, 'index.json'))) {
    const index = readJSON<{ manifests?: Descriptor[] }>(root, 'index.json');
    const byManifest = new Map<string, ArchiveImage>();
    for (const d of index.manifests ?? []) {
      const key = d.digest ?? '';
      let img = byManifest.get(key);
      if (!img) {
        img = { ...manifestOf(root, d, arch), tags: [] };
        byManifest.set(key, img);
      }
      const name = d.annotations?.['io.containerd.image.name'] ?? d.annotations?.['org.opencontainers.image.ref.name'];
      // A bare tag ("latest") names no repository: such an image loads untagged, as in docker.
      if (name && name.includes(':') && !img.tags.includes(name)) img.tags.push(name);
      else if (name && /[/]/.test(name) && !img.tags.includes(name)) img.tags.push(name);
    }
    return [...byManifest.values()];
  }
  throw new InvalidParameter('invalid archive: it has neither manifest.json nor index.json (not a docker save or OCI archive)');
}

const GZIP = [0x1f, 0x8b];
const ZSTD = 0xfd2fb528;

function compressionOf(file: string): 'none' | 'gzip' | 'zstd' {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(4);
    const n = fs.readSync(fd, b, 0, 4, 0);
    if (n >= 2 && b[0] === GZIP[0] && b[1] === GZIP[1]) return 'gzip';
    if (n === 4 && b.readUInt32LE(0) === ZSTD) return 'zstd';
    return 'none';
  } finally {
    fs.closeSync(fd);
  }
}

const LAYER_MEDIA = { none: 'application/vnd.oci.image.layer.v1.tar', gzip: 'application/vnd.oci.image.layer.v1.tar+gzip', zstd: 'application/vnd.oci.image.layer.v1.tar+zstd' };

/** tmp: the daemon's own scratch dir (emptied at start-up), where the tar is unpacked. */
export interface LoadDeps { images: ImageStore; content: ContentStore; storage: LayerTarget; events?: EventBus; arch: string; tmp: string }

/** Load every image of the tar; returns the image IDs, in archive order. */
export async function loadImages(deps: LoadDeps, input: Readable, progress: LoadProgress): Promise<string[]> {
  const root = path.join(deps.tmp, `load-${crypto.randomBytes(8).toString('hex')}`);
  fs.mkdirSync(root, { mode: 0o700 });
  try {
    try {
      await extractTar(input, root, { strict: true, owner: { uid: 0, gid: 0 } });
    } catch (err) {
      if (err instanceof InvalidParameter) throw err;
      throw new InvalidParameter(`invalid archive: ${(err as Error).message}`);
    }
    const found = readArchive(root, deps.arch);
    // Every config and layer file must be there before anything is stored.
    for (const img of found) for (const f of [img.config, ...img.layers]) {
      if (!fs.statSync(safeJoin(root, f), { throwIfNoEntry: false })?.isFile()) throw new InvalidParameter(`invalid archive: ${f} is missing`);
    }
    const ids: string[] = [];
    for (const img of found) ids.push(await loadOne(deps, root, img, progress));
    return ids;
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

async function loadOne(deps: LoadDeps, root: string, a: ArchiveImage, progress: LoadProgress): Promise<string> {
  const { images, content, storage } = deps;
  const configBytes = fs.readFileSync(safeJoin(root, a.config));
  let config: ImageConfig;
  try {
    config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
  } catch (err) {
    throw new InvalidParameter(`invalid archive: ${a.config} is not JSON: ${(err as Error).message}`);
  }
  const diffIds = config.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.length !== a.layers.length) {
    throw new InvalidParameter(`invalid archive: ${a.config} lists ${diffIds?.length ?? 0} layers, the manifest ${a.layers.length}`);
  }
  for (const t of a.tags) parseReference(t);
  const chains = chainIds(diffIds);
  const lease = content.leases.create();
  const made: string[] = [];
  try {
    const layerDescs: object[] = [];
    for (let i = 0; i < a.layers.length; i++) {
      const file = safeJoin(root, a.layers[i]!);
      const total = fs.statSync(file).size;
      const shortId = diffIds[i]!.replace(/^sha256:/, '').slice(0, 12);
      const compression = compressionOf(file);
      const chunks = (async function* (): AsyncGenerator<Buffer> {
        let current = 0;
        for await (const b of fs.createReadStream(file, { highWaterMark: 1 << 20 })) {
          current += (b as Buffer).length;
          progress.layer(shortId, current, total);
          yield b as Buffer;
        }
      })();
      const parent = i === 0 ? null : chains[i - 1]!;
      const toTar = compression === 'zstd' ? (r: Readable) => r.pipe(new ZstdDecompress()) : undefined;
      if (storage.stat(chains[i]!)) {
        // The layer is here already; its blob is still stored, so save can send it again.
        lease.snapshot(chains[i]!);
        const have = compression === 'none' ? content.info(diffIds[i]!) : null;
        if (have) lease.blob(have.digest);
        const info = have ?? (await writeBlob(content, chunks, { lease }));
        layerDescs.push({ mediaType: LAYER_MEDIA[compression], digest: info.digest, size: info.size });
        continue;
      }
      const ingested = await ingestLayer(content, storage, chunks, { toTar, parent: Promise.resolve(parent), lease });
      if (ingested.diffId !== diffIds[i]) {
        await ingested.discard();
        throw new InvalidParameter(`invalid archive: layer ${a.layers[i]} has diff ID ${ingested.diffId}, its config says ${diffIds[i]}`);
      }
      const info = await ingested.commit(parent);
      made.push(info.name);
      layerDescs.push({ mediaType: LAYER_MEDIA[compression], digest: ingested.blob.digest, size: ingested.blob.size });
    }
    const configBlob = await content.put(configBytes);
    lease.blob(configBlob.digest);
    const manifest = await content.put(JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      config: { mediaType: MEDIA_TYPE_OCI_CONFIG, digest: configBlob.digest, size: configBlob.size },
      layers: layerDescs,
    }));
    lease.blob(manifest.digest);
    const existing = images.get(configBlob.digest);
    const image = images.add(configBlob.digest, { manifestDigest: existing?.manifestDigest ?? manifest.digest });
    for (const t of a.tags) {
      const name = familiarString(parseNormalizedNamed(t));
      let old: string | null = null;
      try {
        old = images.resolve(name).id;
      } catch {}
      if (old && old !== image.id) progress.line(`The image ${name} already exists, renaming the old one with ID ${old} to empty string`);
      images.tag(image.id, t);
    }
    lease.release();
    deps.events?.publish('image', 'load', image.id, imageAttributes(image, image.id));
    if (a.tags.length === 0) progress.line(`Loaded image ID: ${image.id}`);
    for (const t of a.tags) progress.line(`Loaded image: ${familiarString(parseNormalizedNamed(t))}`);
    return image.id;
  } catch (err) {
    const held = [...lease.blobs];
    lease.release();
    await images.collect({ layers: made, blobs: held });
    throw err;
  }
}
