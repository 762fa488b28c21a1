/**
 * `docker image prune`: remove images no container uses, dangling ones only unless `all`, those that
 * pass `keep` (until/label filters) left alone. Children go before their parents; an image that
 * cannot go (a child image still needs it) is skipped. SpaceReclaimed counts the layers really removed.
 */
import { Conflict } from '../errors.js';
import type { ContainerUse, DeleteItem, ImageStore } from './store.js';

export interface PruneResult { ImagesDeleted: DeleteItem[] | null; SpaceReclaimed: number }

export async function pruneImages(store: ImageStore, usedBy: (imageId: string) => ContainerUse[],
  opts: { all: boolean; match: (img: ReturnType<ImageStore['list']>[number]) => boolean }): Promise<PruneResult> {
  const deleted: DeleteItem[] = [];
  const layerSize = new Map<string, number>();
  let space = 0;
  for (let progress = true; progress;) {
    progress = false;
    for (const img of store.list()) {
      if (!opts.all && img.repoTags.length) continue;
      if (usedBy(img.id).length || !opts.match(img)) continue;
      for (const l of img.layers) layerSize.set(l.chainId, l.size);
      let items: DeleteItem[];
      try {
        items = await store.remove(img.id, { force: true, noprune: false }, usedBy);
      } catch (err) {
        if (err instanceof Conflict) continue;
        throw err;
      }
      progress = true;
      for (const it of items) {
        deleted.push(it);
        if ('Deleted' in it) space += layerSize.get(it.Deleted) ?? 0;
      }
    }
  }
  return { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: space };
}
