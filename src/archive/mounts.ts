/**
 * The applier: a layer onto a snapshot's mounts. An overlay mount is written straight into its
 * upperdir with overlay whiteouts, without mounting anything (the fast path; containerd does the same).
 * Any other mount is mounted on a private dir, and the layer applied with real deletions, since there
 * the tree is the whole filesystem. A tar is unpacked on a worker thread.
 */
import type { Readable } from 'node:stream';
import { upperDirOf, withMounts, type Mount } from '../storage/mount.js';
import type { ApplyResult } from './apply.js';
import { applyLayerOffThread } from './offthread.js';
import type { ApplyTarget } from './pack.js';

/** What fills a layer dir: unpacking a tar (untar), or a packer applying a diff as it packs it. */
export type LayerFill = (into: ApplyTarget) => Promise<ApplyResult>;

/** A LayerFill as it is, or one that unpacks a tar (on a worker thread). */
export function fillOf(source: Readable | LayerFill): LayerFill {
  if (typeof source === 'function') return source;
  return (into) => applyLayerOffThread(source, into.dir, into.whiteouts);
}

export function fillMounts(mounts: Mount[], fill: LayerFill): Promise<ApplyResult> {
  const upper = upperDirOf(mounts);
  if (upper) return fill({ dir: upper, whiteouts: 'overlay' });
  return withMounts(mounts, (dir) => fill({ dir, whiteouts: 'delete' }));
}

export function applyToMounts(tar: Readable, mounts: Mount[]): Promise<ApplyResult> {
  return fillMounts(mounts, fillOf(tar));
}
