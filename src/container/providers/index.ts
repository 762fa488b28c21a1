/**
 * The start seam. A provider prepares one part of a container's world before its process starts
 * and undoes it after: the rootfs mount, the network and the /etc files that go with it, /dev/shm,
 * and later volumes and binds. At start the providers' setup() runs in order and their
 * contributions (mounts, network namespace, env) go into the OCI spec; a failing setup rolls back
 * the ones before it. created() runs once `runtime create` has made the container's namespaces
 * and before its process is let go (`runtime start`): for what can only be done to those namespaces
 * (a network namespace the runtime made inside the container's user namespace). teardown() runs
 * in reverse on exit, remove, a failed start and start-up recovery; it must be idempotent and need
 * nothing but the container record (the daemon may have restarted since setup).
 */
import { log } from '../../log.js';
import { errorMessage } from '../../errors.js';
import type { OciMount, SpecOptions } from '../../runtime/index.js';
import type { Container } from '../types.js';

export interface StartContext {
  container: Container;
  /** <data-root>/containers/<id>: the container's own files (log, /etc files, rootfs mount point). */
  dir: string;
  rootfs: string;
}

export interface Contributions {
  mounts?: OciMount[];
  network?: SpecOptions['network'];
  env?: string[];
}

export interface Provider {
  readonly name: string;
  setup(ctx: StartContext): Promise<Contributions | void>;
  /** After `runtime create`, before `runtime start`; pid is the container's process, not yet running its command. */
  created?(ctx: StartContext, pid: number): Promise<void>;
  teardown(ctx: StartContext): Promise<void>;
}

/** Runs every setup in order; on a failure, tears down those that ran (in reverse) and rethrows. */
export async function setupAll(providers: readonly Provider[], ctx: StartContext): Promise<Required<Contributions>> {
  const out: Required<Contributions> = { mounts: [], network: { mode: 'none' }, env: [] };
  const done: Provider[] = [];
  try {
    for (const p of providers) {
      const c = await p.setup(ctx);
      done.push(p);
      if (!c) continue;
      if (c.mounts) out.mounts.push(...c.mounts);
      if (c.network) out.network = c.network;
      if (c.env) out.env.push(...c.env);
    }
  } catch (err) {
    await teardownAll(done, ctx);
    throw err;
  }
  return out;
}

/** Every created() hook, in order; a failure fails the start (whose rollback tears every provider down). */
export async function createdAll(providers: readonly Provider[], ctx: StartContext, pid: number): Promise<void> {
  for (const p of providers) await p.created?.(ctx, pid);
}

/** Every teardown, in reverse order; one failing does not stop the others. */
export async function teardownAll(providers: readonly Provider[], ctx: StartContext): Promise<void> {
  for (const p of [...providers].reverse()) {
    try {
      await p.teardown(ctx);
    } catch (err) {
      log.warn('teardown failed', { id: ctx.container.id, provider: p.name, error: errorMessage(err) });
    }
  }
}
