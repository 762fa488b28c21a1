/**
 * Leases: what an operation in progress (pull, import, later load and build) has made or relies on and
 * that garbage collection must not take yet — blobs by digest, snapshots by name. The image store's
 * collect() is the one GC path: it removes a layer or blob only when no image uses it and no lease
 * holds it. Leases live in memory: a crash loses them, and what they held stays on disk, to be reused
 * by the next pull ("Already exists") or collected by a later rmi.
 */
import crypto from 'node:crypto';

export interface Lease {
  readonly id: string;
  /** Hold a blob (a digest) until release. */
  blob(digest: string): void;
  /** Hold a snapshot (a chain ID or key) until release. */
  snapshot(name: string): void;
  readonly blobs: ReadonlySet<string>;
  readonly snapshots: ReadonlySet<string>;
  /** Let go of everything held; idempotent. */
  release(): void;
}

export class Leases {
  private readonly live = new Map<string, Lease>();

  create(): Lease {
    const id = crypto.randomBytes(8).toString('hex');
    const blobs = new Set<string>();
    const snapshots = new Set<string>();
    const lease: Lease = {
      id,
      blobs,
      snapshots,
      blob: (d) => { blobs.add(d); },
      snapshot: (n) => { snapshots.add(n); },
      release: () => { this.live.delete(id); },
    };
    this.live.set(id, lease);
    return lease;
  }

  holdsBlob(digest: string): boolean {
    for (const l of this.live.values()) if (l.blobs.has(digest)) return true;
    return false;
  }

  holdsSnapshot(name: string): boolean {
    for (const l of this.live.values()) if (l.snapshots.has(name)) return true;
    return false;
  }
}
