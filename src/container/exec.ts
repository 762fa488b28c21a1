/**
 * Exec sessions: extra processes in a running container, Docker's way.
 *
 * create  checks the container runs and records the request (nothing runs yet).
 * start   resolves user, env and cwd against the container, builds the process
 *         from the container's own (capabilities, rlimits...) and runs it
 *         through the exec runtime; the session is Running until it exits.
 * exit    records ExitCode; the record stays for inspect (the docker CLI asks
 *         for the exit code right after the stream ends) and is dropped a while
 *         later, or at once when its container stops or is removed.
 *
 * Sessions live in memory only: like dockerd, a restarted daemon forgets them.
 */
import crypto from 'node:crypto';
import { CommandNotRunnable, Conflict, ExecStartFailed, InvalidParameter, NotFound, errorMessage } from '../errors.js';
import { log } from '../log.js';
import {
  DEFAULT_PATH, hostCapabilities, resolveUser,
  type ExecProcess, type ExecRuntime, type OciProcess,
} from '../runtime/index.js';
import type { ContainerService } from './service.js';
import { checkCanExec } from './state.js';
import type { Container } from './types.js';

/** Docker's ExecConfig (POST /containers/{id}/exec). */
export interface ExecConfig {
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  DetachKeys: string;
  Tty: boolean;
  ConsoleSize: [number, number] | null;
  Env: string[];
  Cmd: string[];
  Privileged: boolean;
  User: string;
  WorkingDir: string;
}

export interface ExecSession {
  id: string;
  containerId: string;
  config: ExecConfig;
  running: boolean;
  /** null until the process has exited (or failed to start). */
  exitCode: number | null;
  pid: number;
  /** Set once start was called: a session runs once. */
  started: boolean;
  process: ExecProcess | null;
  /** Resolves once the exit (or the failure to start) is recorded. */
  done: Promise<void>;
  finish: () => void;
}

/** How long a finished session stays inspectable (dockerd's exec GC runs every 5 minutes). */
const KEEP_FINISHED_MS = 5 * 60_000;
/** How long a session that ended with its container stays inspectable. */
const EXITED_WITH_CONTAINER_MS = 5_000;

function strings(v: unknown, what: string): string[] {
  if (v === undefined || v === null) return [];
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new InvalidParameter(`invalid ${what}: must be an array of strings`);
  return v as string[];
}

/** dockerd's event text for an exec: the entrypoint, a space, the arguments ("true " for a bare command). */
function eventCommand(cmd: string[]): string {
  return `${cmd[0]} ${cmd.slice(1).join(' ')}`;
}

/** KEY=value lists merged like docker's ReplaceOrAppendEnvValues: later keys replace earlier ones in place. */
function mergeEnv(base: string[], extra: string[]): string[] {
  const out = [...base];
  const key = (e: string) => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e);
  for (const e of extra) {
    const i = out.findIndex((x) => key(x) === key(e));
    if (!e.includes('=')) {
      // "KEY" alone unsets it, as in docker.
      if (i >= 0) out.splice(i, 1);
      continue;
    }
    if (i >= 0) out[i] = e;
    else out.push(e);
  }
  return out;
}

export class ExecService {
  private readonly sessions = new Map<string, ExecSession>();

  constructor(
    private readonly containers: ContainerService,
    private readonly runtime: ExecRuntime,
  ) {
    runtime.sweep();
    containers.events.subscribe((e) => {
      if (e.type === 'container' && (e.action === 'die' || e.action === 'destroy')) {
        runtime.forget(e.id);
        this.containerGone(e.id);
      }
    });
  }

  /** The container must run; docker's messages for paused/restarting/stopped ones. */
  private running(idOrName: string): Container {
    const c = this.containers.get(idOrName);
    checkCanExec(c);
    return c;
  }

  create(idOrName: string, body: Record<string, unknown>): { Id: string } {
    const c = this.running(idOrName);
    const cmd = strings(body.Cmd, 'Cmd');
    if (cmd.length === 0) throw new InvalidParameter('No exec command specified');
    let consoleSize: [number, number] | null = null;
    if (Array.isArray(body.ConsoleSize) && body.ConsoleSize.length === 2 && body.ConsoleSize.every((n) => typeof n === 'number' && n >= 0)) {
      consoleSize = [body.ConsoleSize[0] as number, body.ConsoleSize[1] as number];
    }
    const config: ExecConfig = {
      AttachStdin: body.AttachStdin === true,
      AttachStdout: body.AttachStdout === true,
      AttachStderr: body.AttachStderr === true,
      DetachKeys: typeof body.DetachKeys === 'string' ? body.DetachKeys : '',
      Tty: body.Tty === true,
      ConsoleSize: consoleSize,
      Env: strings(body.Env, 'Env'),
      Cmd: cmd,
      Privileged: body.Privileged === true,
      User: typeof body.User === 'string' ? body.User : '',
      WorkingDir: typeof body.WorkingDir === 'string' ? body.WorkingDir : '',
    };
    if (config.WorkingDir !== '' && !config.WorkingDir.startsWith('/')) {
      throw new InvalidParameter(`the working directory '${config.WorkingDir}' is invalid, it needs to be an absolute path`);
    }
    const id = crypto.randomBytes(32).toString('hex');
    let finish = () => {};
    const done = new Promise<void>((resolve) => (finish = resolve));
    this.sessions.set(id, { id, containerId: c.id, config, running: false, exitCode: null, pid: 0, started: false, process: null, done, finish });
    this.containers.publish(`exec_create: ${eventCommand(cmd)}`, c, { execID: id });
    return { Id: id };
  }

  get(id: string): ExecSession {
    const s = this.sessions.get(id);
    if (!s) throw new NotFound(`No such exec instance: ${id}`);
    return s;
  }

  /**
   * Runs the session's process. Resolves once it has started (streams attached when `attach`);
   * throws CommandNotRunnable (127/126) or ExecStartFailed (126), with the exit code recorded, when runc could not start it.
   */
  async start(id: string, opts: { attach: boolean; consoleSize?: [number, number] | null }): Promise<ExecProcess> {
    const s = this.startable(id);
    const c = this.running(s.containerId);
    s.started = true;
    let proc: ExecProcess;
    try {
      const spec = await this.processSpec(c, s.config, opts.consoleSize ?? s.config.ConsoleSize);
      proc = await this.runtime.exec(c.id, s.id, spec, { tty: s.config.Tty, stdin: s.config.AttachStdin && opts.attach, attach: opts.attach });
    } catch (err) {
      // dockerd: 127 for a command not found, 126 for one it cannot run, 126 for any other start failure.
      const failure = err instanceof CommandNotRunnable || err instanceof ExecStartFailed ? err : new ExecStartFailed(errorMessage(err));
      s.exitCode = failure.exitCode;
      s.finish();
      this.forgetLater(s);
      throw failure;
    }
    s.process = proc;
    s.pid = proc.pid;
    s.running = true;
    this.containers.publish(`exec_start: ${eventCommand(s.config.Cmd)}`, c, { execID: s.id });
    proc.exit.then(
      (code) => {
        s.exitCode = code;
        this.containers.publish('exec_die', c, { execID: s.id, exitCode: String(code) });
      },
      (err: unknown) => { log.warn('exec: waiting for exit failed', { id: s.id, error: errorMessage(err) }); s.exitCode = 137; },
    ).finally(() => {
      s.running = false;
      s.pid = 0;
      s.process = null;
      s.finish();
      this.forgetLater(s);
    });
    return proc;
  }

  /** The session, if it may be started now (the API checks before it hijacks the connection). */
  startable(id: string): ExecSession {
    const s = this.get(id);
    if (s.exitCode !== null) throw new Conflict(`Error: Exec command ${s.id} has already run`);
    if (s.started) throw new Conflict(`Error: Exec command ${s.id} is already running`);
    this.running(s.containerId);
    return s;
  }

  resize(id: string, height: number, width: number): void {
    const s = this.get(id);
    // A resize racing the start or the exit is harmless: docker's CLI ignores its errors anyway.
    if (!s.process || !s.config.Tty) return;
    try {
      s.process.resize(height, width);
    } catch (err) {
      log.debug('exec resize', { id, error: errorMessage(err) });
    }
  }

  /** Docker's ExecInspect shape. */
  inspect(id: string): Record<string, unknown> {
    const s = this.get(id);
    return {
      ID: s.id,
      Running: s.running,
      ExitCode: s.exitCode,
      ProcessConfig: {
        tty: s.config.Tty,
        entrypoint: s.config.Cmd[0],
        arguments: s.config.Cmd.slice(1),
        privileged: s.config.Privileged,
        ...(s.config.User ? { user: s.config.User } : {}),
      },
      OpenStdin: s.config.AttachStdin,
      OpenStderr: s.config.AttachStderr,
      OpenStdout: s.config.AttachStdout,
      CanRemove: s.exitCode !== null,
      ContainerID: s.containerId,
      DetachKeys: s.config.DetachKeys,
      Pid: s.pid,
    };
  }

  /** Exec ids of a container (its inspect's ExecIDs): like dockerd, those that have not exited (health probes come and go). */
  idsOf(containerId: string): string[] {
    return [...this.sessions.values()].filter((s) => s.containerId === containerId && s.exitCode === null).map((s) => s.id);
  }

  private async processSpec(c: Container, cfg: ExecConfig, consoleSize: [number, number] | null): Promise<OciProcess & { consoleSize?: { height: number; width: number } }> {
    const base = this.runtime.containerProcess(c.id);
    let user;
    try {
      user = await resolveUser(this.containers.rootfs(c), cfg.User || c.config.User, c.hostConfig.GroupAdd ?? []);
    } catch (err) {
      throw new ExecStartFailed(`OCI runtime exec failed: exec failed: unable to start container process: ${errorMessage(err)}: unknown`);
    }
    const has = (env: string[], k: string) => env.some((e) => e.startsWith(`${k}=`));
    // dockerd's CreateDaemonEnvironment: PATH, HOSTNAME, TERM for a tty, then the container's Env, then the exec's.
    const daemonEnv: string[] = [];
    if (!has(c.config.Env, 'PATH')) daemonEnv.push(DEFAULT_PATH);
    daemonEnv.push(`HOSTNAME=${c.config.Hostname}`);
    if (cfg.Tty) daemonEnv.push('TERM=xterm');
    const env = mergeEnv(mergeEnv(daemonEnv, c.config.Env), cfg.Env);
    if (!has(env, 'HOME')) env.push(`HOME=${user.home || '/'}`);
    const caps = cfg.Privileged ? hostCapabilities() : null;
    return {
      ...base,
      terminal: cfg.Tty,
      user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
      args: cfg.Cmd,
      env,
      cwd: cfg.WorkingDir || c.config.WorkingDir || '/',
      capabilities: caps ? { bounding: caps, effective: caps, permitted: caps } : base.capabilities,
      ...(cfg.Privileged ? { noNewPrivileges: false } : {}),
      ...(cfg.Tty && consoleSize && consoleSize[0] > 0 && consoleSize[1] > 0 ? { consoleSize: { height: consoleSize[0], width: consoleSize[1] } } : {}),
    };
  }

  private forgetLater(s: ExecSession): void {
    setTimeout(() => {
      if (this.sessions.get(s.id) === s && !s.running) this.sessions.delete(s.id);
    }, KEEP_FINISHED_MS).unref();
  }

  /**
   * The container stopped: its execs die with its PID namespace. Records of finished sessions go at
   * once; a running one stays a few seconds past its exit, so its client can still read ExitCode.
   */
  private containerGone(containerId: string): void {
    for (const s of this.sessions.values()) {
      if (s.containerId !== containerId) continue;
      if (!s.process) {
        this.sessions.delete(s.id);
        continue;
      }
      void s.done.then(() => {
        setTimeout(() => this.sessions.delete(s.id), EXITED_WITH_CONTAINER_MS).unref();
      });
    }
  }
}
