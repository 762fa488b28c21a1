/**
 * Docker's init layer, on any driver: the container's rw snapshot `key` sits on a committed
 * `${key}-init` layer (hostname, resolv.conf, /dev and /proc mount points, filled by the caller)
 * on top of the image's top layer.
 */
import { NotFound } from '../errors.js';
import type { Snapshotter } from './index.js';
import { upperDirOf, withMounts, type Mount } from './mount.js';

const initName = (key: string): string => `${key}-init`;

/**
 * prepare(init on parent) → fill → commit(init) → prepare(key on init). Nothing stays if a step fails.
 * On an overlay, fill gets the init layer's own empty upper dir, as Docker's init layer is filled: no mount,
 * and no image symlink (an absolute /etc, say) under its paths. Other drivers' mounts are mounted and fill
 * gets the merged tree; a fill for those must not follow the image's symlinks.
 */
export async function prepareOnBase(s: Snapshotter, key: string, parent: string | null, fill: (dir: string) => Promise<void>): Promise<Mount[]> {
  const init = initName(key);
  let committed = false;
  try {
    const mounts = await s.prepare(init, parent);
    const upper = upperDirOf(mounts);
    if (upper) await fill(upper);
    else await withMounts(mounts, fill);
    await s.commit(init, init);
    committed = true;
    return await s.prepare(key, init);
  } catch (err) {
    // A stale `${key}-init` from before is removed too: key is new, so nothing else can use it.
    if (committed || s.stat(init)) await s.remove(init).catch(() => {});
    throw err;
  }
}

/** Remove snapshot key and its init layer; either being gone already is fine (rm after a half-done create). */
export async function removeOnBase(s: Snapshotter, key: string): Promise<void> {
  for (const name of [key, initName(key)]) {
    try {
      await s.remove(name);
    } catch (err) {
      if (!(err instanceof NotFound)) throw err;
    }
  }
}
