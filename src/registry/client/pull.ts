/**
 * Pull: manifest (→ platform from an index) → config → layers, into content + storage + image store.
 *
 * Order of writes, so that a crash or failure leaves nothing that matters:
 *   1. blobs stream into content writers, verified by digest at commit (a mismatch is never published);
 *   2. each layer is unpacked from its committed blob once it and the layer below are done;
 *   3. manifest blob, then images.add() — the single commit point of the image.
 * A failed pull removes the layers and blobs it created that nothing else uses; a killed pull leaves
 * committed blobs and layers (reused by the next pull: "Already exists") and ingest files that
 * content.recover() drops.
 */
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { BerthError, InvalidParameter, NotFound, Unavailable } from '../../errors.js';
import { log } from '../../log.js';
import { sha256Digest, type ContentStore } from '../../content/index.js';
import type { LayerInfo, Snapshotter } from '../../storage/index.js';
import {
  chainIds, familiarName, familiarString, formatReference, parsePlatform, parseReference, repositoryName,
  type Image, type ImageConfig, type ImageStore, type Reference,
} from '../../image/index.js';
import { endpointsFor, errorText, readAll, Transport, Unauthorized, type SharedState } from './http.js';
import { isIndex, isManifest, layerCompression, MANIFEST_ACCEPT, ZstdDecompress } from './media.js';
import { Counter, layerProgress, layerStatus, message, shortDigest, Ticker } from './progress.js';
import type { AuthConfig, Descriptor, Progress, RegistryOptions } from './types.js';

export interface Deps { content: ContentStore; storage: Snapshotter; images: ImageStore; options: RegistryOptions }

export interface Manifest { schemaVersion?: number; mediaType?: string; config: Descriptor; layers: Descriptor[] }
interface Index { mediaType?: string; manifests: Descriptor[] }

/** Parallel layer downloads, as dockerd's max-concurrent-downloads default. */
const DOWNLOADS = 3;

/** A tiny counting semaphore. */
class Limiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];
  constructor(private readonly max: number) {}
  get full(): boolean { return this.active >= this.max; }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.queue.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}


function isAbort(err: unknown): boolean {
  return (err as Error)?.name === 'AbortError';
}

function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch {
    throw new InvalidParameter(`invalid ${what}: not JSON`);
  }
}

function mediaTypeOf(body: { mediaType?: string; manifests?: unknown; config?: unknown }, header: string | undefined): string {
  if (typeof body.mediaType === 'string' && body.mediaType) return body.mediaType;
  const h = header?.split(';')[0]?.trim();
  if (h && (isIndex(h) || isManifest(h))) return h;
  if (Array.isArray(body.manifests)) return 'application/vnd.oci.image.index.v1+json';
  if (body.config) return 'application/vnd.oci.image.manifest.v1+json';
  return h ?? 'unknown';
}

function checkDescriptor(d: unknown, what: string): Descriptor {
  const x = d as Descriptor;
  if (!x || typeof x.digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(x.digest) || typeof x.size !== 'number' || x.size < 0) {
    throw new InvalidParameter(`invalid ${what} descriptor in manifest`);
  }
  return x;
}

export class Puller {
  private readonly blobs = new Map<string, Promise<void>>();
  private readonly layers = new Map<string, Promise<LayerInfo>>();
  private readonly pulls = new Map<string, { promise: Promise<Image>; listeners: Set<Progress> }>();
  /** Digests / chain IDs some running pull relies on: a failing pull must not delete those. */
  private readonly inUse = new Map<string, number>();
  /** repository names each blob was pulled from (host/path), for cross-repository mounts on push. */
  readonly sources = new Map<string, Set<string>>();

  constructor(private readonly deps: Deps, private readonly state: SharedState) {}

  async pull(ref: string, opts: { platform?: string; auth?: AuthConfig; progress: Progress; signal?: AbortSignal }): Promise<Image> {
    const r = parseReference(ref);
    const platform = parsePlatform(opts.platform);
    const key = `${formatReference(r)}|${platform.os}/${platform.architecture}/${platform.variant ?? ''}`;
    let p = this.pulls.get(key);
    if (p) {
      // Same image already on its way: follow it rather than fetching twice.
      p.listeners.add(opts.progress);
      try {
        return await p.promise;
      } finally {
        p.listeners.delete(opts.progress);
      }
    }
    const listeners = new Set<Progress>([opts.progress]);
    const emit: Progress = (m) => {
      for (const l of listeners) {
        try { l(m); } catch (err) { log.warn('registry: progress listener failed', { err: String(err) }); }
      }
    };
    const promise = this.pullEndpoints(r, platform, opts.auth, emit, opts.signal);
    p = { promise, listeners };
    this.pulls.set(key, p);
    try {
      return await promise;
    } finally {
      this.pulls.delete(key);
    }
  }

  private async pullEndpoints(r: Reference, platform: { os: string; architecture: string; variant?: string }, auth: AuthConfig | undefined,
    emit: Progress, signal?: AbortSignal): Promise<Image> {
    let lastErr: unknown;
    for (const ep of endpointsFor(r.domain, this.deps.options)) {
      const t = new Transport(r.domain, ep, this.state, ep.mirror ? undefined : auth);
      try {
        return await this.pullFrom(t, r, platform, emit, signal);
      } catch (err) {
        if (!ep.mirror || signal?.aborted) throw err;
        log.warn('registry: mirror failed, trying the next endpoint', { mirror: ep.url.href, err: String(err) });
        lastErr = err;
      }
    }
    throw lastErr;
  }

  private hold(keys: string[]): void {
    for (const k of keys) this.inUse.set(k, (this.inUse.get(k) ?? 0) + 1);
  }

  private release(keys: string[]): void {
    for (const k of keys) {
      const n = (this.inUse.get(k) ?? 1) - 1;
      if (n <= 0) this.inUse.delete(k);
      else this.inUse.set(k, n);
    }
  }

  /** GET a manifest by tag or digest; returns its bytes, media type and (computed) digest. */
  async fetchManifest(t: Transport, r: Reference, tagOrDigest: string, signal?: AbortSignal): Promise<{ bytes: Buffer; mediaType: string; digest: string }> {
    const res = await t.request('GET', `/v2/${r.path}/manifests/${tagOrDigest}`, {
      headers: { Accept: MANIFEST_ACCEPT }, scopes: [`repository:${r.path}:pull`], signal, follow: true,
    }).catch((err: unknown) => {
      if (err instanceof Unauthorized) {
        throw new Unauthorized(`pull access denied for ${familiarName(r)}, repository does not exist or may require 'docker login': ${err.message}`);
      }
      throw err;
    });
    if (res.status !== 200) {
      const text = await errorText(res);
      if (res.status === 404 && /^name unknown/.test(text)) {
        throw new NotFound(`pull access denied for ${familiarName(r)}, repository does not exist or may require 'docker login': ${text}`);
      }
      if (res.status === 404) {
        const shown = tagOrDigest.includes(':') ? `${familiarName(r)}@${tagOrDigest}` : `${familiarName(r)}:${tagOrDigest}`;
        throw new NotFound(`manifest for ${shown} not found: ${text}`);
      }
      if (res.status === 401 || res.status === 403) throw new Unauthorized(`pull access denied for ${familiarName(r)}: ${text}`);
      throw new Unavailable(`error from registry ${r.domain}: ${text}`);
    }
    const bytes = await readAll(res.body, 4 << 20);
    const body = parseJson<{ mediaType?: string; manifests?: unknown; config?: unknown }>(bytes, 'manifest');
    return { bytes, mediaType: mediaTypeOf(body, res.headers['content-type']), digest: sha256Digest(bytes) };
  }

  private async pullFrom(t: Transport, r: Reference, platform: { os: string; architecture: string; variant?: string }, emit: Progress,
    outer?: AbortSignal): Promise<Image> {
    const { content, storage, images } = this.deps;
    const tagOrDigest = r.digest ?? r.tag!;
    const top = await this.fetchManifest(t, r, tagOrDigest, outer);
    if (r.digest && top.digest !== r.digest) {
      throw new InvalidParameter(`manifest verification failed for digest ${r.digest}: got ${top.digest}`);
    }
    let mf = top;
    if (isIndex(top.mediaType)) {
      const idx = parseJson<Index>(top.bytes, 'manifest list');
      const want = `${platform.os}/${platform.architecture}${platform.variant ? '/' + platform.variant : ''}`;
      const pick = pickPlatform(idx.manifests ?? [], platform);
      if (!pick) throw new NotFound(`no matching manifest for ${want} in the manifest list entries`);
      mf = await this.fetchManifest(t, r, pick.digest, outer);
      if (mf.digest !== pick.digest) throw new InvalidParameter(`manifest verification failed for digest ${pick.digest}: got ${mf.digest}`);
    }
    if (!isManifest(mf.mediaType)) {
      throw new InvalidParameter(`unsupported manifest media type: ${JSON.stringify(mf.mediaType)}`);
    }
    const manifest = parseJson<Manifest>(mf.bytes, 'manifest');
    const configDesc = checkDescriptor(manifest.config, 'config');
    const layerDescs = (Array.isArray(manifest.layers) ? manifest.layers : []).map((l) => checkDescriptor(l, 'layer'));
    for (const l of layerDescs) layerCompression(l.mediaType); // fail before any byte is fetched

    message(emit, `Pulling from ${r.path}`, tagOrDigest);

    const previous = r.tag !== undefined ? safeResolve(images, formatReference(r)) : null;
    const source = repositoryName(r);
    const ac = new AbortController();
    const signal = outer ? AbortSignal.any([outer, ac.signal]) : ac.signal;
    const scopes = [`repository:${r.path}:pull`];
    const held = [configDesc.digest, ...layerDescs.map((l) => l.digest), mf.digest];
    const createdBlobs = new Set<string>();
    const createdLayers: string[] = [];
    this.hold(held);
    let chain: string[] = [];
    try {
      // Config first: it names the diff IDs that say which layers we already have.
      if (!content.has(configDesc.digest)) {
        await this.blob(t, r, configDesc, scopes, signal, createdBlobs, () => {});
      }
      const config = parseJson<ImageConfig>(await content.read(configDesc.digest), 'image config');
      const diffIds = config.rootfs?.diff_ids;
      if (!Array.isArray(diffIds) || diffIds.length !== layerDescs.length) {
        throw new InvalidParameter(`invalid image config ${configDesc.digest}: ${layerDescs.length} layers in the manifest, ${Array.isArray(diffIds) ? diffIds.length : 0} diff IDs in the config`);
      }
      chain = chainIds(diffIds);
      this.hold(chain);

      const limiter = new Limiter(DOWNLOADS);
      const present = chain.map((c) => storage.getLayer(c) !== null);
      for (const [i, l] of layerDescs.entries()) {
        layerStatus(emit, shortDigest(l.digest), present[i] ? 'Already exists' : 'Pulling fs layer');
      }
      const downloads: Promise<void>[] = layerDescs.map((l, i) => {
        if (present[i]) return Promise.resolve();
        const id = shortDigest(l.digest);
        if (limiter.full) layerStatus(emit, id, 'Waiting');
        return limiter.run(async () => {
          if (content.info(l.digest)?.size === l.size) {
            layerStatus(emit, id, 'Download complete');
            return;
          }
          const ticker = new Ticker(l.size, (n) => layerProgress(emit, id, 'Downloading', n, l.size));
          await this.blob(t, r, l, scopes, signal, createdBlobs, (n) => ticker.update(n), () => layerStatus(emit, id, 'Verifying Checksum'));
          layerStatus(emit, id, 'Download complete');
        });
      });
      const applied: Promise<void>[] = [];
      let below: Promise<void> = Promise.resolve();
      for (const [i, l] of layerDescs.entries()) {
        const prev = below;
        const step = (async () => {
          await downloads[i];
          await prev;
          if (present[i]) return;
          const id = shortDigest(l.digest);
          const ticker = new Ticker(l.size, (n) => layerProgress(emit, id, 'Extracting', n, l.size));
          await this.layer(i === 0 ? null : chain[i - 1]!, chain[i]!, diffIds[i]!, l, (n) => ticker.update(n), createdLayers);
          layerStatus(emit, id, 'Pull complete');
        })();
        step.catch(() => ac.abort());
        applied.push(step);
        below = step;
      }
      // Wait for everything to settle before any cleanup, so nothing writes after it.
      const results = await Promise.allSettled([...downloads, ...applied]);
      const failed = results.find((x): x is PromiseRejectedResult => x.status === 'rejected' && !isAbort(x.reason))
        ?? results.find((x): x is PromiseRejectedResult => x.status === 'rejected');
      if (failed) throw failed.reason;

      await content.put(mf.bytes, mf.digest);
      for (const l of layerDescs) this.remember(l.digest, source);
      this.remember(configDesc.digest, source);
      const image = images.add(configDesc.digest, {
        tags: r.tag !== undefined ? [formatReference(r)] : [],
        manifestDigest: mf.digest,
        repoDigest: `${source}@${top.digest}`,
      });
      message(emit, `Digest: ${top.digest}`);
      const upToDate = previous !== null && previous.id === image.id;
      message(emit, `Status: ${upToDate ? 'Image is up to date for' : 'Downloaded newer image for'} ${familiarString(r)}`);
      return image;
    } catch (err) {
      await this.cleanup(createdLayers, createdBlobs, held.concat(chain));
      throw err;
    } finally {
      this.release(held);
      this.release(chain);
    }
  }

  private remember(digest: string, repo: string): void {
    let s = this.sources.get(digest);
    if (!s) this.sources.set(digest, (s = new Set()));
    s.add(repo);
  }

  /** Removes what a failed pull created, unless an image or another running pull uses it. */
  private async cleanup(layers: string[], blobs: Set<string>, held: string[]): Promise<void> {
    const { images, storage, content } = this.deps;
    const busy = (k: string): boolean => (this.inUse.get(k) ?? 0) > held.filter((h) => h === k).length;
    const all = images.list();
    const usedLayers = new Set(all.flatMap((i) => i.layers.map((l) => l.chainId)));
    for (const c of [...layers].reverse()) {
      if (usedLayers.has(c) || busy(c)) continue;
      await storage.removeLayer(c).catch((err: unknown) => log.debug('registry: layer kept after failed pull', { chainId: c, err: String(err) }));
    }
    if (blobs.size === 0) return;
    const usedBlobs = new Set<string>();
    for (const i of all) {
      usedBlobs.add(i.id);
      if (!i.manifestDigest) continue;
      usedBlobs.add(i.manifestDigest);
      try {
        const m = JSON.parse((await content.read(i.manifestDigest)).toString('utf8')) as Manifest;
        for (const l of m.layers ?? []) usedBlobs.add(l.digest);
      } catch { /* unreadable manifest: its blobs stay unknown */ }
    }
    for (const d of blobs) {
      if (usedBlobs.has(d) || busy(d)) continue;
      await content.delete(d);
    }
  }

  /** Fetches one blob into content, once even if several pulls want it. */
  private async blob(t: Transport, r: Reference, desc: Descriptor, scopes: string[], signal: AbortSignal, created: Set<string>,
    onBytes: (n: number) => void, onVerify?: () => void): Promise<void> {
    let p = this.blobs.get(desc.digest);
    if (!p) {
      p = this.download(t, r, desc, scopes, signal, onBytes, onVerify).then(() => { created.add(desc.digest); });
      this.blobs.set(desc.digest, p);
      p.then(() => this.blobs.delete(desc.digest), () => this.blobs.delete(desc.digest));
    }
    await p;
  }

  /**
   * Streams a blob into a content writer. A connection that drops mid-body is resumed with a Range
   * request (a server ignoring Range makes us start over); a body that ends cleanly but short, or bytes
   * that hash to another digest, fail: the writer is aborted and nothing is published.
   */
  private async download(t: Transport, r: Reference, desc: Descriptor, scopes: string[], signal: AbortSignal,
    onBytes: (n: number) => void, onVerify?: () => void): Promise<void> {
    const { content } = this.deps;
    let w = content.writer();
    w.on('error', () => {}); // surfaced by write/commit
    let offset = 0;
    try {
      for (let attempt = 0; ; attempt++) {
        const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
        const res = await t.request('GET', `/v2/${r.path}/blobs/${desc.digest}`, { headers, scopes, signal, follow: true });
        if (res.status === 200 && offset > 0) {
          await w.abort();
          w = content.writer();
          w.on('error', () => {});
          offset = 0;
        } else if (res.status !== 200 && res.status !== 206) {
          const text = await errorText(res);
          if (res.status === 404) throw new NotFound(`blob ${desc.digest} not found in ${repositoryName(r)}: ${text}`);
          throw new Unavailable(`error fetching blob ${desc.digest} from ${r.domain}: ${text}`);
        }
        try {
          for await (const chunk of res.body as Readable) {
            const b = chunk as Buffer;
            offset += b.length;
            if (offset > desc.size) throw new InvalidParameter(`filesystem layer verification failed for digest ${desc.digest}: more than the ${desc.size} bytes the manifest announces`);
            if (!w.write(b)) await once(w, 'drain', { signal });
            onBytes(offset);
          }
          break;
        } catch (err) {
          if (signal.aborted || err instanceof BerthError || attempt >= 4) throw err;
          log.warn('registry: blob download interrupted, resuming', { digest: desc.digest, offset, err: String(err) });
        }
      }
      onVerify?.();
      if (offset !== desc.size) {
        throw new InvalidParameter(`filesystem layer verification failed for digest ${desc.digest}: got ${offset} of ${desc.size} bytes (truncated blob)`);
      }
      try {
        await w.commit(desc.digest);
      } catch (err) {
        if (err instanceof InvalidParameter && /digest mismatch/.test(err.message)) {
          throw new InvalidParameter(`filesystem layer verification failed for digest ${desc.digest}: ${err.message}`);
        }
        throw err;
      }
    } catch (err) {
      await w.abort();
      throw err;
    }
  }

  /** Unpacks a committed layer blob on top of parent, once per chain ID even across pulls. */
  private async layer(parent: string | null, chainId: string, diffId: string, desc: Descriptor, onBytes: (n: number) => void,
    created: string[]): Promise<LayerInfo> {
    const { storage, content } = this.deps;
    const have = storage.getLayer(chainId);
    if (have) return have;
    let p = this.layers.get(chainId);
    if (!p) {
      p = (async () => {
        const src = content.readStream(desc.digest);
        const counter = new Counter(onBytes);
        let tar: Readable = src.pipe(counter);
        src.on('error', (e) => counter.destroy(e));
        if (layerCompression(desc.mediaType) === 'zstd') {
          const z = new ZstdDecompress();
          counter.on('error', (e) => z.destroy(e));
          tar = counter.pipe(z);
        }
        const info = await storage.applyLayer(parent, tar);
        if (!storage.getLayer(chainId) || info.chainId !== chainId) {
          // Unpacked content does not match the config's diff ID: throw the layer away.
          if (info.chainId !== chainId) await storage.removeLayer(info.chainId).catch(() => {});
          throw new InvalidParameter(`failed to register layer: layer ${desc.digest} has diff ID ${info.diffId}, the image config says ${diffId}`);
        }
        created.push(chainId);
        return info;
      })();
      this.layers.set(chainId, p);
      p.then(() => this.layers.delete(chainId), () => this.layers.delete(chainId));
    }
    return p;
  }
}

function safeResolve(images: ImageStore, ref: string): Image | null {
  try {
    return images.resolve(ref);
  } catch {
    return null;
  }
}

/** Picks the manifest for a platform from an index (variant: exact if asked; arm64 defaults to v8). */
export function pickPlatform(manifests: Descriptor[], want: { os: string; architecture: string; variant?: string }): Descriptor | null {
  const cands = manifests.filter((m) => m.platform?.os === want.os && m.platform?.architecture === want.architecture);
  if (want.variant) return cands.find((m) => m.platform?.variant === want.variant) ?? null;
  if (want.architecture === 'arm64') return cands.find((m) => !m.platform?.variant || m.platform.variant === 'v8') ?? null;
  return cands.find((m) => !m.platform?.variant) ?? cands[0] ?? null;
}
