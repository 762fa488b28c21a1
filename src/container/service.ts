/**
 * Containers and their lifecycle: created → running → exited → removed.
 *
 * create  resolves the image, merges its config, and prepares a snapshot (init
 *         layer + rw layer); nothing runs yet.
 * start   mounts the rootfs, builds the OCI spec and hands it to the runtime,
 *         which runs it under conmon; the exit is watched from then on.
 * exit    (watched, or found at start-up) records the code, releases the
 *         runtime state and the mount, and removes AutoRemove containers.
 * remove  deletes the snapshot, the container's files and its record.
 *
 * Every step that changes the record saves it before the next side effect, so
 * recover() can finish or undo whatever a killed daemon left half done.
 */
import { EventEmitter } from 'node:events';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { CommandNotRunnable, Conflict, InvalidParameter, NotFound, NotModified, SystemError, BerthError, errorMessage } from '../errors.js';
import { log } from '../log.js';
import { safeJoin } from '../archive/index.js';
import { type Snapshotter, mountAll, prepareOnBase, removeOnBase, unmountAll } from '../storage/index.js';
import type { Image, ImageStore } from '../image/index.js';
import { parseReference, familiarString } from '../image/reference.js';
import { type Runtime, type LogEntry, buildSpec, resolveUser, readLog, logOffset } from '../runtime/index.js';
import { ContainerStore } from './store.js';
import { randomName } from './names.js';
import { type Container, type ContainerConfig, type HostConfig, type State, ZERO_TIME } from './types.js';

export interface ContainerDeps {
  store: ContainerStore;
  images: ImageStore;
  storage: Snapshotter;
  runtime: Runtime;
  /** <data-root>/containers: one directory per container (hostname, hosts, resolv.conf, log, rootfs mount point). */
  root: string;
  cgroupParent: string;
}

export interface CreateBody extends Partial<ContainerConfig> {
  HostConfig?: Partial<HostConfig>;
  NetworkingConfig?: unknown;
}

export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

const NAME_RE = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const DEFAULT_STOP_TIMEOUT = 10;

function now(): string {
  return new Date().toISOString();
}

/** Exit code docker gives a container whose process could not be started (128: not the command's fault). */
function startFailureCode(err: unknown): number {
  return err instanceof CommandNotRunnable ? err.exitCode : 128;
}

export class ContainerService {
  readonly events = new EventEmitter();
  private readonly store: ContainerStore;
  /** Resolves once the current run's exit has been fully processed. */
  private readonly exits = new Map<string, Promise<void>>();
  /** Exit codes of containers removed recently, for `wait?condition=removed` that arrives late. */
  private readonly removedCodes = new Map<string, number>();
  /** Pending restarts (restart policy) and their current back-off delay. */
  private readonly restartTimers = new Map<string, NodeJS.Timeout>();
  private readonly backoff = new Map<string, number>();

  constructor(private readonly deps: ContainerDeps) {
    this.store = deps.store;
    this.events.setMaxListeners(0);
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
    try {
      return this.deps.images.get(c.imageId);
    } catch {
      return null;
    }
  }

  /** Containers using an image, for `rmi` conflicts. */
  usersOf(imageId: string): { id: string; running: boolean }[] {
    return this.store.list().filter((c) => c.imageId === imageId).map((c) => ({ id: c.id, running: c.state.Status === 'running' || c.state.Status === 'paused' }));
  }

  async create(body: CreateBody, requestedName: string | null): Promise<{ Id: string; Warnings: string[] }> {
    if (typeof body.Image !== 'string' || body.Image === '') throw new InvalidParameter('No image specified');
    let name: string;
    if (requestedName) {
      if (!NAME_RE.test(requestedName)) {
        throw new InvalidParameter(`Invalid container name (${requestedName}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
      }
      name = requestedName.replace(/^\//, '');
      const other = this.store.nameInUse(name);
      if (other) {
        throw new Conflict(`Conflict. The container name "/${name}" is already in use by container "${other.id}". You have to remove (or rename) that container to be able to reuse that name.`);
      }
    } else {
      name = randomName((n) => this.store.nameInUse(n) !== undefined);
    }

    const image = this.resolveImage(body.Image);
    const hostConfig = normalizeHostConfig(body.HostConfig ?? {});
    const config = mergeConfig(body, image);
    const argv = [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])];
    if (argv.length === 0) throw new InvalidParameter('no command specified');
    const warnings: string[] = [];
    checkNetworkMode(hostConfig.NetworkMode);

    const id = crypto.randomBytes(32).toString('hex');
    if (!config.Hostname) config.Hostname = hostConfig.NetworkMode === 'host' ? (await fsp.readFile('/etc/hostname', 'utf8').catch(() => 'localhost')).trim() : id.slice(0, 12);
    const dir = path.join(this.deps.root, id);
    const c: Container = {
      id,
      name,
      created: now(),
      imageId: image.id,
      config,
      hostConfig,
      state: { Status: 'created', Pid: 0, ExitCode: 0, Error: '', OOMKilled: false, StartedAt: ZERO_TIME, FinishedAt: ZERO_TIME },
      restartCount: 0,
      path: argv[0],
      args: argv.slice(1),
      logPath: path.join(dir, `${id}-json.log`),
      hostnamePath: path.join(dir, 'hostname'),
      hostsPath: path.join(dir, 'hosts'),
      resolvConfPath: path.join(dir, 'resolv.conf'),
    };

    const top = image.layers.length ? image.layers[image.layers.length - 1].chainId : null;
    try {
      await fsp.mkdir(path.join(dir, 'rootfs'), { recursive: true });
      await writeEtcFiles(c);
      await prepareOnBase(this.deps.storage, id, top, prepareInitLayer);
      this.store.insert(c);
    } catch (err) {
      await removeOnBase(this.deps.storage, id).catch(() => {});
      await fsp.rm(dir, { recursive: true, force: true });
      throw err;
    }
    this.emit('create', c);
    return { Id: id, Warnings: warnings };
  }

  private resolveImage(ref: string): Image {
    try {
      return this.deps.images.resolve(ref);
    } catch (err) {
      if (!(err instanceof NotFound)) throw err;
      let shown = ref;
      try {
        shown = familiarString(parseReference(ref));
      } catch {}
      throw new NotFound(`No such image: ${shown}`);
    }
  }

  async start(idOrName: string): Promise<void> {
    const c = this.store.get(idOrName);
    if (c.state.Status === 'running' || c.state.Status === 'paused') throw new NotModified('container already started');
    this.cancelRestart(c.id);
    c.manuallyStopped = false;
    if (c.state.Status === 'removing') throw new Conflict(`cannot start container ${c.id.slice(0, 12)}: container is marked for removal`);
    // A previous run may still be finishing its exit processing.
    await this.exits.get(c.id);

    const rootfs = this.rootfs(c);
    const { runtime, storage } = this.deps;
    try {
      mountAll(storage.mounts(c.id), rootfs);
      const user = await resolveUser(rootfs, c.config.User);
      const cwd = c.config.WorkingDir || '/';
      await fsp.mkdir(safeJoin(rootfs, cwd), { recursive: true });
      const env = [...c.config.Env];
      if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home || '/'}`);
      const spec = buildSpec({
        rootfs,
        args: [c.path, ...c.args],
        env,
        cwd,
        user,
        hostname: c.config.Hostname,
        tty: c.config.Tty,
        openStdin: c.config.OpenStdin,
        network: { mode: c.hostConfig.NetworkMode === 'host' ? 'host' : 'none' },
        cgroupsPath: `${this.deps.cgroupParent}/${c.id}`,
        resources: resources(c.hostConfig),
        mounts: [
          { destination: '/etc/hostname', source: c.hostnamePath, type: 'bind', options: ['rbind', 'rprivate'] },
          { destination: '/etc/hosts', source: c.hostsPath, type: 'bind', options: ['rbind', 'rprivate'] },
          { destination: '/etc/resolv.conf', source: c.resolvConfPath, type: 'bind', options: ['rbind', 'rprivate'] },
        ],
        privileged: c.hostConfig.Privileged,
        capAdd: c.hostConfig.CapAdd ?? undefined,
        capDrop: c.hostConfig.CapDrop ?? undefined,
        readonlyRootfs: c.hostConfig.ReadonlyRootfs,
        labels: c.config.Labels,
      });
      const { pid } = await runtime.create(c.id, spec, { logPath: c.logPath, tty: c.config.Tty, stdin: c.config.OpenStdin });
      c.state = { ...c.state, Status: 'running', Pid: pid, ExitCode: 0, Error: '', OOMKilled: false, StartedAt: now(), FinishedAt: ZERO_TIME };
      this.store.save(c);
      this.watchExit(c.id);
      await runtime.start(c.id);
    } catch (err) {
      const message = errorMessage(err);
      log.debug('start failed', { id: c.id, error: message });
      await runtime.delete(c.id).catch(() => {});
      try {
        unmountAll(rootfs);
      } catch {}
      if (this.store.find(c.id)) {
        const code = startFailureCode(err);
        c.state = { ...c.state, Status: c.state.StartedAt === ZERO_TIME ? 'created' : 'exited', Pid: 0, ExitCode: code, Error: message, FinishedAt: now() };
        this.store.save(c);
        if (c.hostConfig.AutoRemove) await this.remove(c.id, { force: true, volumes: false }).catch(() => {});
      }
      // A command that cannot run is the caller's mistake (400, as dockerd answers); other failures keep their class.
      if (err instanceof CommandNotRunnable) throw new CommandNotRunnable(`failed to create task for container: ${message}`, err.exitCode);
      if (err instanceof BerthError) throw err;
      throw new SystemError(`failed to create task for container: ${message}`);
    }
    this.emit('start', c);
  }

  /** Watch for the exit of the current run; the promise in `exits` settles when it is processed. */
  private watchExit(id: string): void {
    const done = this.deps.runtime.waitExit(id).then(
      (code) => this.onExit(id, code),
      (err) => log.error('waiting for container exit failed', { id, error: errorMessage(err) }),
    );
    this.exits.set(id, done);
    void done.finally(() => {
      if (this.exits.get(id) === done) this.exits.delete(id);
    });
  }

  private async onExit(id: string, code: number): Promise<void> {
    const c = this.store.find(id);
    if (!c) return;
    const { runtime } = this.deps;
    const oom = runtime.oomKilled(id);
    await runtime.delete(id).catch((err) => log.warn('runtime delete failed', { id, error: errorMessage(err) }));
    try {
      unmountAll(this.rootfs(c));
    } catch (err) {
      log.warn('unmount failed', { id, error: errorMessage(err) });
    }
    c.state = { ...c.state, Status: 'exited', Pid: 0, ExitCode: code, OOMKilled: oom, FinishedAt: now() };
    this.store.save(c);
    this.emit('die', c, { exitCode: String(code) });
    if (c.hostConfig.AutoRemove) {
      await this.removeFiles(c).catch((err) => log.error('auto-remove failed', { id, error: errorMessage(err) }));
    } else if (shouldRestart(c, code)) {
      this.scheduleRestart(c);
    }
  }

  /** Restart after a back-off that doubles from 100 ms up to a minute, and resets once a run lasted 10 s. */
  private scheduleRestart(c: Container): void {
    const ranFor = Date.now() - Date.parse(c.state.StartedAt);
    const delay = ranFor > 10_000 ? 100 : Math.min((this.backoff.get(c.id) ?? 50) * 2, 60_000);
    this.backoff.set(c.id, delay);
    c.state = { ...c.state, Status: 'restarting' };
    this.store.save(c);
    const timer = setTimeout(() => {
      this.restartTimers.delete(c.id);
      const cur = this.store.find(c.id);
      if (!cur || cur.state.Status !== 'restarting') return;
      cur.restartCount++;
      this.store.save(cur);
      this.start(cur.id).catch((err) => {
        log.warn('restart failed', { id: cur.id, error: errorMessage(err) });
        const after = this.store.find(cur.id);
        if (after && shouldRestart(after, after.state.ExitCode)) this.scheduleRestart(after);
      });
    }, delay);
    timer.unref();
    this.restartTimers.set(c.id, timer);
  }

  private cancelRestart(id: string): void {
    const timer = this.restartTimers.get(id);
    if (timer) clearTimeout(timer);
    this.restartTimers.delete(id);
  }

  /** A stop or kill by the user: no restart policy brings the container back, and a pending restart is dropped. */
  private markStopped(c: Container): void {
    this.cancelRestart(c.id);
    c.manuallyStopped = true;
    if (c.state.Status === 'restarting') c.state = { ...c.state, Status: 'exited' };
    this.store.save(c);
  }

  private emit(action: string, c: Container, extra: Record<string, string> = {}): void {
    this.events.emit('event', {
      Type: 'container',
      Action: action,
      Actor: { ID: c.id, Attributes: { name: c.name, image: c.config.Image, ...c.config.Labels, ...extra } },
      id: c.id,
      status: action,
      from: c.config.Image,
      time: Math.floor(Date.now() / 1000),
      timeNano: Date.now() * 1e6,
    });
    this.events.emit(`${action}:${c.id}`, c);
  }

  private waitForEvent(action: string, id: string, timeoutMs?: number): Promise<boolean> {
    return new Promise((resolve) => {
      const onEvent = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
        this.events.off(`${action}:${id}`, onEvent);
        resolve(false);
      }, timeoutMs);
      this.events.once(`${action}:${id}`, onEvent);
    });
  }

  /** Resolves when the running container has exited and its exit is processed. */
  private async exited(c: Container, timeoutMs?: number): Promise<boolean> {
    const pending = this.exits.get(c.id);
    if (!pending) return true;
    if (timeoutMs === undefined) {
      await pending;
      return true;
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
    const result = await Promise.race([pending.then(() => true), timeout]);
    clearTimeout(timer);
    return result;
  }

  async stop(idOrName: string, opts: { timeout?: number; signal?: string }): Promise<void> {
    const c = this.store.get(idOrName);
    const wasRestarting = c.state.Status === 'restarting';
    this.markStopped(c);
    if (wasRestarting) return;
    if (c.state.Status !== 'running' && c.state.Status !== 'paused') throw new NotModified('container already stopped');
    const signal = opts.signal || c.config.StopSignal || 'SIGTERM';
    const timeout = opts.timeout ?? c.config.StopTimeout ?? DEFAULT_STOP_TIMEOUT;
    await this.deps.runtime.kill(c.id, signal).catch(() => {});
    if (timeout < 0) {
      await this.exited(c);
      return;
    }
    if (!(await this.exited(c, timeout * 1000))) {
      await this.deps.runtime.kill(c.id, 'SIGKILL', true).catch(() => {});
      await this.exited(c);
    }
  }

  async kill(idOrName: string, signal: string): Promise<void> {
    const c = this.store.get(idOrName);
    if (c.state.Status !== 'running' && c.state.Status !== 'paused') {
      throw new Conflict(`cannot kill container: ${idOrName}: container ${c.id} is not running`);
    }
    this.markStopped(c);
    const sig = signal || 'SIGKILL';
    await this.deps.runtime.kill(c.id, /^\d+$/.test(sig) ? Number(sig) : sig.startsWith('SIG') ? sig : `SIG${sig}`);
    if (sig === 'SIGKILL' || sig === 'KILL' || sig === '9') await this.exited(c);
  }

  async restart(idOrName: string, opts: { timeout?: number; signal?: string }): Promise<void> {
    const c = this.store.get(idOrName);
    if (c.state.Status === 'running') await this.stop(c.id, opts);
    await this.start(c.id);
  }

  /** Docker's wait conditions. Resolves to the exit code. */
  async wait(idOrName: string, condition: WaitCondition): Promise<{ StatusCode: number; Error: { Message: string } | null }> {
    const c = this.store.find(idOrName);
    if (!c) {
      const code = this.removedCodes.get(idOrName);
      if (condition === 'removed' && code !== undefined) return { StatusCode: code, Error: null };
      throw new NotFound(`No such container: ${idOrName}`);
    }
    const running = () => {
      const cur = this.store.find(c.id);
      return cur !== undefined && (cur.state.Status === 'running' || cur.state.Status === 'paused');
    };
    if (condition === 'removed') {
      await this.waitForEvent('destroy', c.id);
      return { StatusCode: this.removedCodes.get(c.id) ?? c.state.ExitCode, Error: null };
    }
    if (condition === 'not-running' && !running()) return { StatusCode: c.state.ExitCode, Error: null };
    await this.waitForEvent('die', c.id);
    const cur = this.store.find(c.id) ?? c;
    return { StatusCode: cur.state.ExitCode, Error: null };
  }

  async remove(idOrName: string, opts: { force: boolean; volumes: boolean }): Promise<void> {
    const c = this.store.get(idOrName);
    if (c.state.Status === 'restarting') {
      if (!opts.force) {
        throw new Conflict(`cannot remove container "/${c.name}": container is restarting: stop the container before removing or force remove`);
      }
      this.markStopped(c);
    }
    if (c.state.Status === 'running' || c.state.Status === 'paused') {
      if (!opts.force) {
        throw new Conflict(`cannot remove container "/${c.name}": container is running: stop the container before removing or force remove`);
      }
      await this.deps.runtime.kill(c.id, 'SIGKILL', true).catch(() => {});
      await this.exited(c);
    }
    // An AutoRemove exit may have removed it meanwhile.
    if (!this.store.find(c.id)) return;
    await this.removeFiles(c);
  }

  private async removeFiles(c: Container): Promise<void> {
    if (c.state.Status === 'removing' && !this.store.find(c.id)) return;
    c.state = { ...c.state, Status: 'removing' };
    this.store.save(c);
    try {
      unmountAll(this.rootfs(c));
    } catch {}
    await this.deps.runtime.delete(c.id).catch(() => {});
    await removeOnBase(this.deps.storage, c.id);
    await fsp.rm(this.dir(c), { recursive: true, force: true });
    this.store.delete(c.id);
    this.removedCodes.set(c.id, c.state.ExitCode);
    setTimeout(() => this.removedCodes.delete(c.id), 60_000).unref();
    this.emit('destroy', c);
  }

  async prune(filter: (c: Container) => boolean): Promise<{ ContainersDeleted: string[]; SpaceReclaimed: number }> {
    const deleted: string[] = [];
    let space = 0;
    for (const c of this.store.list()) {
      if (c.state.Status === 'running' || c.state.Status === 'paused' || !filter(c)) continue;
      space += (await this.deps.storage.usage(c.id).catch(() => ({ size: 0 }))).size;
      await this.removeFiles(c);
      deleted.push(c.id);
    }
    return { ContainersDeleted: deleted, SpaceReclaimed: space };
  }

  /** Size of the rw layer (SizeRw) for `ps -s` and inspect?size=1. */
  sizeRw(c: Container): Promise<number> {
    return this.deps.storage.usage(c.id).then((u) => u.size, () => 0);
  }

  logs(c: Container, opts: { follow: boolean; since?: number; until?: number; tail?: number; signal?: AbortSignal }): AsyncIterable<LogEntry> {
    if (!fs.existsSync(c.logPath)) return (async function* () {})();
    return readLog(c.logPath, {
      ...opts,
      isRunning: () => {
        const cur = this.store.find(c.id);
        return cur !== undefined && (cur.state.Status === 'running' || this.exits.has(c.id));
      },
    });
  }

  /**
   * Output of a container from now on, for attach: follows the log from its
   * current end until the container's next exit (or the signal aborts).
   */
  attachOutput(c: Container, signal: AbortSignal): AsyncIterable<LogEntry> {
    const fromOffset = fs.existsSync(c.logPath) ? logOffset(c.logPath) : 0;
    let exited = false;
    const onDie = () => (exited = true);
    this.events.once(`die:${c.id}`, onDie);
    signal.addEventListener('abort', () => this.events.off(`die:${c.id}`, onDie), { once: true });
    const logPath = c.logPath;
    const startedOnce = new Promise<void>((resolve) => {
      if (fs.existsSync(logPath)) return resolve();
      const check = () => {
        this.events.off(`start:${c.id}`, check);
        this.events.off(`die:${c.id}`, check);
        resolve();
      };
      this.events.on(`start:${c.id}`, check);
      this.events.on(`die:${c.id}`, check);
      signal.addEventListener('abort', check, { once: true });
    });
    return (async function* () {
      await startedOnce;
      if (signal.aborted || !fs.existsSync(logPath)) return;
      yield* readLog(logPath, { follow: true, fromOffset, signal, isRunning: () => !exited });
    })();
  }

  /** Resolves once the container runs (at once if it does), or when the signal aborts. */
  running(c: Container, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const cur = this.store.find(c.id);
      if (!cur || cur.state.Status === 'running' || signal.aborted) return resolve();
      const done = () => {
        this.events.off(`start:${c.id}`, done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.events.on(`start:${c.id}`, done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /** Stdin of a running container (OpenStdin), through its monitor. */
  async stdin(c: Container): Promise<NodeJS.WritableStream> {
    const streams = await this.deps.runtime.attach(c.id);
    return streams.stdin;
  }

  resize(c: Container, h: number, w: number): Promise<void> {
    if (c.state.Status !== 'running') throw new Conflict(`Container ${c.id} is not running`);
    return this.deps.runtime.resize(c.id, h, w);
  }

  /**
   * After a daemon restart: re-adopt running containers, process exits that
   * happened while we were away, and finish half-done removals.
   */
  async recover(): Promise<void> {
    const known = new Map((await this.deps.runtime.list()).map((r) => [r.id, r]));
    for (const c of this.store.list()) {
      const r = known.get(c.id);
      known.delete(c.id);
      if (c.state.Status === 'removing') {
        await this.removeFiles(c).catch((err) => log.error('finishing removal failed', { id: c.id, error: errorMessage(err) }));
        continue;
      }
      if (c.state.Status === 'running' || c.state.Status === 'paused') {
        if (r && r.conmonAlive && r.exitCode === null) {
          log.info('re-adopting running container', { id: c.id });
          this.watchExit(c.id);
        } else {
          await this.onExit(c.id, r?.exitCode ?? 255);
        }
        continue;
      }
      if (r) {
        // Died between runtime create and saving the running state.
        await this.deps.runtime.delete(c.id).catch(() => {});
        try {
          unmountAll(this.rootfs(c));
        } catch {}
      }
    }
    // Like dockerd at start: bring back containers whose policy says so.
    for (const c of this.store.list()) {
      const policy = c.hostConfig.RestartPolicy.Name;
      const wanted = policy === 'always' || (policy === 'unless-stopped' && !c.manuallyStopped) || c.state.Status === 'restarting';
      if (wanted && (c.state.Status === 'exited' || c.state.Status === 'restarting')) {
        c.manuallyStopped = false;
        await this.start(c.id).catch((err) => log.warn('restart at daemon start failed', { id: c.id, error: errorMessage(err) }));
      }
    }
    for (const orphan of known.keys()) {
      log.warn('removing runtime state of unknown container', { id: orphan });
      await this.deps.runtime.delete(orphan).catch(() => {});
    }
  }
}

function shouldRestart(c: Container, code: number): boolean {
  if (c.manuallyStopped) return false;
  const p = c.hostConfig.RestartPolicy;
  switch (p.Name) {
    case 'always':
    case 'unless-stopped':
      return true;
    case 'on-failure':
      return code !== 0 && (p.MaximumRetryCount === 0 || c.restartCount < p.MaximumRetryCount);
    default:
      return false;
  }
}

const RESTART_POLICIES = ['no', 'always', 'unless-stopped', 'on-failure'];

function normalizeHostConfig(h: Partial<HostConfig>): HostConfig {
  const nano = h.NanoCpus ?? 0;
  if (nano && (h.CpuQuota || h.CpuPeriod)) throw new InvalidParameter('Conflicting options: Nano CPUs and CPU Period cannot both be set');
  if (h.Memory && h.Memory > 0 && h.Memory < 6 * 1024 * 1024) throw new InvalidParameter('Minimum memory limit allowed is 6MB');
  if (h.Binds && h.Binds.length) throw new InvalidParameter('bind mounts are not supported yet');
  const published = Object.values((h.PortBindings ?? {}) as Record<string, unknown[] | null>).some((b) => b && b.length);
  if (published || h.PublishAllPorts) throw new InvalidParameter('publishing ports (-p, -P) is not supported yet: containers have no bridge network');
  const restart = h.RestartPolicy ?? { Name: 'no', MaximumRetryCount: 0 };
  if (restart.Name && !RESTART_POLICIES.includes(restart.Name)) throw new InvalidParameter(`invalid restart policy: unknown policy '${restart.Name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'`);
  if (restart.MaximumRetryCount && restart.Name !== 'on-failure') throw new InvalidParameter(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
  if (restart.Name && restart.Name !== 'no' && h.AutoRemove) {
    throw new InvalidParameter('can\'t create \'AutoRemove\' container with restart policy');
  }
  return {
    ...h,
    AutoRemove: h.AutoRemove ?? false,
    NetworkMode: h.NetworkMode || 'bridge',
    Memory: h.Memory ?? 0,
    MemorySwap: h.MemorySwap ?? 0,
    NanoCpus: nano,
    CpuShares: h.CpuShares ?? 0,
    CpuQuota: h.CpuQuota ?? 0,
    CpuPeriod: h.CpuPeriod ?? 0,
    PidsLimit: h.PidsLimit ?? null,
    Privileged: h.Privileged ?? false,
    ReadonlyRootfs: h.ReadonlyRootfs ?? false,
    CapAdd: h.CapAdd ?? null,
    CapDrop: h.CapDrop ?? null,
    RestartPolicy: { Name: restart.Name || 'no', MaximumRetryCount: restart.MaximumRetryCount ?? 0 },
    LogConfig: { Type: 'json-file', Config: {} },
    Binds: null,
  };
}

/** Until bridge networking lands, "default"/"bridge" containers get their own netns with loopback only. */
function checkNetworkMode(mode: string): void {
  if (mode === 'default' || mode === 'bridge' || mode === 'none' || mode === 'host') return;
  if (mode.startsWith('container:')) throw new InvalidParameter('network mode container:<name> is not supported yet');
  throw new NotFound(`network ${mode} not found`);
}

function resources(h: HostConfig) {
  const out: { memory?: number; memorySwap?: number; cpuShares?: number; cpuQuota?: number; cpuPeriod?: number; pidsLimit?: number } = {};
  if (h.Memory > 0) out.memory = h.Memory;
  if (h.MemorySwap !== 0) out.memorySwap = h.MemorySwap;
  if (h.CpuShares > 0) out.cpuShares = h.CpuShares;
  if (h.NanoCpus > 0) {
    out.cpuPeriod = 100000;
    out.cpuQuota = Math.round((h.NanoCpus / 1e9) * 100000);
  } else {
    if (h.CpuQuota > 0) out.cpuQuota = h.CpuQuota;
    if (h.CpuPeriod > 0) out.cpuPeriod = h.CpuPeriod;
  }
  if (h.PidsLimit !== null && h.PidsLimit > 0) out.pidsLimit = h.PidsLimit;
  return out;
}

/** Image config + create body → the container's Config, with docker's precedence rules. */
function mergeConfig(body: CreateBody, image: Image): ContainerConfig {
  const ic = image.config.config ?? {};
  const envMap = new Map<string, string>();
  for (const e of [...(ic.Env ?? []), ...(body.Env ?? [])]) {
    const eq = e.indexOf('=');
    envMap.set(eq < 0 ? e : e.slice(0, eq), e);
  }
  let entrypoint: string[] | null = ic.Entrypoint ?? null;
  let cmd: string[] | null = ic.Cmd ?? null;
  if (body.Entrypoint !== undefined && body.Entrypoint !== null) {
    const ep = typeof body.Entrypoint === 'string' ? [body.Entrypoint] : body.Entrypoint;
    entrypoint = ep.length === 1 && ep[0] === '' ? null : ep;
    cmd = null; // a new entrypoint drops the image's Cmd, as in docker
  }
  if (body.Cmd !== undefined && body.Cmd !== null) {
    const c = typeof body.Cmd === 'string' ? [body.Cmd] : body.Cmd;
    if (c.length) cmd = c;
  }
  const { HostConfig: _h, NetworkingConfig: _n, ...rest } = body;
  return {
    ...rest,
    Hostname: body.Hostname ?? '',
    Domainname: body.Domainname ?? '',
    User: body.User || ic.User || '',
    AttachStdin: body.AttachStdin ?? false,
    AttachStdout: body.AttachStdout ?? false,
    AttachStderr: body.AttachStderr ?? false,
    Tty: body.Tty ?? false,
    OpenStdin: body.OpenStdin ?? false,
    StdinOnce: body.StdinOnce ?? false,
    Env: [...envMap.values()],
    Cmd: cmd,
    Entrypoint: entrypoint,
    Image: body.Image as string,
    WorkingDir: body.WorkingDir || ic.WorkingDir || '',
    Labels: { ...(ic.Labels ?? {}), ...(body.Labels ?? {}) },
    StopSignal: body.StopSignal || ic.StopSignal || undefined,
    ExposedPorts: body.ExposedPorts ?? ic.ExposedPorts,
    Volumes: body.Volumes ?? ic.Volumes ?? null,
  };
}

async function writeEtcFiles(c: Container): Promise<void> {
  const host = c.hostConfig.NetworkMode === 'host';
  const hosts = host
    ? await fsp.readFile('/etc/hosts', 'utf8').catch(() => '127.0.0.1\tlocalhost\n')
    : '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n';
  const hostResolv = await fsp.readFile('/etc/resolv.conf', 'utf8').catch(() => '');
  // A loopback resolver of the host is unreachable from the container's own netns.
  const resolv = host ? hostResolv : hostResolv.split('\n').filter((l) => !/^\s*nameserver\s+(127\.|::1)/.test(l)).join('\n');
  await fsp.writeFile(c.hostnamePath, c.config.Hostname + '\n');
  await fsp.writeFile(c.hostsPath, hosts);
  await fsp.writeFile(c.resolvConfPath, resolv);
}

/** Docker's init layer: mount points the runtime expects, present even in FROM-scratch images. */
async function prepareInitLayer(dir: string): Promise<void> {
  for (const d of ['dev/pts', 'dev/shm', 'proc', 'sys', 'etc']) await fsp.mkdir(path.join(dir, d), { recursive: true, mode: 0o755 });
  for (const f of ['etc/hosts', 'etc/hostname', 'etc/resolv.conf', '.dockerenv']) await fsp.writeFile(path.join(dir, f), '', { mode: 0o755 });
  await fsp.symlink('/proc/mounts', path.join(dir, 'etc/mtab')).catch(() => {});
}

export type { State };
