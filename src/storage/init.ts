/**
 * Docker's init layer, on any driver: the container's rw snapshot `key` sits on a committed
 * `${key}-init` layer (hostname, resolv.conf, /dev and /proc mount points, filled by the caller)
 * on top of the image's top layer.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { applyLayer as applyTar, packDir } from '../archive/index.js';
import { NotFound } from '../errors.js';
import type { PrepareOptions, Snapshotter } from './index.js';
import { upperDirOf, withMounts, type Mount } from './mount.js';

const initName = (key: string): string => `${key}-init`;

/**
 * prepare(init on parent) → fill → commit(init) → prepare(key on init). Nothing stays if a step fails.
 * fill always gets an empty dir, so no image symlink (an absolute /etc, say) can lead its writes out: on an
 * overlay the init layer's own upper dir, as Docker's init layer is filled; on other drivers a scratch dir,
 * whose tar is then applied onto the init snapshot like any layer (safeJoin keeps it inside).
 */
export async function prepareOnBase(
  s: Snapshotter, key: string, parent: string | null, fill: (dir: string) => Promise<void>, opts: PrepareOptions = {},
): Promise<Mount[]> {
  const init = initName(key);
  let committed = false;
  try {
    const mounts = await s.prepare(init, parent);
    const upper = upperDirOf(mounts);
    if (upper) await fill(upper);
    else await fillThroughTar(mounts, fill);
    await s.commit(init, init);
    committed = true;
    return await s.prepare(key, init, opts);
  } catch (err) {
    // A stale `${key}-init` from before is removed too: key is new, so nothing else can use it.
    if (committed || s.stat(init)) await s.remove(init).catch(() => {});
    throw err;
  }
}

async function fillThroughTar(mounts: Mount[], fill: (dir: string) => Promise<void>): Promise<void> {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-init-'));
  try {
    await fill(scratch);
    // A handful of entries: applied here, without the worker thread a layer gets (its start-up alone cost more).
    await withMounts(mounts, (dir) => applyTar(packDir(scratch), dir, 'delete'));
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
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
