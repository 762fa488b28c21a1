/** /images routes. Pull and push answer a clear error until the registry client lands. */
import { InvalidParameter, errorMessage } from '../errors.js';
import type { ContentStore } from '../content/index.js';
import { type Image, type ImageStore, importImage, pruneImages } from '../image/index.js';
import type { EventBus } from '../events/index.js';
import type { Snapshotter } from '../storage/index.js';
import type { ContainerService } from '../container/service.js';
import type { RegistryClient } from '../registry/client/index.js';
import type { Router } from './server.js';
import { pull, push, login, search } from './registry.js';
import { parseFilters, matchLabels, untilOf } from './filters.js';

export interface ImageDeps {
  images: ImageStore;
  content: ContentStore;
  storage: Snapshotter;
  containers: ContainerService;
  registry: RegistryClient;
  storageDriver: string;
  events: EventBus;
}

function summary(img: Image, containers: ContainerService) {
  return {
    Id: img.id,
    ParentId: img.parent ?? '',
    RepoTags: img.repoTags,
    RepoDigests: img.repoDigests,
    Created: Math.floor(Date.parse(img.created) / 1000),
    Size: img.size,
    SharedSize: -1,
    Labels: img.config.config?.Labels ?? {},
    Containers: containers.usersOf(img.id).length,
  };
}

export function inspectImage(img: Image, driver: string) {
  const cfg = img.config;
  return {
    Id: img.id,
    RepoTags: img.repoTags,
    RepoDigests: img.repoDigests,
    Parent: img.parent ?? '',
    Comment: cfg.history?.[cfg.history.length - 1]?.comment ?? '',
    Created: img.created,
    DockerVersion: '',
    Author: cfg.author ?? '',
    Config: cfg.config ?? {},
    Architecture: cfg.architecture,
    Variant: cfg.variant,
    Os: cfg.os,
    Size: img.size,
    GraphDriver: { Name: driver, Data: null },
    RootFS: { Type: 'layers', Layers: cfg.rootfs.diff_ids },
    Metadata: { LastTagTime: '0001-01-01T00:00:00Z' },
  };
}

export function imageRoutes(router: Router, d: ImageDeps): void {
  router.get('/images/json', (ctx) => {
    const filters = parseFilters(ctx.query.get('filters'), ['dangling', 'label', 'reference', 'before', 'since']);
    const all = ctx.query.get('all') === '1' || ctx.query.get('all') === 'true';
    let list = d.images.list();
    // Without all: no intermediate images (untagged parents of other images, as builds leave them).
    if (!all) {
      const parents = new Set(list.map((i) => i.parent).filter(Boolean));
      list = list.filter((i) => i.repoTags.length > 0 || !parents.has(i.id));
    }
    const dangling = filters.get('dangling')?.[0];
    if (dangling !== undefined) list = list.filter((i) => (i.repoTags.length === 0) === (dangling === 'true' || dangling === '1'));
    const refs = filters.get('reference');
    if (refs) list = list.filter((i) => i.repoTags.some((t) => refs.some((r) => globMatch(hasTag(r) ? r : `${r}:*`, t))));
    list = list.filter((i) => matchLabels(i.config.config?.Labels ?? undefined, filters.get('label') ?? []));
    const rows = list.sort((a, b) => (a.created < b.created ? 1 : -1)).map((i) => summary(i, d.containers));
    // As dockerd: with a reference filter an image lists only its tags (and digests) that match.
    if (refs) for (const r of rows) { r.RepoTags = r.RepoTags.filter((t) => refMatches(refs, t)); r.RepoDigests = r.RepoDigests.filter((t) => refMatches(refs, t)); }
    return rows;
  });

  router.post('/images/create', async (ctx) => {
    const q = ctx.query;
    const fromSrc = q.get('fromSrc');
    if (fromSrc === null) {
      if (!q.get('fromImage')) throw new InvalidParameter('either fromSrc or fromImage must be set');
      return pull(ctx, d.registry);
    }
    if (fromSrc !== '-') throw new InvalidParameter('importing from a URL is not supported; send the tar as the request body (fromSrc=-)');
    const repo = q.get('repo');
    const tag = q.get('tag');
    const ref = repo ? (tag ? `${repo}:${tag}` : repo) : undefined;
    ctx.res.writeHead(200, { 'Content-Type': 'application/json' });
    try {
      const img = await importImage(d.images, d.content, d.storage, ctx.req, {
        ref,
        changes: q.getAll('changes').flatMap((c) => c.split('\n')).filter(Boolean),
        message: q.get('message') ?? undefined,
        platform: q.get('platform') ?? undefined,
        events: d.events,
      });
      ctx.res.end(JSON.stringify({ status: img.id }) + '\r\n');
    } catch (err) {
      ctx.res.end(JSON.stringify({ errorDetail: { message: errorMessage(err) }, error: errorMessage(err) }) + '\r\n');
    }
  });

  router.get('/images/{name:.+}/json', (ctx) => inspectImage(d.images.resolve(ctx.params.name), d.storageDriver));
  router.get('/images/{name:.+}/history', (ctx) => d.images.history(ctx.params.name));

  router.post('/images/{name:.+}/tag', (ctx) => {
    const img = d.images.resolve(ctx.params.name);
    const repo = ctx.query.get('repo');
    if (!repo) throw new InvalidParameter('repository name must have at least one component');
    const tag = ctx.query.get('tag') || 'latest';
    d.images.tag(img.id, `${repo}:${tag}`);
    ctx.res.writeHead(201);
    ctx.res.end();
  });

  router.post('/images/{name:.+}/push', (ctx) => push(ctx, d.registry));
  router.post('/auth', (ctx) => login(ctx, d.registry));
  router.get('/images/search', (ctx) => search(ctx, d.registry));

  router.delete('/images/{name:.+}', (ctx) => {
    const q = ctx.query;
    return d.images.remove(ctx.params.name, { force: q.get('force') === '1' || q.get('force') === 'true', noprune: q.get('noprune') === '1' || q.get('noprune') === 'true' }, (id) => d.containers.usersOf(id));
  });

  router.post('/images/prune', async (ctx) => {
    const filters = parseFilters(ctx.query.get('filters'), ['dangling', 'until', 'label', 'label!']);
    const dangling = filters.get('dangling')?.[0] ?? 'true';
    if (!['true', 'false', '1', '0'].includes(dangling)) throw new InvalidParameter(`invalid filter 'dangling=${dangling}'`);
    const until = untilOf(filters);
    const labels = filters.get('label') ?? [];
    const notLabels = filters.get('label!') ?? [];
    return pruneImages(d.images, (id) => d.containers.usersOf(id), {
      all: dangling === 'false' || dangling === '0',
      match: (img) => {
        const l = img.config.config?.Labels ?? undefined;
        return (Date.parse(img.created) || 0) < until && matchLabels(l, labels) && !notLabels.some((n) => matchLabels(l, [n]));
      },
    });
  });
}

/** A tag follows the last ':' after the last '/' (a registry port does not count). */
/** docker's FamiliarMatch: the pattern against the whole reference, or against its name alone. */
function refMatches(patterns: string[], ref: string): boolean {
  const at = ref.indexOf('@');
  const colon = ref.lastIndexOf(':');
  const name = at >= 0 ? ref.slice(0, at) : colon > ref.lastIndexOf('/') ? ref.slice(0, colon) : ref;
  return patterns.some((p) => globMatch(p, ref) || globMatch(p, name));
}

function hasTag(ref: string): boolean {
  return ref.slice(ref.lastIndexOf('/') + 1).includes(':');
}

function globMatch(pattern: string, s: string): boolean {
  const re = new RegExp('^' + pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*') + '$');
  return re.test(s) || re.test(s.replace(/^docker\.io\/(library\/)?/, ''));
}
