/**
 * GET /system/df: what images, containers, volumes and build cache hold on disk, in dockerd's shape.
 * A layer shared by several images is counted once in LayersSize and is each one's SharedSize, so
 * "reclaimable" never promises space a remaining image still needs.
 */
import type { ContainerService } from '../container/service.js';
import type { ImageStore } from '../image/index.js';
import { InvalidParameter } from '../errors.js';
import { listJSON } from './containers.js';
import type { Router } from './server.js';

export interface DfDeps {
  images: ImageStore;
  containers: ContainerService;
  /**
   * Docker's volume summaries with UsageData, once the volume service exists; until then the
   * answer lists none.
   */
  volumes?: () => Promise<unknown[]>;
}

const TYPES = ['container', 'image', 'volume', 'build-cache'];

export function dfRoutes(router: Router, d: DfDeps): void {
  router.get('/system/df', async (ctx) => {
    const wanted = ctx.query.getAll('type');
    for (const t of wanted) if (!TYPES.includes(t)) throw new InvalidParameter(`unknown object type: ${t}`);
    const want = (t: string): boolean => wanted.length === 0 || wanted.includes(t);
    const out: Record<string, unknown> = {};
    if (want('image')) {
      const images = d.images.list();
      const users = new Map<string, number>();
      const sizes = new Map<string, number>();
      for (const img of images) for (const l of img.layers) {
        users.set(l.chainId, (users.get(l.chainId) ?? 0) + 1);
        sizes.set(l.chainId, l.size);
      }
      out.LayersSize = [...sizes.values()].reduce((a, b) => a + b, 0);
      out.Images = images.sort((a, b) => (a.created < b.created ? 1 : -1)).map((img) => ({
        Id: img.id,
        ParentId: img.parent ?? '',
        RepoTags: img.repoTags,
        RepoDigests: img.repoDigests,
        Created: Math.floor(Date.parse(img.created) / 1000) || 0,
        Size: img.size,
        SharedSize: img.layers.filter((l) => (users.get(l.chainId) ?? 0) > 1).reduce((a, l) => a + l.size, 0),
        Labels: img.config.config?.Labels ?? {},
        Containers: d.containers.usersOf(img.id).length,
      }));
    }
    if (want('container')) {
      out.Containers = await Promise.all(d.containers.list().map(async (c) => listJSON(d.containers, c, await d.containers.sizeRw(c))));
    }
    if (want('volume')) out.Volumes = d.volumes ? await d.volumes() : [];
    if (want('build-cache')) out.BuildCache = [];
    return out;
  });
}
