/**
 * The applier: a layer tar onto a snapshot's mounts. An overlay mount is written straight into its
 * upperdir with overlay whiteouts, without mounting anything (the fast path; containerd does the same).
 * Any other mount is mounted on a private dir, and the tar applied with real deletions, since there the
 * tree is the whole filesystem. Both unpack on a worker thread.
 */
import type { Readable } from 'node:stream';
import { upperDirOf, withMounts, type Mount } from '../storage/mount.js';
import type { ApplyResult } from './apply.js';
import { applyLayerOffThread } from './offthread.js';

export function applyToMounts(tar: Readable, mounts: Mount[]): Promise<ApplyResult> {
  const upper = upperDirOf(mounts);
  if (upper) return applyLayerOffThread(tar, upper, 'overlay');
  return withMounts(mounts, (dir) => applyLayerOffThread(tar, dir, 'delete'));
}
