/**
 * archive/: layer tars in and out of directories.
 *
 * - applyLayer(tar, dir): unpack an OCI/Docker layer (plain or gzip) into dir,
 *   turning `.wh.` whiteouts into overlay whiteouts; returns the diffId.
 *   applyLayerOffThread: the same on a worker thread; whiteouts 'delete' removes instead.
 * - applyToMounts(tar, mounts): the applier — onto a snapshot's mounts (overlay: its upperdir).
 * - diffLayer(upperDir): the reverse, from an overlay upper dir.
 *   packWith(job, into): a packer's tar, each entry also applied into a layer dir as it goes
 *   (commit: every file read once, for the tar and the new layer).
 * - packDir(dir): a plain tar of a tree (export, cp).
 * - safeJoin(root, p): the one place path names from outside meet the filesystem.
 *
 * All are streaming; nothing holds a whole file in memory.
 */
export { applyLayer, type ApplyResult, type WhiteoutMode } from './apply.js';
export { packChanges, packChangeList, packWith, type ApplyTarget, type ChangeItem, type Packed, type Packer } from './pack.js';
export { applyToMounts, fillMounts, fillOf, type LayerFill } from './mounts.js';
export { applyLayerOffThread } from './offthread.js';
export { diffLayer, packDir, packPath } from './pack.js';
export { safeJoin } from './safejoin.js';
export { extractTar, type ExtractOptions, type IdShift } from './apply.js';
export { checkTarMembers } from './scan.js';
export { climbsOut } from './safejoin.js';
