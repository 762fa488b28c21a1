/**
 * The differ: the changes of an active snapshot over its parent, as an OCI layer tar (whiteouts as
 * `.wh.` entries). commit, build, `diff`, `export` of changes all read a container's layer through
 * this one place, so they work on every driver. An overlay (kernel or FUSE) has the changes in its
 * upper dir; other drivers' snapshots are compared with a read-only view of their parent (the walking
 * differ in changes.ts), both mounted for as long as the tar is being read.
 *
 * A commit wants the changes twice, as the layer's tar (hashed and stored) and as the new layer's
 * files: pack(into) does both in one pass, each entry applied into the new layer with the bytes that
 * went into the tar, so the layer is the tar's even while the container keeps writing (a copy, never a
 * hard link into the container's files, which it may change afterwards).
 */
import crypto from 'node:crypto';
import type { Readable } from 'node:stream';
import { packChangeList, packWith, type ApplyTarget, type IdShift, type Packed, type Packer } from '../archive/index.js';
import { NotFound } from '../errors.js';
import { walkChanges } from './changes.js';
import type { Snapshotter } from './index.js';
import { mountTemp, upperDirOf } from './mount.js';

/** Keys of the views the differ makes; a crash can leave one, which removeExtracts() drops. */
export const DIFF_VIEW_PREFIX = 'diff-view-';

/** A snapshot's changes, to read once: as a tar, or packed and applied into a new layer's dir at once. */
export interface LayerDiff {
  tar(): Readable;
  pack(into: ApplyTarget): Packed;
}

/** ids: the owners as the layer should name them (a remapped container's host ids back to its own). */
export function snapshotChanges(s: Snapshotter, key: string, ids?: IdShift): LayerDiff {
  const mounts = s.mounts(key);
  const upper = upperDirOf(mounts);
  let job: (p: Packer) => Promise<void>;
  if (upper) job = (p) => p.tree(upper, '', true);
  else {
    const info = s.stat(key);
    if (!info) throw new NotFound(`snapshot ${key} does not exist`);
    job = async (p) => {
      const viewKey = `${DIFF_VIEW_PREFIX}${crypto.randomBytes(12).toString('hex')}`;
      const lowerMounts = await s.view(viewKey, info.parent);
      try {
        const lower = mountTemp(lowerMounts);
        try {
          const top = mountTemp(mounts);
          try {
            await packChangeList(p, top.dir, walkChanges(lower.dir, top.dir, s.baseline?.(key) ?? null));
          } finally {
            top.release();
          }
        } finally {
          lower.release();
        }
      } finally {
        await s.remove(viewKey);
      }
    };
  }
  return { tar: () => packWith(job, undefined, ids).tar, pack: (into) => packWith(job, into, ids) };
}

export function snapshotDiff(s: Snapshotter, key: string): Readable {
  return snapshotChanges(s, key).tar();
}
