/** POST /commit: a container's changes become a new image (docker commit). */
import { InvalidParameter } from '../errors.js';
import type { ContentStore } from '../content/index.js';
import type { ContainerService } from '../container/service.js';
import { type CommittedContainerConfig, type ImageStore, commitConfig, createChildImage, familiarString, parseReference } from '../image/index.js';
import type { Snapshotter } from '../storage/index.js';
import type { EventBus } from '../events/index.js';
import type { Router } from './server.js';
import { sendJSON } from './server.js';

export interface CommitDeps {
  images: ImageStore;
  content: ContentStore;
  storage: Snapshotter;
  containers: ContainerService;
  events: EventBus;
}

/** The `pause` query parameter defaults to true, as in dockerd. */
function pauseParam(q: URLSearchParams): boolean {
  const v = q.get('pause');
  return v === null || v === '' || !(v === '0' || v.toLowerCase() === 'false');
}

export function commitRoutes(router: Router, d: CommitDeps): void {
  router.post('/commit', async (ctx) => {
    const q = ctx.query;
    const name = q.get('container');
    if (!name) throw new InvalidParameter('container is required');
    const repo = q.get('repo') ?? '';
    const tag = q.get('tag') ?? '';
    if (!repo && tag) throw new InvalidParameter('tag cannot be set without a repository');
    let ref: string | undefined;
    if (repo) {
      ref = tag ? `${repo}:${tag}` : repo;
      if (parseReference(ref).digest !== undefined) throw new InvalidParameter('refusing to create a tag with a digest reference');
    }
    const changes = q.getAll('changes').flatMap((c) => c.split('\n')).filter((c) => c.trim() !== '');
    // The body is an optional container config whose fields override the container's.
    const body = (await ctx.json<CommittedContainerConfig | null>()) ?? {};
    const comment = q.get('comment') ?? '';
    const author = q.get('author') ?? '';
    const { image, container } = await d.containers.frozen(name, pauseParam(q), async (c) => {
      const base = d.containers.image(c);
      const cfg = commitConfig(base?.config.config ?? {}, { ...(c.config as CommittedContainerConfig), ...body }, changes);
      const image = await createChildImage(d.images, d.content, d.storage, {
        base,
        layer: d.containers.changes(c),
        config: cfg,
        createdBy: (c.config.Cmd ?? []).join(' '),
        comment,
        author,
        tags: ref ? [ref] : [],
        events: d.events,
      });
      return { image, container: c };
    });
    d.containers.publish('commit', container, { comment, imageID: image.id, imageRef: ref ? familiarString(parseReference(ref)) : '' });
    sendJSON(ctx.res, 201, { Id: image.id });
  });
}
