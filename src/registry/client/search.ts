/**
 * `docker search`: the v1 search API (GET /v1/search?q=&n=) of the registry a term names, or Docker
 * Hub's index when it names none. Distribution (registry:2) has no search API; its 404 becomes
 * dockerd's message. `berth registry serve` answers it over its repositories.
 */
import { DEFAULT_DOMAIN } from '../../image/index.js';
import { Unavailable } from '../../errors.js';
import { endpointsFor, errorText, readAll, Transport, type SharedState } from './http.js';
import type { AuthConfig, RegistryOptions } from './types.js';

export interface SearchResult { name: string; description: string; star_count: number; is_official: boolean; is_automated: boolean }

/** "localhost:5000/busy" → that registry and "busy"; "busybox" → Docker Hub and "busybox". */
export function splitSearchTerm(term: string): { domain: string; query: string } {
  const slash = term.indexOf('/');
  const first = slash < 0 ? '' : term.slice(0, slash);
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost')) return { domain: first, query: term.slice(slash + 1) };
  return { domain: DEFAULT_DOMAIN, query: term };
}

export async function searchRegistry(term: string, limit: number, deps: { options: RegistryOptions; state: SharedState; auth?: AuthConfig; signal?: AbortSignal }): Promise<SearchResult[]> {
  const { domain, query } = splitSearchTerm(term);
  const endpoint = domain === DEFAULT_DOMAIN
    ? { url: new URL('https://index.docker.io'), insecureTls: false, mirror: false }
    : endpointsFor(domain, deps.options).at(-1)!;
  const t = new Transport(domain, endpoint, deps.state, deps.auth);
  const res = await t.request('GET', `/v1/search?q=${encodeURIComponent(query)}&n=${limit}`, { signal: deps.signal });
  if (res.status !== 200) {
    const text = await errorText(res);
    throw new Unavailable(res.status === 404 ? 'Unexpected status code 404' : `Unexpected status code ${res.status}: ${text}`);
  }
  const body = JSON.parse((await readAll(res.body, 4 << 20)).toString('utf8')) as { results?: Partial<SearchResult>[] };
  return (body.results ?? []).map((r) => ({
    name: String(r.name ?? ''),
    description: String(r.description ?? ''),
    star_count: Number(r.star_count ?? 0),
    is_official: Boolean(r.is_official),
    is_automated: Boolean(r.is_automated),
  }));
}
