/**
 * container/: containers and their lifecycle, knowing nothing of HTTP.
 *
 *   create.ts     Docker create body → record (hostconfig.ts: only what berth implements)
 *   service.ts    the verbs: start, stop, kill, restart, wait, remove, prune; exits
 *   state.ts      the state machine: what each state allows, and the transitions
 *   lock.ts       one lock per container: every verb that changes one runs alone
 *   providers/    the start seam: rootfs, network (+ /etc files), /dev/shm … set up in order at
 *                 start, torn down in reverse on exit, remove, failed start and recovery
 *   restart.ts    restart policies and their back-off
 *   recovery.ts   what a killed daemon left, adopted, finished or rolled back at start-up
 *   streams.ts    logs, attach output, stdin, resize
 *   exec.ts       exec sessions
 *
 * start   under the lock: providers' setup → OCI spec → runtime create (conmon + runc) → providers'
 *         created hooks → running, saved → exit watched → runtime start.
 * exit    under the lock, once per run: runtime state released, exited saved, `die` published,
 *         providers torn down; then AutoRemove or the restart policy. A verb that holds the lock
 *         and needs the exit (stop, kill -9, rm -f) processes it itself; the watcher then finds it
 *         done.
 * remove  under the lock: removing saved, providers torn down, snapshot and files deleted, record
 *         deleted, `destroy` published.
 * Every step that changes the record saves it before the next side effect, so recovery can finish
 * or undo whatever a killed daemon left half done.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CommandNotRunnable, InvalidParameter, NotFound, NotModified, SystemError, BerthError, errorMessage } from '../errors.js';
import { Conflict as CommitConflict } from '../errors.js';
import type { EventBus } from '../events/index.js';
import { log } from '../log.js';
import { safeJoin } from '../archive/index.js';
import { type LayerDiff, type Snapshotter, removeOnBase, snapshotChanges, withMounts } from '../storage/index.js';
import type { Image, ImageStore } from '../image/index.js';
import { type Runtime, type OciSpec, buildSpec, cgroupLimits, resolveUser } from '../runtime/index.js';
import { type CreateBody, newContainer, pickName, prepareSnapshot } from './create.js';
import type { HealthHooks } from './health.js';
import { KeyedLock } from './lock.js';
import { type Contributions, type Provider, type StartContext, createdAll, setupAll, teardownAll } from './providers/index.js';
import { type NetworkBackend, networkProvider } from './providers/network.js';
import { rootfsProvider } from './providers/rootfs.js';
import { shmProvider } from './providers/shm.js';
import { ipcProvider } from './providers/ipc.js';
import { checkRemapped, isRemapped, remapRootfsProvider, toContainer } from './userns.js';
import { VolumeMounts } from './providers/volumes.js';
import type { VolumeService } from '../volume/index.js';
import { recoverContainers } from './recovery.js';
import { RestartManager, shouldRestart } from './restart.js';
import { checkCanKill, checkCanPause, checkCanRemove, checkCanStart, checkCanUnpause, isRunning, toExited, toPaused, toRemoving, toRestarting, toRunning, toStartFailed, toStoppedRestart, toUnpaused } from './state.js';
import { type UpdateBody, applyUpdate, resources } from './update.js';
import { ContainerStore } from './store.js';
import { ContainerStreams } from './streams.js';
import { type IsolationContext, DEFAULT_INIT, extraResources, isolationOptions, withInit } from './isolation.js';
import type { Container, Health, State } from './types.js';

export interface ContainerDeps {
  store: ContainerStore;
  images: ImageStore;
  storage: Snapshotter;
  runtime: Runtime;
  events: EventBus;
  /** <data-root>/containers: one directory per container (hostname, hosts, resolv.conf, log, rootfs mount point). */
  root: string;
  cgroupParent: string;
  /** Daemon-wide isolation settings (default-ulimits, seccomp-profile, the --init binary). */
  isolation?: Partial<Omit<IsolationContext, 'find' | 'containerDir'>>;
  volumes: VolumeService;
  /** Bridge networks (src/network); without it every container but host gets loopback only. */
  network?: NetworkBackend;
}

export type { CreateBody };
export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

const DEFAULT_STOP_TIMEOUT = 10;

/** Exit code docker gives a container whose process could not be started (128: not the command's fault). */
function startFailureCode(err: unknown): number {
  return err instanceof CommandNotRunnable ? err.exitCode : 128;
}

function signalName(sig: string): string | number {
  const up = sig.toUpperCase();
  return /^\d+$/.test(sig) ? Number(sig) : up.startsWith('SIG') ? up : `SIG${up}`;
}

/** The signal's number, as dockerd's kill event reports it. */
function signalNumber(sig: string): string {
  const name = signalName(sig);
  return String(typeof name === 'number' ? name : os.constants.signals[name as NodeJS.Signals] ?? name);
}

function isKill(sig: string): boolean {
  return sig === 'SIGKILL' || sig === 'KILL' || sig === '9';
}

/** Resolves with the promise's value, or null once ms have passed. */
async function within<T>(p: Promise<T>, ms: number | undefined): Promise<T | null> {
  if (ms === undefined) return p;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((r) => (timer = setTimeout(() => r(null), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

export class ContainerService {
  readonly events: EventBus;
  readonly streams: ContainerStreams;
  private readonly store: ContainerStore;
  private readonly locks = new KeyedLock();
  /** The run whose exit is still to be processed, per container: set at start, taken by processExit. */
  private readonly runs = new Map<string, symbol>();
  /** Exit codes of containers removed recently, for `wait?condition=removed` that arrives late. */
  private readonly removedCodes = new Map<string, number>();
  private readonly restarts = new RestartManager((id) => void this.restartByPolicy(id));
  private readonly providers: readonly Provider[];
  /** Health checks (health.ts): told of every start, stop, exit and removal once set. */
  private health: HealthHooks | null = null;
  /** Volumes, binds and tmpfs: the mount table at create, the provider at start, release at remove. */
  readonly mounts: VolumeMounts;

  constructor(private readonly deps: ContainerDeps) {
    this.store = deps.store;
    this.events = deps.events;
    const remap = deps.isolation?.remap;
    this.mounts = new VolumeMounts(deps.volumes, deps.store, deps.events, remap);
    // Other drivers' containers keep their volumes: switching back finds them intact.
    deps.volumes.setUsers((name) => [...this.store.list(), ...this.store.hiddenList()].filter((c) => c.mounts?.some((m) => m.Type === 'volume' && m.Name === name)).map((c) => ({ id: c.id, running: isRunning(c.state) })));
    this.providers = [remap ? remapRootfsProvider(deps.storage, remap) : rootfsProvider(deps.storage), this.mounts.provider(), networkProvider(deps.network, (id) => this.store.find(id), (c) => isRemapped(c, remap)), shmProvider(), ipcProvider()];
    this.streams = new ContainerStreams(deps.store, deps.events, deps.runtime, (id) => this.runs.has(id));
  }

  list(): Container[] {
    return this.store.list();
  }

  get(idOrName: string): Container {
    return this.store.get(idOrName);
  }

  dir(c: Container): string {
    return path.join(this.deps.root, c.id);
  }

  rootfs(c: Container): string {
    return path.join(this.dir(c), 'rootfs');
  }

  image(c: Container): Image | null {
    return this.deps.images.get(c.imageId);
  }

  /** The container's changes as an image layer (commit, build): a remapped container's host ids back to its own. */
  changes(c: Container): LayerDiff {
    const remap = this.deps.isolation?.remap;
    return snapshotChanges(this.deps.storage, c.id, isRemapped(c, remap) ? toContainer(remap) : undefined);
  }

  /** Containers using an image, for `rmi` conflicts. */
  usersOf(imageId: string): { id: string; running: boolean }[] {
    return this.store.list().filter((c) => c.imageId === imageId).map((c) => ({ id: c.id, running: isRunning(c.state) }));
  }

  /** Size of the rw layer (SizeRw) for `ps -s` and inspect?size=1. */
  sizeRw(c: Container): Promise<number> {
    return this.deps.storage.usage(c.id).then((u) => u.size, () => 0);
  }

  private context(c: Container): StartContext {
    return { container: c, dir: this.dir(c), rootfs: this.rootfs(c) };
  }

  /** A container event on the bus, with dockerd's attributes (labels, image, name, then the action's own). */
  publish(action: string, c: Container, extra: Record<string, string> = {}): void {
    this.events.publish('container', action, c.id, { ...c.config.Labels, image: c.config.Image, name: c.name, ...extra });
  }

  /** Set before recover(), so that adopted containers get their monitors back. */
  useHealth(hooks: HealthHooks): void {
    this.health = hooks;
  }

  /** The health monitor's write: a probe's result in the record, between verbs (it runs in one go). */
  saveHealth(c: Container, health: Health): void {
    c.state = { ...c.state, Health: health };
    this.store.save(c);
  }

  private save(c: Container, state: State): void {
    c.state = state;
    this.store.save(c);
  }

  /** fn under the container's lock, for work outside this file that must not race a verb (archive.ts: cp, export, diff). */
  whileLocked<T>(idOrName: string, fn: (c: Container) => Promise<T>): Promise<T> {
    return this.locked(idOrName, fn);
  }

  /** Runs fn under the container's lock, on the record as it is once the lock is held. */
  private locked<T>(idOrName: string, fn: (c: Container) => Promise<T>): Promise<T> {
    const c = this.store.get(idOrName);
    return this.locks.run(c.id, async () => {
      const cur = this.store.find(c.id);
      if (!cur) throw new NotFound(`No such container: ${idOrName}`);
      return fn(cur);
    });
  }

  /** Runs fn under the container's lock (network connect and disconnect change a running container). */
  exclusive<T>(idOrName: string, fn: (c: Container) => Promise<T>): Promise<T> {
    return this.locked(idOrName, fn);
  }

  // ---- create ------------------------------------------------------------------------------------

  async create(body: CreateBody, requestedName: string | null): Promise<{ Id: string; Warnings: string[] }> {
    const name = pickName(this.store, requestedName);
    const c = await newContainer(body, name, this.deps.images, this.deps.root);
    if (isRemapped(c, this.deps.isolation?.remap)) checkRemapped(c);
    const image = this.deps.images.get(c.imageId)!;
    const networks = this.deps.network?.prepare(c, body.NetworkingConfig);
    const mounts = await this.mounts.prepare(c, image.config.config?.Volumes);
    try {
      await fsp.mkdir(this.rootfs(c), { recursive: true });
      await prepareSnapshot(this.deps.storage, c, image);
      await this.mounts.populate(c, (fn) => withMounts(this.deps.storage.mounts(c.id), fn));
      this.store.insert(c);
      networks?.record();
    } catch (err) {
      await removeOnBase(this.deps.storage, c.id).catch(() => {});
      await fsp.rm(this.dir(c), { recursive: true, force: true });
      await mounts.rollback();
      throw err;
    }
    mounts.done();
    this.publish('create', c);
    return { Id: c.id, Warnings: networks?.warnings ?? [] };
  }

  // ---- start -------------------------------------------------------------------------------------

  start(idOrName: string): Promise<void> {
    return this.locked(idOrName, (c) => this.startLocked(c));
  }

  private async startLocked(c: Container): Promise<void> {
    checkCanStart(c);
    this.restarts.cancel(c.id);
    c.manuallyStopped = false;
    const ctx = this.context(c);
    const { runtime } = this.deps;
    try {
      const contributions = await setupAll(this.providers, ctx);
      const spec = await this.spec(c, ctx.rootfs, contributions);
      const { pid } = await runtime.create(c.id, spec, { logPath: c.logPath, tty: c.config.Tty, stdin: c.config.OpenStdin });
      // Before the record says running: a daemon killed in between rolls the whole start back.
      await createdAll(this.providers, ctx, pid);
      this.save(c, toRunning(c.state, pid));
      this.watchExit(c.id);
      await runtime.start(c.id);
    } catch (err) {
      await this.startFailed(c, ctx, err);
      // A command that cannot run is the caller's mistake (400, as dockerd answers); other failures keep their class.
      const message = `failed to create task for container: ${errorMessage(err)}`;
      if (err instanceof CommandNotRunnable) throw new CommandNotRunnable(message, err.exitCode);
      if (err instanceof BerthError) throw err;
      throw new SystemError(message);
    }
    const [h, w] = c.hostConfig.ConsoleSize;
    if (c.config.Tty && h > 0 && w > 0) await runtime.resize(c.id, h, w).catch(() => {});
    this.health?.started(c);
    this.publish('start', c);
  }

  private async spec(c: Container, rootfs: string, contributions: Required<Contributions>): Promise<OciSpec> {
    const user = await resolveUser(rootfs, c.config.User, c.hostConfig.GroupAdd ?? []);
    const iso = isolationOptions(c, contributions.mounts, this.isolationContext());
    const cwd = c.config.WorkingDir || '/';
    await fsp.mkdir(safeJoin(rootfs, cwd), { recursive: true });
    const env = [...c.config.Env, ...contributions.env];
    if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home || '/'}`);
    return buildSpec({
      rootfs,
      args: withInit(c, [c.path, ...c.args]),
      env,
      cwd,
      user,
      hostname: c.config.Hostname,
      domainname: c.config.Domainname,
      tty: c.config.Tty,
      openStdin: c.config.OpenStdin,
      network: contributions.network,
      cgroupsPath: `${this.deps.cgroupParent}/${c.id}`,
      resources: { ...resources(c.hostConfig), ...extraResources(c.hostConfig) },
      mounts: iso.mounts,
      privileged: c.hostConfig.Privileged,
      capAdd: c.hostConfig.CapAdd ?? undefined,
      capDrop: c.hostConfig.CapDrop ?? undefined,
      readonlyRootfs: c.hostConfig.ReadonlyRootfs,
      labels: c.config.Labels,
      ...iso.spec,
    });
  }

  private isolationContext(): IsolationContext {
    const i = this.deps.isolation ?? {};
    return { find: (ref) => this.store.find(ref), containerDir: (id) => path.join(this.deps.root, id), defaultUlimits: i.defaultUlimits ?? [], seccompProfile: i.seccompProfile, initPath: i.initPath ?? DEFAULT_INIT, remap: i.remap };
  }

  /** Undo a start that failed at any step; the record says why, with docker's exit code. */
  private async startFailed(c: Container, ctx: StartContext, err: unknown): Promise<void> {
    log.debug('start failed', { id: c.id, error: errorMessage(err) });
    this.runs.delete(c.id);
    await this.deps.runtime.delete(c.id).catch(() => {});
    await teardownAll(this.providers, ctx);
    this.save(c, toStartFailed(c.state, startFailureCode(err), errorMessage(err)));
    if (c.hostConfig.AutoRemove) await this.removeLocked(c).catch((e) => log.warn('auto-remove after a failed start', { id: c.id, error: errorMessage(e) }));
  }

  // ---- exit --------------------------------------------------------------------------------------

  /** Watch for the exit of the current run; it is processed under the lock, once. */
  private watchExit(id: string): void {
    const run = Symbol(id);
    this.runs.set(id, run);
    void this.deps.runtime.waitExit(id).then(
      (code) => this.locks.run(id, () => this.processExit(id, run, code)),
      (err) => {
        if (this.runs.get(id) !== run) return;
        log.error('waiting for container exit failed', { id, error: errorMessage(err) });
        return this.locks.run(id, () => this.processExit(id, run, 255));
      },
    ).catch((err) => log.error('processing a container exit failed', { id, error: errorMessage(err) }));
  }

  /** Under the lock: record the exit of run `run` (nothing if it was processed already). */
  private async processExit(id: string, run: symbol, code: number): Promise<void> {
    if (this.runs.get(id) !== run) return;
    this.runs.delete(id);
    const c = this.store.find(id);
    if (!c) return;
    this.health?.stop(c);
    const { runtime } = this.deps;
    const oom = runtime.oomKilled(id);
    await runtime.delete(id).catch((err) => log.warn('runtime delete failed', { id, error: errorMessage(err) }));
    // Exited and `die` first, then the teardown (network disconnect, unmounts), as dockerd orders them:
    // readers see the exit as soon as it is known; verbs wait for the teardown on the lock.
    this.save(c, toExited(c.state, code, oom));
    this.publish('die', c, { exitCode: String(code) });
    await teardownAll(this.providers, this.context(c));
    if (c.hostConfig.AutoRemove) {
      await this.removeLocked(c).catch((err) => log.error('auto-remove failed', { id, error: errorMessage(err) }));
    } else if (shouldRestart(c, code)) {
      this.save(c, toRestarting(c.state));
      this.restarts.schedule(c);
    }
  }

  /** Under the lock: wait (at most timeoutMs) for the current run to exit, and process it. False on timeout. */
  private async awaitExit(c: Container, timeoutMs?: number): Promise<boolean> {
    const run = this.runs.get(c.id);
    if (!run) return true;
    const code = await within(this.deps.runtime.waitExit(c.id).catch(() => 255), timeoutMs);
    if (code === null) return false;
    await this.processExit(c.id, run, code);
    return true;
  }

  private restartByPolicy(id: string): Promise<void> {
    return this.locks.run(id, async () => {
      const c = this.store.find(id);
      if (!c || c.state.Status !== 'restarting') return;
      c.restartCount++;
      this.store.save(c);
      try {
        await this.startLocked(c);
      } catch (err) {
        log.warn('restart failed', { id, error: errorMessage(err) });
        const after = this.store.find(id);
        if (after && shouldRestart(after, after.state.ExitCode)) {
          this.save(after, toRestarting(after.state));
          this.restarts.schedule(after);
        }
      }
    }).catch((err) => log.error('restart by policy failed', { id, error: errorMessage(err) }));
  }

  /** A stop or kill by the user: no restart policy brings the container back, and a pending restart is dropped. */
  private markStopped(c: Container): void {
    this.restarts.cancel(c.id);
    c.manuallyStopped = true;
    this.save(c, toStoppedRestart(c.state));
  }

  // ---- stop, kill, restart -----------------------------------------------------------------------

  /**
   * Send a signal. A frozen process gets it only once thawed, so a paused container is unpaused
   * after a signal meant to end it (SIGKILL or its stop signal), as dockerd does.
   */
  private async signal(c: Container, sig: string, all = false): Promise<void> {
    await this.deps.runtime.kill(c.id, signalName(sig), all);
    const stopSignal = c.config.StopSignal;
    const ends = isKill(sig) || !stopSignal || signalNumber(sig) === signalNumber(stopSignal);
    if (c.state.Status === 'paused' && ends) {
      await this.deps.runtime.resume(c.id).catch((err) => log.warn('thawing a paused container failed', { id: c.id, error: errorMessage(err) }));
      this.save(c, toUnpaused(c.state));
    }
  }

  stop(idOrName: string, opts: { timeout?: number; signal?: string }): Promise<void> {
    return this.locked(idOrName, (c) => this.stopLocked(c, opts));
  }

  private async stopLocked(c: Container, opts: { timeout?: number; signal?: string }): Promise<void> {
    const wasRestarting = c.state.Status === 'restarting';
    this.markStopped(c);
    if (wasRestarting) return;
    if (!isRunning(c.state)) throw new NotModified('container already stopped');
    this.health?.stop(c);
    const signal = opts.signal || c.config.StopSignal || 'SIGTERM';
    const timeout = opts.timeout ?? c.config.StopTimeout ?? DEFAULT_STOP_TIMEOUT;
    await this.signal(c, signal).catch(() => {});
    this.publish('kill', c, { signal: signalNumber(signal) });
    if (!(await this.awaitExit(c, timeout < 0 ? undefined : timeout * 1000))) {
      await this.signal(c, 'SIGKILL', true).catch(() => {});
      this.publish('kill', c, { signal: signalNumber('SIGKILL') });
      await this.awaitExit(c);
    }
    this.publish('stop', c);
  }

  kill(idOrName: string, signal: string): Promise<void> {
    return this.locked(idOrName, async (c) => {
      checkCanKill(c, idOrName);
      this.markStopped(c);
      const sig = signal || 'SIGKILL';
      await this.signal(c, sig);
      this.publish('kill', c, { signal: signalNumber(sig) });
      if (isKill(sig)) await this.awaitExit(c);
    });
  }

  restart(idOrName: string, opts: { timeout?: number; signal?: string }): Promise<void> {
    return this.locked(idOrName, async (c) => {
      if (isRunning(c.state)) await this.stopLocked(c, opts);
      await this.startLocked(c);
      this.publish('restart', c);
    });
  }

  /** Docker's wait conditions. Resolves to the exit code. */
  async wait(idOrName: string, condition: WaitCondition): Promise<{ StatusCode: number; Error: { Message: string } | null }> {
    const c = this.store.find(idOrName);
    if (!c) {
      const code = this.removedCodes.get(idOrName);
      if (condition === 'removed' && code !== undefined) return { StatusCode: code, Error: null };
      throw new NotFound(`No such container: ${idOrName}`);
    }
    const action = condition === 'removed' ? 'destroy' : 'die';
    const ac = new AbortController();
    const event = this.events.next((e) => e.type === 'container' && e.id === c.id && e.action === action, ac.signal);
    const cur = this.store.find(c.id);
    const already = condition === 'removed' ? !cur : condition === 'not-running' && (!cur || !isRunning(cur.state));
    if (already) {
      ac.abort();
      event.catch(() => {});
      return { StatusCode: this.removedCodes.get(c.id) ?? cur?.state.ExitCode ?? c.state.ExitCode, Error: null };
    }
    const e = await event;
    return { StatusCode: Number(e.attributes.exitCode ?? this.removedCodes.get(c.id) ?? this.store.find(c.id)?.state.ExitCode ?? 0), Error: null };
  }

  /** dockerd's attach event: a client attached to the container's streams. */
  attached(c: Container): void {
    this.publish('attach', c);
  }

  // ---- pause, rename, update ---------------------------------------------------------------------

  pause(idOrName: string): Promise<void> {
    return this.locked(idOrName, async (c) => {
      checkCanPause(c);
      await this.deps.runtime.pause(c.id);
      this.save(c, toPaused(c.state));
      this.health?.stop(c);
      this.publish('pause', c);
    });
  }

  unpause(idOrName: string): Promise<void> {
    return this.locked(idOrName, async (c) => {
      checkCanUnpause(c);
      await this.deps.runtime.resume(c.id);
      this.save(c, toUnpaused(c.state));
      this.health?.resume(c);
      this.publish('unpause', c);
    });
  }

  rename(idOrName: string, newName: string): Promise<void> {
    return this.locked(idOrName, async (c) => {
      if (!newName) throw new InvalidParameter('Neither old nor new names may be empty');
      const wanted = newName.replace(/^\//, '');
      if (wanted === c.name) throw new InvalidParameter('Renaming a container with the same name as its current name');
      const oldName = c.name;
      c.name = pickName(this.store, wanted);
      this.store.save(c);
      this.publish('rename', c, { oldName: `/${oldName}` });
    });
  }

  /** New limits and restart policy; a running container gets the limits at once. */
  update(idOrName: string, body: UpdateBody): Promise<{ Warnings: string[] }> {
    return this.locked(idOrName, async (c) => {
      const next = applyUpdate(c, body);
      if (isRunning(c.state)) {
        const limits = cgroupLimits({ ...resources(next), ...extraResources(next) });
        if (next.PidsLimit === null && c.hostConfig.PidsLimit !== null) limits.pids = { limit: -1 }; // back to unlimited
        await this.deps.runtime.update(c.id, limits).catch((err) => {
          throw new SystemError(`Cannot update container ${c.id}: ${errorMessage(err)}`);
        });
      }
      c.hostConfig = next;
      this.store.save(c);
      this.publish('update', c);
      return { Warnings: [] };
    });
  }

  /** The container's cgroup, for top and stats (undefined when it has no run). */
  cgroupsPath(c: Container): string | undefined {
    return isRunning(c.state) ? this.deps.runtime.cgroupsPath(c.id) : undefined;
  }

  /**
   * Runs fn under the container's lock with its processes frozen meanwhile (when `pause` and it runs
   * and is not paused already): commit reads a consistent rw layer. The state stays as it was.
   */
  frozen<T>(idOrName: string, pause: boolean, fn: (c: Container) => Promise<T>): Promise<T> {
    return this.locked(idOrName, async (c) => {
      if (c.state.Status === 'removing') throw new CommitConflict(`You cannot commit container ${c.id} which is being removed`);
      if (c.state.Status === 'dead') throw new CommitConflict(`You cannot commit container ${c.id} which is dead`);
      const freeze = pause && c.state.Status === 'running';
      if (freeze) await this.deps.runtime.pause(c.id);
      try {
        return await fn(c);
      } finally {
        if (freeze) await this.deps.runtime.resume(c.id).catch((err) => log.warn('resume after commit failed', { id: c.id, error: errorMessage(err) }));
      }
    });
  }

  // ---- remove ------------------------------------------------------------------------------------

  remove(idOrName: string, opts: { force: boolean; volumes: boolean }): Promise<void> {
    return this.locked(idOrName, async (c) => {
      const first = checkCanRemove(c, opts.force);
      if (c.state.Status === 'restarting') this.markStopped(c);
      if (first === 'kill') {
        await this.signal(c, 'SIGKILL', true).catch(() => {});
        await this.awaitExit(c);
      }
      // An AutoRemove exit may have removed it meanwhile.
      if (this.store.find(c.id)) await this.removeLocked(c, opts.volumes);
    });
  }

  /** removeVolumes: docker's `rm -v`, which --rm implies. */
  private async removeLocked(c: Container, removeVolumes = c.removeVolumes ?? c.hostConfig.AutoRemove): Promise<void> {
    c.removeVolumes = removeVolumes;
    this.health?.stop(c);
    this.save(c, toRemoving(c.state));
    this.restarts.forget(c.id);
    await teardownAll(this.providers, this.context(c));
    await this.deps.runtime.delete(c.id).catch(() => {});
    await removeOnBase(this.deps.storage, c.id);
    // A handful of files (config, hosts, log): one synchronous call instead of a pool round trip per entry.
    fs.rmSync(this.dir(c), { recursive: true, force: true });
    this.deps.network?.forget(c.id);
    this.store.delete(c.id);
    await this.mounts.release(c, removeVolumes);
    this.removedCodes.set(c.id, c.state.ExitCode);
    setTimeout(() => this.removedCodes.delete(c.id), 60_000).unref();
    this.publish('destroy', c);
  }

  async prune(filter: (c: Container) => boolean): Promise<{ ContainersDeleted: string[]; SpaceReclaimed: number }> {
    const deleted: string[] = [];
    let space = 0;
    for (const listed of this.store.list()) {
      await this.locks.run(listed.id, async () => {
        const c = this.store.find(listed.id);
        if (!c || isRunning(c.state) || !filter(c)) return;
        space += await this.sizeRw(c);
        await this.removeLocked(c);
        deleted.push(c.id);
      });
    }
    return { ContainersDeleted: deleted, SpaceReclaimed: space };
  }

  // ---- start-up ----------------------------------------------------------------------------------

  recover(): Promise<void> {
    return recoverContainers({
      containers: () => this.store.list(),
      hidden: () => this.store.hiddenList().map((c) => c.id),
      runtime: this.deps.runtime,
      adopt: async (c) => {
        this.watchExit(c.id);
        const status = (await this.deps.runtime.state(c.id).catch(() => null))?.status;
        // Killed between `runc create` and `runc start`: the record already says running, so finish the start.
        if (status === 'created') {
          await this.deps.runtime.start(c.id).catch((err) => log.warn('finishing an interrupted start failed', { id: c.id, error: errorMessage(err) }));
        }
        // Killed between the freeze (or thaw) and saving it: the runtime knows which it is.
        if (status === 'paused' && c.state.Status === 'running') this.save(c, toPaused(c.state));
        if (status === 'running' && c.state.Status === 'paused') this.save(c, toUnpaused(c.state));
        this.health?.resume(c);
      },
      exited: (c, code) => {
        const run = Symbol(c.id);
        this.runs.set(c.id, run);
        return this.locks.run(c.id, () => this.processExit(c.id, run, code));
      },
      finishRemoval: (c) => this.locks.run(c.id, () => this.removeLocked(c)),
      rollBack: async (c, hadRuntimeState) => {
        if (hadRuntimeState) await this.deps.runtime.delete(c.id).catch(() => {});
        await teardownAll(this.providers, this.context(c));
      },
      startByPolicy: (c) => this.locks.run(c.id, async () => {
        c.manuallyStopped = false;
        await this.startLocked(c);
      }),
    });
  }
}
