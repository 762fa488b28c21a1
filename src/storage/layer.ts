/**
 * A layer onto a snapshotter, whatever the driver: with the driver's stageLayer when it has one
 * (overlay2 unpacks before the parent is known, so every layer of a pull unpacks while it downloads),
 * else prepare on the parent → fill its mounts → commit, once the parent is committed. The layer comes
 * as a tar to unpack, or as a LayerFill (commit: a packer writing the files as it packs them).
 */
import crypto from 'node:crypto';
import type { Readable } from 'node:stream';
import { fillMounts, fillOf, type LayerFill } from '../archive/index.js';
import { Conflict, NotFound } from '../errors.js';
import { DIFF_VIEW_PREFIX } from './diff.js';
import type { Info, Snapshotter } from './index.js';

/** OCI: chainId(L0) = diffId(L0); chainId(Ln) = sha256(chainId(Ln-1) + " " + diffId(Ln)). */
export function chainIdOf(parent: string | null, diffId: string): string {
  if (parent === null) return diffId;
  return 'sha256:' + crypto.createHash('sha256').update(`${parent} ${diffId}`).digest('hex');
}

/** Keys of the active snapshots unpackLayer fills: a crash can leave one, which removeExtracts() drops. */
const EXTRACT_PREFIX = 'extract-';

/** At start-up, after recover(): drop the half-unpacked layers and the differ's views a crash left (nobody else names a key so). */
export async function removeExtracts(s: Snapshotter): Promise<void> {
  for (const i of s.walk()) {
    if (i.kind === 'active' && i.name.startsWith(EXTRACT_PREFIX)) await s.remove(i.name);
    if (i.kind === 'view' && i.name.startsWith(DIFF_VIEW_PREFIX)) await s.remove(i.name);
  }
}

/** What unpacking a layer needs of a snapshotter. */
export type LayerTarget = Pick<Snapshotter, 'stageLayer' | 'prepare' | 'commit' | 'remove' | 'stat'>;

/** A layer unpacked but not yet in the chain. */
export interface UnpackedLayer {
  diffId: string;
  size: number;
  /** The snapshot it lives in until commit (a staged dir or a prepared key); for leases. */
  key: string;
  /** Commit it as chainIdOf(parent, diffId); an existing layer of that chain ID wins and this copy goes. */
  commit(parent: string | null): Promise<Info>;
  /** Throw it away; nothing once committed. */
  discard(): Promise<void>;
}

/**
 * Unpack `source` for a layer whose parent is known once `parent` resolves. With stageLayer it is read
 * at once; without it, not before the parent is committed (the caller's stream waits, with backpressure).
 */
export async function unpackLayer(s: LayerTarget, source: Readable | LayerFill, parent: Promise<string | null>): Promise<UnpackedLayer> {
  if (s.stageLayer) {
    const staged = await s.stageLayer(source);
    return {
      diffId: staged.diffId,
      size: staged.size,
      key: `staged:${staged.diffId}`,
      commit: async (p) => staged.commit(p),
      discard: async () => staged.discard(),
    };
  }
  const base = await parent;
  const key = `${EXTRACT_PREFIX}${crypto.randomBytes(12).toString('hex')}`;
  const mounts = await s.prepare(key, base);
  let result;
  try {
    result = await fillMounts(mounts, fillOf(source));
  } catch (err) {
    await s.remove(key).catch(() => {});
    throw err;
  }
  let settled = false;
  return {
    diffId: result.diffId,
    size: result.size,
    key,
    commit: async (p) => {
      if (settled) throw new Error('unpacked layer already committed or discarded');
      settled = true;
      if (p !== base) {
        await s.remove(key).catch(() => {});
        throw new Error(`layer unpacked on ${base} cannot be committed on ${p}`);
      }
      const name = chainIdOf(p, result.diffId);
      const existing = s.stat(name);
      if (existing) {
        await s.remove(key);
        return existing;
      }
      try {
        return await s.commit(name, key);
      } catch (err) {
        // Another ingest committed the same chain ID in the meantime: theirs is as good as ours.
        if (!(err instanceof Conflict)) throw err;
        await s.remove(key);
        const won = s.stat(name);
        if (!won) throw new NotFound(`layer ${name} vanished`);
        return won;
      }
    },
    discard: async () => {
      if (settled) return;
      settled = true;
      await s.remove(key).catch(() => {});
    },
  };
}

/** Unpack a layer tar on top of committed `parent` and commit it, named by chain ID. */
export async function applyLayer(s: LayerTarget, parent: string | null, tar: Readable): Promise<Info> {
  if (parent !== null && !s.stat(parent)) throw new NotFound(`parent layer ${parent} does not exist`);
  const u = await unpackLayer(s, tar, Promise.resolve(parent));
  return u.commit(parent);
}
