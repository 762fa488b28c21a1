/**
 * A new image on top of another: a layer of changes (a container's or a build step's snapshot, read
 * through storage's snapshotChanges) plus a container config and one history entry. `docker commit`
 * and every build step end here.
 *
 * The layer goes through ingest.ts (ingestDiff: blob and snapshot from the same bytes, in one pass), then
 * the config and manifest blobs are written and store.add() records the image — the single commit point.
 * A lease holds everything meanwhile; on failure it is released and what was made is collected.
 * A step without a layer (ENV, LABEL… in a build) adds only a history entry marked empty_layer.
 */
import type { ContentStore, Lease } from '../content/index.js';
import type { LayerDiff, LayerTarget } from '../storage/index.js';
import { log } from '../log.js';
import type { EventBus } from '../events/index.js';
import { applyChanges } from './changes.js';
import { imageAttributes } from './events.js';
import { ingestDiff } from './ingest.js';
import { MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_LAYER, MEDIA_TYPE_OCI_MANIFEST, parsePlatform } from './import.js';
import { familiarString, parseReference } from './reference.js';
import type { ContainerConfig, HistoryEntry, Image, ImageConfig, ImageStore } from './store.js';

export interface ChildImageOptions {
  /** The image below; null for FROM scratch. */
  base: Image | null;
  /** The changes (storage's snapshotChanges), or null for a config-only step. */
  layer: LayerDiff | null;
  config: ContainerConfig;
  createdBy?: string;
  comment?: string;
  author?: string;
  /** References to point at the new image. */
  tags?: string[];
  /** Held by the caller across several images (a build); else one is made for this image alone. */
  lease?: Lease;
  events?: EventBus;
}

/** The diff ID of a tar with no entries (1024 zero bytes). */
export const EMPTY_LAYER_DIFF_ID = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef';

interface Descriptor { mediaType: string; digest: string; size: number }

/** The base image's layer descriptors, from its manifest (empty when it has none). */
async function baseLayers(content: ContentStore, base: Image | null): Promise<Descriptor[]> {
  if (!base?.manifestDigest) return [];
  try {
    const m = JSON.parse((await content.read(base.manifestDigest)).toString('utf8')) as { layers?: Descriptor[] };
    return Array.isArray(m.layers) ? m.layers : [];
  } catch (err) {
    log.warn('commit: cannot read the base image manifest', { image: base.id, err: String(err) });
    return [];
  }
}

export async function createChildImage(store: ImageStore, content: ContentStore, storage: LayerTarget, opts: ChildImageOptions): Promise<Image> {
  const own = opts.lease === undefined;
  const lease = opts.lease ?? content.leases.create();
  const layers: string[] = [];
  const { base } = opts;
  try {
    const parentTop = base?.layers.length ? base.layers[base.layers.length - 1]!.chainId : null;
    const descriptors = await baseLayers(content, base);
    const diffIds = [...(base?.config.rootfs.diff_ids ?? [])];
    let emptyLayer = true;
    const dropped: string[] = [];
    if (opts.layer) {
      const ingested = await ingestDiff(content, storage, opts.layer, { parent: Promise.resolve(parentTop), lease });
      if (ingested.diffId === EMPTY_LAYER_DIFF_ID) {
        // No change at all: like dockerd, no layer, only a history entry marked empty_layer.
        await ingested.discard();
        dropped.push(ingested.blob.digest);
      } else {
        const layer = await ingested.commit(parentTop);
        layers.push(layer.name);
        diffIds.push(ingested.diffId);
        descriptors.push({ mediaType: MEDIA_TYPE_OCI_LAYER, digest: ingested.blob.digest, size: ingested.blob.size });
        emptyLayer = false;
      }
    }
    const created = new Date().toISOString();
    const entry: HistoryEntry = { created };
    if (opts.author) entry.author = opts.author;
    if (opts.createdBy !== undefined) entry.created_by = opts.createdBy;
    if (opts.comment) entry.comment = opts.comment;
    if (emptyLayer) entry.empty_layer = true;
    const platform = base ? { os: base.config.os, architecture: base.config.architecture, ...(base.config.variant ? { variant: base.config.variant } : {}) } : parsePlatform(undefined);
    const config: ImageConfig = {
      created,
      ...(opts.author ? { author: opts.author } : {}),
      ...platform,
      config: opts.config,
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: [...(base?.config.history ?? []), entry],
    };
    const configBlob = await content.put(JSON.stringify(config));
    lease.blob(configBlob.digest);
    const manifest = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      config: { mediaType: MEDIA_TYPE_OCI_CONFIG, digest: configBlob.digest, size: configBlob.size },
      layers: descriptors,
    };
    const manifestBlob = await content.put(JSON.stringify(manifest));
    lease.blob(manifestBlob.digest);
    const image = store.add(configBlob.digest, { tags: opts.tags ?? [], manifestDigest: manifestBlob.digest, parent: base?.id });
    if (own) lease.release();
    if (dropped.length) await store.collect({ blobs: dropped });
    for (const t of opts.tags ?? []) opts.events?.publish('image', 'tag', image.id, imageAttributes(image, familiarString(parseReference(t))));
    return image;
  } catch (err) {
    if (own) {
      const held = [...lease.blobs];
      lease.release();
      await store.collect({ layers, blobs: held });
    }
    throw err;
  }
}

/** What `docker commit` reads of a container's Config (Docker's field names). */
export interface CommittedContainerConfig {
  Hostname?: string; Domainname?: string; User?: string; Env?: string[] | null; Cmd?: string[] | null; Entrypoint?: string[] | null;
  WorkingDir?: string; Labels?: Record<string, string> | null; ExposedPorts?: Record<string, object>; Volumes?: Record<string, object> | null;
  StopSignal?: string; Healthcheck?: unknown; OnBuild?: string[] | null; Shell?: string[];
}

/**
 * The new image's config, as dockerd makes it: the container's config (what it ran with) over the
 * image's, then the `--change` lines on top.
 */
export function commitConfig(image: ContainerConfig, c: CommittedContainerConfig, changes: string[]): ContainerConfig {
  const out: ContainerConfig = { ...image };
  if (c.User !== undefined) out.User = c.User;
  if (c.Env !== undefined) out.Env = c.Env;
  if (c.Cmd !== undefined) out.Cmd = c.Cmd;
  if (c.Entrypoint !== undefined) out.Entrypoint = c.Entrypoint;
  if (c.WorkingDir !== undefined) out.WorkingDir = c.WorkingDir;
  if (c.Labels !== undefined) out.Labels = c.Labels && Object.keys(c.Labels).length ? c.Labels : null;
  if (c.ExposedPorts !== undefined) out.ExposedPorts = c.ExposedPorts as ContainerConfig['ExposedPorts'];
  if (c.Volumes !== undefined) out.Volumes = c.Volumes as ContainerConfig['Volumes'];
  if (c.StopSignal !== undefined) out.StopSignal = c.StopSignal;
  if (c.Healthcheck !== undefined) out.Healthcheck = c.Healthcheck as ContainerConfig['Healthcheck'];
  for (const k of Object.keys(out) as (keyof ContainerConfig)[]) if (out[k] === undefined) delete out[k];
  return applyChanges(out, changes);
}
