/**
 * The differ: the changes of an active snapshot over its parent, as an OCI layer tar (whiteouts as
 * `.wh.` entries). commit, build, `diff`, `export` of changes all read a container's layer through
 * this one function, so they work on every driver. overlay2 reads its upper dir; drivers without
 * one must compare the snapshot with a view of its parent.
 */
import type { Readable } from 'node:stream';
import { diffLayer } from '../archive/index.js';
import { InvalidParameter } from '../errors.js';
import type { Snapshotter } from './index.js';
import { upperDirOf } from './mount.js';

export function snapshotDiff(s: Snapshotter, key: string): Readable {
  const upper = upperDirOf(s.mounts(key));
  if (upper) return diffLayer(upper);
  throw new InvalidParameter(`storage driver ${s.driver} cannot diff snapshot ${key} yet`);
}
