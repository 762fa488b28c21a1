/**
 * Pull: manifest (→ platform from an index) → config → layers, into content + storage + image store.
 *
 * Order of writes, so that a crash or failure leaves nothing that matters:
 *   1. through the ingest path (image/ingest.ts), blobs stream into content writers, verified by digest
 *      at commit (a mismatch is never published), and at the same time into the unpacker, which fills
 *      a staged layer dir no reader sees (or, on drivers without staging, a snapshot on the layer below);
 *   2. a staged layer is committed once its blob verified and the layer below is committed;
 *   3. manifest blob, then images.add() — the single commit point of the image.
 * A lease holds every blob and layer the pull names while it runs. A failed pull discards its staged
 * dirs, releases the lease and lets images.collect() remove what it created that nothing uses; a
 * killed pull leaves committed blobs and layers (reused by the next pull: "Already exists") and ingest
 * files that content.recover() drops.
 */
import type { Readable } from 'node:stream';
import { BerthError, DigestMismatch, InvalidParameter, NotFound, Unavailable } from '../../errors.js';
import { log } from '../../log.js';
import { sha256Digest, type ContentStore, type Lease } from '../../content/index.js';
import type { Snapshotter } from '../../storage/index.js';
import {
  chainIds, familiarName, familiarString, formatReference, parsePlatform, parseReference, repositoryName,
  type Image, type ImageConfig, type ImageStore, type Reference,
} from '../../image/index.js';
import { ingestLayer, unpackFromContent, writeBlob, type IngestedLayer } from '../../image/ingest.js';
import { endpointsFor, errorText, readAll, Transport, Unauthorized, type SharedState } from './http.js';
import { isIndex, isManifest, layerCompression, MANIFEST_ACCEPT, ZstdDecompress } from './media.js';
import { Counter, layerProgress, layerStatus, message, shortDigest, Ticker } from './progress.js';
import type { AuthConfig, Descriptor, Progress, RegistryOptions } from './types.js';

export interface Deps { content: ContentStore; storage: Snapshotter; images: ImageStore; options: RegistryOptions }

export interface Manifest { schemaVersion?: number; mediaType?: string; config: Descriptor; layers: Descriptor[] }
interface Index { mediaType?: string; manifests: Descriptor[] }
interface SharedPull { promise: Promise<Image>; listeners: Set<Progress>; ac: AbortController }

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
  /** Chain IDs some pull is committing right now. */
  private readonly layers = new Map<string, Promise<void>>();
  private readonly pulls = new Map<string, SharedPull>();
  /** repository names each blob was pulled from (host/path), for cross-repository mounts on push. */
  readonly sources = new Map<string, Set<string>>();

  constructor(private readonly deps: Deps, private readonly state: SharedState) {}

  async pull(ref: string, opts: { platform?: string; auth?: AuthConfig; progress: Progress; signal?: AbortSignal }): Promise<Image> {
    const r = parseReference(ref);
    const platform = parsePlatform(opts.platform);
    const key = `${formatReference(r)}|${platform.os}/${platform.architecture}/${platform.variant ?? ''}`;
    let p = this.pulls.get(key);
    if (!p) {
      // Same image already on its way: later callers follow it rather than fetching twice.
      const listeners = new Set<Progress>();
      const ac = new AbortController();
      const emit: Progress = (m) => {
        for (const l of listeners) {
          try { l(m); } catch (err) { log.warn('registry: progress listener failed', { err: String(err) }); }
        }
      };
      const promise = this.pullEndpoints(r, platform, opts.auth, emit, ac.signal);
      const shared = { promise, listeners, ac };
      p = shared;
      this.pulls.set(key, shared);
      promise.then(() => this.pulls.delete(key), () => this.pulls.delete(key));
    }
    return this.follow(p, opts.progress, opts.signal);
  }

  /** Waits for a shared pull; a caller that gives up stops getting progress, and the pull stops once nobody waits. */
  private async follow(p: SharedPull, progress: Progress, signal?: AbortSignal): Promise<Image> {
    signal?.throwIfAborted();
    p.listeners.add(progress);
    let onAbort = (): void => {};
    const gaveUp = new Promise<never>((_, reject) => {
      onAbort = () => {
        p.listeners.delete(progress);
        if (p.listeners.size === 0) p.ac.abort();
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([p.promise, gaveUp]);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      p.listeners.delete(progress);
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
    const lease = content.leases.create();
    for (const d of [configDesc.digest, ...layerDescs.map((l) => l.digest), mf.digest]) lease.blob(d);
    const createdBlobs = new Set<string>();
    const createdLayers: string[] = [];
    const staged: Pick<IngestedLayer, 'discard'>[] = [];
    let chain: string[] = [];
    try {
      // Config first: it names the diff IDs that say which layers we already have.
      if (!content.has(configDesc.digest)) {
        await this.blob(t, r, configDesc, scopes, signal, createdBlobs, lease, () => {});
      }
      const config = parseJson<ImageConfig>(await content.read(configDesc.digest), 'image config');
      const diffIds = config.rootfs?.diff_ids;
      if (!Array.isArray(diffIds) || diffIds.length !== layerDescs.length) {
        throw new InvalidParameter(`invalid image config ${configDesc.digest}: ${layerDescs.length} layers in the manifest, ${Array.isArray(diffIds) ? diffIds.length : 0} diff IDs in the config`);
      }
      chain = chainIds(diffIds);
      for (const c of chain) lease.snapshot(c);

      const limiter = new Limiter(DOWNLOADS);
      const present = chain.map((c) => storage.stat(c) !== null);
      for (const [i, l] of layerDescs.entries()) {
        layerStatus(emit, shortDigest(l.digest), present[i] ? 'Already exists' : 'Pulling fs layer');
      }
      // Every layer downloads and unpacks at once into a staged dir; commits follow the chain's order.
      const work: Promise<unknown>[] = [];
      const committed: Promise<void>[] = [];
      for (const [i, l] of layerDescs.entries()) {
        const id = shortDigest(l.digest);
        const below = i === 0 ? Promise.resolve() : committed[i - 1]!;
        const elsewhere = this.layers.get(chain[i]!);
        let step: Promise<void>;
        if (present[i]) {
          step = below;
        } else if (elsewhere) {
          // Another pull is bringing this very layer: wait for it rather than unpacking a second copy.
          step = Promise.all([elsewhere, below]).then(() => layerStatus(emit, id, 'Pull complete'));
        } else {
          const parent = i === 0 ? null : chain[i - 1]!;
          const staging = this.stage(t, r, l, scopes, signal, createdBlobs, lease, below.then(() => parent), limiter, emit);
          staging.then((s) => staged.push(s), () => {});
          const commit = (async () => {
            const s = await staging;
            await below;
            if (s.diffId !== diffIds[i]) {
              throw new InvalidParameter(`failed to register layer: layer ${l.digest} has diff ID ${s.diffId}, the image config says ${diffIds[i]}`);
            }
            await s.commit(parent);
            createdLayers.push(chain[i]!);
            layerStatus(emit, id, 'Pull complete');
          })();
          this.layers.set(chain[i]!, commit);
          commit.then(() => this.layers.delete(chain[i]!), () => this.layers.delete(chain[i]!));
          work.push(staging);
          step = commit;
        }
        step.catch(() => ac.abort());
        committed.push(step);
      }
      // Wait for everything to settle before any cleanup, so nothing writes after it.
      const results = await Promise.allSettled([...work, ...committed]);
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
      lease.release();
      return image;
    } catch (err) {
      for (const s of staged) await s.discard();
      lease.release();
      // Other pulls hold what they rely on in leases of their own: collect() leaves that alone.
      await images.collect({ layers: createdLayers, blobs: createdBlobs });
      throw err;
    }
  }

  private remember(digest: string, repo: string): void {
    let s = this.sources.get(digest);
    if (!s) this.sources.set(digest, (s = new Set()));
    s.add(repo);
  }

  /** Fetches one blob into content, once even if several pulls want it; `tee` also gets its bytes, and ends once they are verified. */
  private async blob(t: Transport, r: Reference, desc: Descriptor, scopes: string[], signal: AbortSignal, created: Set<string>, lease: Lease,
    onBytes: (n: number) => void, onVerify?: () => void, tee?: (chunks: AsyncIterable<Buffer>) => Promise<unknown>): Promise<void> {
    let p = this.blobs.get(desc.digest);
    if (!p) {
      const chunks = this.download(t, r, desc, scopes, signal, onBytes, onVerify);
      const writing = tee ? tee(chunks) : writeBlob(this.deps.content, chunks, { expected: desc.digest, lease, signal });
      p = writing.then(() => { created.add(desc.digest); }, (err: unknown) => {
        // The blob may be in already while its unpacking failed: it is ours to collect.
        if (this.deps.content.has(desc.digest)) created.add(desc.digest);
        if (err instanceof DigestMismatch) throw new InvalidParameter(`filesystem layer verification failed for digest ${desc.digest}: ${err.message}`);
        throw err;
      });
      this.blobs.set(desc.digest, p);
      p.then(() => this.blobs.delete(desc.digest), () => this.blobs.delete(desc.digest));
    }
    await p;
  }

  /**
   * A blob's bytes from the registry. A connection that drops mid-body is resumed with a Range request;
   * from a server that ignores Range, the bytes we have already are skipped. A body that ends short or
   * runs long fails (the digest itself is checked by the content writer).
   */
  private async *download(t: Transport, r: Reference, desc: Descriptor, scopes: string[], signal: AbortSignal,
    onBytes: (n: number) => void, onVerify?: () => void): AsyncGenerator<Buffer> {
    let offset = 0;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
      const res = await t.request('GET', `/v2/${r.path}/blobs/${desc.digest}`, { headers, scopes, signal, follow: true });
      if (res.status !== 200 && res.status !== 206) {
        const text = await errorText(res);
        if (res.status === 404) throw new NotFound(`blob ${desc.digest} not found in ${repositoryName(r)}: ${text}`);
        throw new Unavailable(`error fetching blob ${desc.digest} from ${r.domain}: ${text}`);
      }
      let skip = res.status === 200 ? offset : 0;
      const body = res.body as Readable;
      try {
        for await (const chunk of body) {
          let b = chunk as Buffer;
          if (skip > 0) {
            const n = Math.min(skip, b.length);
            skip -= n;
            b = b.subarray(n);
            if (b.length === 0) continue;
          }
          offset += b.length;
          if (offset > desc.size) throw new InvalidParameter(`filesystem layer verification failed for digest ${desc.digest}: more than the ${desc.size} bytes the manifest announces`);
          yield b;
          onBytes(offset);
        }
        if (skip > 0) throw new Error('body ended before the bytes already fetched');
        break;
      } catch (err) {
        if (signal.aborted || err instanceof BerthError || attempt >= 4) throw err;
        log.warn('registry: blob download interrupted, resuming', { digest: desc.digest, offset, err: String(err) });
      } finally {
        if (!body.destroyed) body.destroy();
      }
    }
    onVerify?.();
    if (offset !== desc.size) {
      throw new InvalidParameter(`filesystem layer verification failed for digest ${desc.digest}: got ${offset} of ${desc.size} bytes (truncated blob)`);
    }
  }

  /**
   * One layer's files in a staged dir (or a snapshot on `parent`): unpacked from the content store when
   * the blob is there (or another pull is fetching it), else unpacked while it downloads. A staged dir is
   * only committed once the blob's digest checked out.
   */
  private async stage(t: Transport, r: Reference, l: Descriptor, scopes: string[], signal: AbortSignal, createdBlobs: Set<string>,
    lease: Lease, parent: Promise<string | null>, limiter: Limiter, emit: Progress): Promise<Pick<IngestedLayer, 'commit' | 'discard' | 'diffId'>> {
    const { content, storage } = this.deps;
    const id = shortDigest(l.digest);
    let downloaded = false;
    const ticker = new Ticker(l.size, (n) => layerProgress(emit, id, 'Extracting', n, l.size));
    const counter = (): Counter => new Counter((n) => { if (downloaded) ticker.update(n); });
    let counted: Counter | null = null;
    const toTar = (src: Readable): Readable => {
      const c = counted = counter();
      let tar: Readable = src.pipe(c);
      src.on('error', (e) => c.destroy(e));
      if (layerCompression(l.mediaType) === 'zstd') {
        const z = new ZstdDecompress();
        c.on('error', (e) => z.destroy(e));
        tar = c.pipe(z);
      }
      return tar;
    };
    const registerError = (err: unknown): never => {
      if (err instanceof BerthError || isAbort(err)) throw err;
      throw new InvalidParameter(`failed to register layer ${l.digest}: ${(err as Error).message}`);
    };
    const fromContent = (): Promise<Pick<IngestedLayer, 'commit' | 'discard' | 'diffId'>> => {
      layerStatus(emit, id, 'Download complete');
      downloaded = true;
      return unpackFromContent(storage, toTar(content.readStream(l.digest)), parent, lease).catch(registerError);
    };
    if (content.info(l.digest)?.size === l.size) return fromContent();
    const sharing = this.blobs.get(l.digest);
    if (sharing) return sharing.then(fromContent);
    if (limiter.full) layerStatus(emit, id, 'Waiting');
    return limiter.run(async () => {
      if (content.info(l.digest)?.size === l.size) return fromContent();
      const dl = new Ticker(l.size, (n) => layerProgress(emit, id, 'Downloading', n, l.size));
      let layer: IngestedLayer | null = null;
      await this.blob(t, r, l, scopes, signal, createdBlobs, lease, (n) => dl.update(n), () => layerStatus(emit, id, 'Verifying Checksum'),
        async (chunks) => {
          layer = await ingestLayer(content, storage, chunks, { expected: l.digest, toTar, parent, lease, signal }).catch(registerError);
        });
      layerStatus(emit, id, 'Download complete');
      downloaded = true;
      layerProgress(emit, id, 'Extracting', (counted as Counter | null)?.n ?? 0, l.size);
      return layer!;
    });
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
