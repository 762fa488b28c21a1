/** Public surface of image/: references, the image store and `docker import`. */
export * from './reference.js';
export * from './store.js';
export { applyChanges } from './changes.js';
export { importImage, parsePlatform, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_LAYER, MEDIA_TYPE_OCI_MANIFEST, type ImportOptions } from './import.js';
export { publishImageEvents, imageAttributes } from './events.js';
export { createChildImage, commitConfig, type ChildImageOptions, type CommittedContainerConfig } from './commit.js';
export { pruneImages, type PruneResult } from './prune.js';
