/**
 * registry/client: pull, push and login against Distribution (OCI / Docker v2) registries.
 *
 * Lifecycle: the daemon makes one client at start-up (after content.recover() and storage.recover())
 * and keeps it; it holds only caches — the endpoint (https/http) each host answered on, bearer tokens
 * per (host, scope, credentials) until they expire, in-flight pulls/blobs/layers so concurrent pulls
 * share work, and which repository each blob came from (for cross-repository mounts on push). Nothing
 * of it needs to survive a restart: a pull killed halfway is simply run again and reuses what was
 * committed (blobs in content, layers in storage).
 *
 *   pull(ref)  → manifest (index → platform) → config → layers (3 downloads at a time, unpacked in order)
 *                → images.add(config, tag, manifest, repo digest)
 *   push(ref)  → layers (HEAD / mount / upload) → config → manifest bytes → repo digest on the image
 *   login(auth) → GET /v2/ and answer its challenge with the credentials
 *   search(term) → GET /v1/search of the registry the term names (search.ts)
 */
import { DEFAULT_DOMAIN, familiarName, familiarString, imageAttributes, parseNormalizedNamed, parseReference, repositoryName, type Image, type ImageStore } from '../../image/index.js';
import type { EventBus } from '../../events/index.js';
import type { ContentStore } from '../../content/index.js';
import type { Snapshotter } from '../../storage/index.js';
import { endpointsFor, Transport, type SharedState } from './http.js';
import { Puller } from './pull.js';
import { push, type PushTuning } from './push.js';
import { searchRegistry, type SearchResult } from './search.js';
import type { AuthConfig, JSONMessage, RegistryOptions } from './types.js';

export type { AuthConfig, JSONMessage, RegistryOptions } from './types.js';
export type { SearchResult } from './search.js';
export { Unauthorized } from './http.js';
export { humanSize, progressBar } from './progress.js';

export interface RegistryClient {
  /** Pull ref (tag or digest) for platform (default: the host's, linux/amd64 here) into content + storage + image store; returns the image. */
  pull(ref: string, opts: { platform?: string; auth?: AuthConfig; progress: (m: JSONMessage) => void; signal?: AbortSignal }): Promise<Image>;
  /** Push a local image under ref (its repository must be a tag of the image). */
  /** `allTags`, for a ref without a tag: every local tag of ref's repository (the API's push without a tag). */
  push(ref: string, opts: { auth?: AuthConfig; progress: (m: JSONMessage) => void; signal?: AbortSignal; allTags?: boolean }): Promise<{ digest: string; size: number }>;
  /** Check credentials against a registry (POST /auth). Returns Docker's {Status:"Login Succeeded", IdentityToken?}. */
  login(auth: AuthConfig): Promise<{ Status: string; IdentityToken?: string }>;
  /** The v1 search API of the registry the term names (GET /images/search). */
  search(term: string, limit: number, auth?: AuthConfig): Promise<SearchResult[]>;
}

/** "https://index.docker.io/v1/", "localhost:5000", "http://h:5000/" → the reference domain ("docker.io", "localhost:5000", "h:5000"). */
export function registryDomain(serveraddress: string | undefined): string {
  if (!serveraddress) return DEFAULT_DOMAIN;
  let s = serveraddress.trim().replace(/^[a-z]+:\/\//i, '');
  s = s.replace(/\/.*$/, '');
  if (['index.docker.io', 'registry-1.docker.io', 'docker.io', 'registry.hub.docker.com'].includes(s.toLowerCase())) return DEFAULT_DOMAIN;
  return s;
}

export function createRegistryClient(deps: {
  content: ContentStore;
  storage: Snapshotter;
  images: ImageStore;
  options: RegistryOptions;
  /** Upload sizes (tests use small ones to exercise chunked uploads). */
  tuning?: PushTuning;
  /** Where 'image' pull and push events go (dockerd's: id "busybox:latest", name "busybox"). */
  events?: EventBus;
}): RegistryClient {
  const state: SharedState = { bases: new Map(), tokens: new Map(), pendingTokens: new Map() };
  const puller = new Puller(deps, state);
  const published = (action: 'pull' | 'push', img: Image | null, ref: string) => {
    const r = parseReference(ref);
    deps.events?.publish('image', action, familiarString(r), imageAttributes(img, familiarName(r)));
  };
  return {
    async pull(ref, opts) {
      const img = await puller.pull(ref, opts);
      published('pull', img, ref);
      return img;
    },
    async push(ref, opts) {
      const result = await push({
        content: deps.content, images: deps.images, options: deps.options, state, sources: puller.sources, tuning: deps.tuning ?? {},
      }, ref, opts);
      const named = parseNormalizedNamed(ref);
      const pushed = opts.allTags && named.tag === undefined && named.digest === undefined
        ? deps.images.list().flatMap((i) => i.repoTags).filter((t) => repositoryName(parseReference(t)) === repositoryName(named))
        : [ref];
      for (const t of pushed) published('push', deps.images.resolve(t), t);
      return result;
    },
    async login(auth) {
      const domain = registryDomain(auth.serveraddress);
      const eps = endpointsFor(domain, deps.options);
      const t = new Transport(domain, eps[eps.length - 1]!, state, auth);
      const { identityToken } = await t.login();
      return identityToken ? { Status: 'Login Succeeded', IdentityToken: identityToken } : { Status: 'Login Succeeded' };
    },
    search: (term, limit, auth) => searchRegistry(term, limit, { options: deps.options, state, auth }),
  };
}
