/**
 * Push: the layers of a local image (as stored in content — pulled images keep their compressed blobs,
 * imported ones their plain tars), then its config, then its manifest bytes, so the digests a pull
 * recorded are the digests the registry gets. Each blob is skipped when the registry has it (HEAD),
 * mounted from another repository of the same registry when we know one that holds it, else uploaded:
 * one PUT when small, PATCH chunks then PUT when large.
 */
import * as fs from 'node:fs';
import { InvalidParameter, NotFound, Unavailable } from '../../errors.js';
import { sha256Digest, type ContentStore } from '../../content/index.js';
import {
  familiarName, parseNormalizedNamed, parseReference, repositoryName, type ImageStore, type Reference,
} from '../../image/index.js';
import { endpointsFor, errorText, Transport, type SharedState } from './http.js';
import { isManifest } from './media.js';
import { Counter, layerProgress, layerStatus, message, shortDigest, Ticker } from './progress.js';
import type { Manifest } from './pull.js';
import type { AuthConfig, Descriptor, Progress, RegistryOptions } from './types.js';

export interface PushTuning {
  /** Blobs up to this size go in one PUT (default 8 MiB). */
  monolithicMax?: number;
  /** PATCH chunk size for larger blobs (default 16 MiB). */
  chunkSize?: number;
}

/** dockerd's max-concurrent-uploads default. */
const UPLOADS = 5;


export interface PushDeps {
  content: ContentStore;
  images: ImageStore;
  options: RegistryOptions;
  state: SharedState;
  /** Repositories (host/path) each blob is known to have come from. */
  sources: Map<string, Set<string>>;
  tuning: PushTuning;
}

function uploadUrl(res: { headers: Record<string, string | string[] | undefined> }, base: URL): URL {
  const loc = res.headers.location;
  if (typeof loc !== 'string' || !loc) throw new Unavailable('registry answered an upload request without a Location');
  return new URL(loc, base);
}

/**
 * Pushes ref's tag, or with `allTags` and a ref without one (the API's push without a tag) every local
 * tag of ref's repository, one after the other, as dockerd does.
 */
export async function push(deps: PushDeps, ref: string, opts: { auth?: AuthConfig; progress: Progress; signal?: AbortSignal; allTags?: boolean }): Promise<{ digest: string; size: number }> {
  const named = parseNormalizedNamed(ref);
  if (named.digest !== undefined) throw new InvalidParameter('cannot push a digest reference');
  const r: Reference = parseReference(ref);
  const repo = repositoryName(r);
  const tags = opts.allTags && named.tag === undefined
    ? [...new Set(deps.images.list().flatMap((i) => i.repoTags))].filter((t) => repositoryName(parseReference(t)) === repo).map((t) => parseReference(t).tag!).sort()
    : [r.tag!];
  if (tags.length === 0) throw new NotFound(`An image does not exist locally with the tag: ${familiarName(r)}`);
  message(opts.progress, `The push refers to repository [${repo}]`);
  let last = { digest: '', size: 0 };
  for (const tag of tags) last = await pushTag(deps, { ...r, tag }, opts);
  return last;
}

async function pushTag(deps: PushDeps, r: Reference, opts: { auth?: AuthConfig; progress: Progress; signal?: AbortSignal }): Promise<{ digest: string; size: number }> {
  const { content, images } = deps;
  const tag = r.tag!;
  const repo = repositoryName(r);
  let img;
  try {
    img = images.resolve(`${repo}:${tag}`);
  } catch (err) {
    if (err instanceof NotFound) throw new NotFound(`An image does not exist locally with the tag: ${familiarName(r)}`);
    throw err;
  }
  if (!img.manifestDigest) throw new InvalidParameter(`image ${img.id} has no manifest to push`);
  const manifestBytes = await content.read(img.manifestDigest);
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as Manifest;
  const mediaType = manifest.mediaType ?? 'application/vnd.oci.image.manifest.v1+json';
  if (!isManifest(mediaType)) throw new InvalidParameter(`cannot push manifest of media type ${mediaType}`);
  const layers = manifest.layers ?? [];
  for (const l of [...layers, manifest.config]) {
    if (!content.has(l.digest)) throw new NotFound(`blob ${l.digest} of image ${img.id} is not in the content store; pull the image again to push it`);
  }

  // Pushes go to the origin, never to a mirror.
  const eps = endpointsFor(r.domain, deps.options);
  const t = new Transport(r.domain, eps[eps.length - 1]!, deps.state, opts.auth);
  const base = await t.base(opts.signal);
  const scope = `repository:${r.path}:pull,push`;

  // Other repositories of this registry that hold the image's blobs (from pulls, and the image's own repo digests).
  const mountFrom = (digest: string): string[] => {
    const out = new Set<string>();
    for (const s of deps.sources.get(digest) ?? []) out.add(s);
    for (const d of img.repoDigests) out.add(repositoryName(parseNormalizedNamed(d)));
    return [...out].flatMap((full) => {
      const n = parseNormalizedNamed(full);
      return n.domain === r.domain && n.path !== r.path ? [n.path] : [];
    });
  };

  const pushBlob = async (desc: Descriptor, id: string | null): Promise<void> => {
    const say = (s: string): void => { if (id) layerStatus(opts.progress, id, s); };
    const head = await t.request('HEAD', `/v2/${r.path}/blobs/${desc.digest}`, { scopes: [scope], signal: opts.signal, follow: true });
    head.body.resume();
    if (head.status === 200) return say('Layer already exists');
    let start: Awaited<ReturnType<Transport['request']>> | null = null;
    for (const from of mountFrom(desc.digest)) {
      const res = await t.request('POST', `/v2/${r.path}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}`, {
        scopes: [scope, `repository:${from}:pull`], signal: opts.signal, body: Buffer.alloc(0),
      });
      if (res.status === 201) {
        res.body.resume();
        return say(`Mounted from ${from}`);
      }
      if (res.status === 202) { start = res; break; }
      res.body.resume();
    }
    if (!start) {
      start = await t.request('POST', `/v2/${r.path}/blobs/uploads/`, { scopes: [scope], signal: opts.signal, body: Buffer.alloc(0) });
      if (start.status !== 202) throw new Unavailable(`cannot start upload of ${desc.digest} to ${repo}: ${await errorText(start)}`);
    }
    start.body.resume();
    let loc = uploadUrl(start, base);
    const ticker = new Ticker(desc.size, (n) => { if (id) layerProgress(opts.progress, id, 'Pushing', n, desc.size); });
    const monolithicMax = deps.tuning.monolithicMax ?? 8 << 20;
    const chunk = deps.tuning.chunkSize ?? 16 << 20;
    if (desc.size <= monolithicMax) {
      loc.searchParams.set('digest', desc.digest);
      const res = await t.request('PUT', loc.href, {
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(desc.size) },
        body: content.readStream(desc.digest).pipe(new Counter((n) => ticker.update(n))), scopes: [scope], signal: opts.signal,
      });
      if (res.status !== 201) throw new Unavailable(`upload of ${desc.digest} to ${repo} failed: ${await errorText(res)}`);
      res.body.resume();
    } else {
      const file = content.path(desc.digest);
      for (let off = 0; off < desc.size; off += chunk) {
        const end = Math.min(desc.size, off + chunk) - 1;
        const body = fs.createReadStream(file, { start: off, end }).pipe(new Counter((n) => ticker.update(off + n)));
        const res = await t.request('PATCH', loc.href, {
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(end - off + 1), 'Content-Range': `${off}-${end}` },
          body, scopes: [scope], signal: opts.signal,
        });
        if (res.status !== 202) throw new Unavailable(`chunk upload of ${desc.digest} to ${repo} failed: ${await errorText(res)}`);
        res.body.resume();
        loc = uploadUrl(res, base);
      }
      loc.searchParams.set('digest', desc.digest);
      const res = await t.request('PUT', loc.href, { headers: { 'Content-Length': '0' }, body: Buffer.alloc(0), scopes: [scope], signal: opts.signal });
      if (res.status !== 201) throw new Unavailable(`upload of ${desc.digest} to ${repo} failed: ${await errorText(res)}`);
      res.body.resume();
    }
    say('Pushed');
  };

  // Progress ids are the short diff IDs, as dockerd shows them on push.
  const ids = layers.map((l, i) => shortDigest(img.layers[i]?.diffId ?? l.digest));
  for (const id of ids) layerStatus(opts.progress, id, 'Preparing');
  let active = 0;
  const queue: (() => void)[] = [];
  const results = await Promise.allSettled(layers.map(async (l, i) => {
    if (active >= UPLOADS) {
      layerStatus(opts.progress, ids[i]!, 'Waiting');
      await new Promise<void>((res) => queue.push(res));
    }
    active++;
    try {
      await pushBlob(l, ids[i]!);
    } finally {
      active--;
      queue.shift()?.();
    }
  }));
  const failed = results.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (failed) throw failed.reason;
  await pushBlob(manifest.config, null);

  const res = await t.request('PUT', `/v2/${r.path}/manifests/${tag}`, {
    headers: { 'Content-Type': mediaType }, body: manifestBytes, scopes: [scope], signal: opts.signal,
  });
  if (res.status !== 201) throw new Unavailable(`manifest upload to ${repo} failed: ${await errorText(res)}`);
  res.body.resume();
  const digest = sha256Digest(manifestBytes);
  const said = res.headers['docker-content-digest'];
  if (typeof said === 'string' && said !== digest) throw new Unavailable(`registry computed manifest digest ${said}, expected ${digest}`);
  images.add(img.id, { repoDigest: `${repo}@${digest}` });
  for (const l of [...layers, manifest.config]) {
    let s = deps.sources.get(l.digest);
    if (!s) deps.sources.set(l.digest, (s = new Set()));
    s.add(repo);
  }
  const size = manifestBytes.length;
  // Two messages, as dockerd sends them: the line the CLI prints, then the aux record (PushResult).
  message(opts.progress, `${tag}: digest: ${digest} size: ${size}`);
  opts.progress({ progressDetail: {}, aux: { Tag: tag, Digest: digest, Size: size } });
  return { digest, size };
}
