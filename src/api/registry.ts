/** Pull, push, login and search: Docker's JSON-lines progress over a streaming response for the first two. */
import type http from 'node:http';
import { InvalidParameter, errorMessage } from '../errors.js';
import type { AuthConfig, JSONMessage, RegistryClient, SearchResult } from '../registry/client/index.js';
import { parseFilters } from './filters.js';
import type { Context } from './server.js';
import { sendError } from './server.js';

/** X-Registry-Auth: base64url (or base64) JSON of Docker's AuthConfig; empty or "{}" means anonymous. */
export function registryAuth(req: http.IncomingMessage): AuthConfig | undefined {
  const header = req.headers['x-registry-auth'];
  if (typeof header !== 'string' || header === '') return undefined;
  try {
    const json = Buffer.from(header.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8');
    const auth = JSON.parse(json) as AuthConfig;
    return Object.keys(auth).length ? auth : undefined;
  } catch {
    throw new InvalidParameter('invalid X-Registry-Auth header: not base64-encoded JSON');
  }
}

/**
 * Runs a registry operation that reports progress. Headers go out with the first
 * message, so an error before any progress (bad name, unknown repository) still
 * gets its proper status code; later errors become an errorDetail message, as in dockerd.
 */
export async function streamProgress(ctx: Context, op: (progress: (m: JSONMessage) => void, signal: AbortSignal) => Promise<unknown>): Promise<void> {
  const abort = new AbortController();
  ctx.res.on('close', () => {
    if (!ctx.res.writableFinished) abort.abort();
  });
  const progress = (m: JSONMessage) => {
    if (!ctx.res.headersSent) ctx.res.writeHead(200, { 'Content-Type': 'application/json' });
    if (!ctx.res.destroyed) ctx.res.write(JSON.stringify(m) + '\r\n');
  };
  try {
    await op(progress, abort.signal);
  } catch (err) {
    if (!ctx.res.headersSent) {
      sendError(ctx.res, err);
      return;
    }
    progress({ errorDetail: { message: errorMessage(err) }, error: errorMessage(err) });
  }
  if (!ctx.res.headersSent) ctx.res.writeHead(200, { 'Content-Type': 'application/json' });
  ctx.res.end();
}

export function pullRef(fromImage: string, tag: string | null): string {
  if (!tag) return fromImage;
  return tag.includes(':') ? `${fromImage}@${tag}` : `${fromImage}:${tag}`;
}

export function pull(ctx: Context, registry: RegistryClient): Promise<void> {
  const ref = pullRef(ctx.query.get('fromImage') ?? '', ctx.query.get('tag'));
  const auth = registryAuth(ctx.req);
  const platform = ctx.query.get('platform') || undefined;
  return streamProgress(ctx, (progress, signal) => registry.pull(ref, { platform, auth, progress, signal }));
}

/** Without a tag, every local tag of the repository is pushed (the docker CLI's `push --all-tags`). */
export function push(ctx: Context, registry: RegistryClient): Promise<void> {
  const tag = ctx.query.get('tag');
  const ref = pullRef(ctx.params.name, tag);
  const auth = registryAuth(ctx.req);
  return streamProgress(ctx, (progress, signal) => registry.push(ref, { auth, progress, signal, allTags: !tag }));
}

export async function login(ctx: Context, registry: RegistryClient): Promise<{ Status: string; IdentityToken?: string }> {
  return registry.login(await ctx.json<AuthConfig>());
}

/** GET /images/search: term, limit (1-100, 25 by default) and dockerd's filters is-official, is-automated, stars. */
export async function search(ctx: Context, registry: RegistryClient): Promise<SearchResult[]> {
  const q = ctx.query;
  const term = q.get('term') ?? '';
  if (!term) throw new InvalidParameter('term is required');
  const limitRaw = q.get('limit') || '25';
  const limit = Number(limitRaw);
  if (!/^-?\d+$/.test(limitRaw)) throw new InvalidParameter(`invalid limit: ${limitRaw}`);
  if (limit < 1 || limit > 100) throw new InvalidParameter(`limit ${limit} is outside the range of [1, 100]`);
  const f = parseFilters(q.get('filters'), ['is-official', 'is-automated', 'stars']);
  const flag = (key: string): boolean | undefined => {
    const v = f.get(key)?.[0];
    if (v === undefined) return undefined;
    if (!['true', 'false', '1', '0'].includes(v)) throw new InvalidParameter(`invalid filter '${key}=${v}'`);
    return v === 'true' || v === '1';
  };
  const official = flag('is-official');
  const automated = flag('is-automated');
  const starsRaw = f.get('stars')?.[0];
  if (starsRaw !== undefined && !/^\d+$/.test(starsRaw)) throw new InvalidParameter(`invalid filter 'stars=${starsRaw}'`);
  const stars = Number(starsRaw ?? 0);
  const results = await registry.search(term, limit, registryAuth(ctx.req));
  return results.filter((r) => (official === undefined || r.is_official === official) && (automated === undefined || r.is_automated === automated) && r.star_count >= stars);
}
