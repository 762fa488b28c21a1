/**
 * The differ: the changes of an active snapshot over its parent, as an OCI layer tar (whiteouts as
 * `.wh.` entries). commit, build, `diff`, `export` of changes all read a container's layer through
 * this one function, so they work on every driver. An overlay (kernel or FUSE) has the changes in its
 * upper dir; other drivers' snapshots are compared with a read-only view of their parent (the walking
 * differ in changes.ts), both mounted for as long as the tar is being read.
 */
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { diffLayer, packChanges } from '../archive/index.js';
import { NotFound } from '../errors.js';
import { walkChanges } from './changes.js';
import type { Snapshotter } from './index.js';
import { mountTemp, upperDirOf } from './mount.js';

/** Keys of the views the differ makes; a crash can leave one, which removeExtracts() drops. */
export const DIFF_VIEW_PREFIX = 'diff-view-';

export function snapshotDiff(s: Snapshotter, key: string): Readable {
  const mounts = s.mounts(key);
  const upper = upperDirOf(mounts);
  if (upper) return diffLayer(upper);
  const info = s.stat(key);
  if (!info) throw new NotFound(`snapshot ${key} does not exist`);
  async function* gen(): AsyncGenerator<Buffer> {
    const viewKey = `${DIFF_VIEW_PREFIX}${crypto.randomBytes(12).toString('hex')}`;
    const lowerMounts = await s.view(viewKey, info!.parent);
    try {
      const lower = mountTemp(lowerMounts);
      try {
        const top = mountTemp(mounts);
        try {
          for await (const chunk of packChanges(top.dir, walkChanges(lower.dir, top.dir, s.baseline?.(key) ?? null))) yield chunk as Buffer;
        } finally {
          top.release();
        }
      } finally {
        lower.release();
      }
    } finally {
      await s.remove(viewKey);
    }
  }
  return Readable.from(gen(), { objectMode: false });
}
