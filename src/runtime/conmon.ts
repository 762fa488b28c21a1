/**
 * runc under conmon. Lifecycle of one container, all state on disk so a new
 * daemon can pick it up where a dead one left it:
 *
 *   create  bundle <stateDir>/<id>/config.json is written; conmon is spawned
 *           detached (it double-forks and setsid()s, so it is nobody's child
 *           of ours) and runs `runc create`; it reports the container pid, or
 *           runc's error, on the sync pipe (fd 3), then keeps the container's
 *           stdio, writes the k8s-file log and serves the attach socket.
 *   start   runc's start handshake done here (see releaseInit): the process
 *           execs the user's command.
 *   pause   the freezer cgroup set here (freeze), runc pause/resume as fallback.
 *   exit    conmon writes the exit code to <stateDir>/exits/<id> (atomic
 *           rename) and an `oom` file in the bundle if the cgroup OOMed.
 *   delete  runc's state forgotten (forgetStopped, else `runc delete --force`),
 *           conmon gone, cgroup and bundle removed.
 *
 * Files per container in the bundle: config.json, conmon.pid, pidfile,
 * attach (socket), ctl (fifo, window size), conmon.log, runc.log, oom.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { writeFileAtomic } from '../util/fs.js';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable, Writable } from 'node:stream';
import { BerthError, CommandNotRunnable, Conflict, InvalidParameter, NotFound, SystemError, errorMessage } from '../errors.js';
import { log } from '../log.js';
import { attachSocket } from './attach.js';
import { cgroupOomKilled, cgroupVersion, removeCgroup } from './cgroups.js';
import { conmonAlive, processIs, processStart } from './proc.js';
import { readRuncState } from './runc-state.js';
import type { OciResources, OciSpec } from './spec.js';

export interface RuntimeOptions {
  runtimePath: string;
  conmonPath: string;
  /** <exec-root>/containers: one bundle directory per container, plus exits/. */
  stateDir: string;
  /** runc --root, so several daemons on one host do not see each other's containers. */
  runtimeRoot: string;
}

export type RuntimeStatus = 'created' | 'running' | 'paused' | 'stopped';

/** How conmon wires the container's stdio. leaveStdinOpen: an attach client closing its input does not
 *  close the container's stdin (Docker's OpenStdin without StdinOnce, e.g. `docker run -di`). */
export interface CreateIO { logPath: string; tty: boolean; stdin: boolean; leaveStdinOpen?: boolean }

export interface Runtime {
  create(id: string, spec: OciSpec, io: CreateIO): Promise<{ pid: number; conmonPid: number }>;
  start(id: string): Promise<void>;
  kill(id: string, signal: string | number, all?: boolean): Promise<void>;
  state(id: string): Promise<{ status: RuntimeStatus; pid: number } | null>;
  exitCode(id: string): Promise<number | null>;
  waitExit(id: string): Promise<number>;
  oomKilled(id: string): boolean;
  delete(id: string): Promise<void>;
  list(): Promise<{ id: string; conmonAlive: boolean; exitCode: number | null }[]>;
  attach(id: string): Promise<{ stdin: Writable; stdout: Readable; stderr: Readable; close(): void }>;
  resize(id: string, height: number, width: number): Promise<void>;
  /** Freeze and thaw every process of the container (the freezer cgroup, or cgroup.freeze on v2). */
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  /** New cgroup limits for a running container. */
  update(id: string, resources: Omit<OciResources, 'devices'>): Promise<void>;
  /** The container's cgroupfs path (from its bundle), for stats and top. */
  cgroupsPath(id: string): string | undefined;
}

const SOCKET_PATH_MAX = 107;   // sun_path is 108 bytes including the NUL
const CREATE_TIMEOUT_MS = 60_000;
const EXITS = 'exits';

function validId(id: string): void {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(id)) throw new InvalidParameter(`invalid container id: ${JSON.stringify(id)}`);
}


function readIntFile(file: string): number | null {
  try {
    const n = parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

/** runc init, still waiting at the exec fifo for the start (it names itself so until it execs the command). */
function initWaiting(pid: number): boolean {
  return processIs(pid, 'runc:[2:INIT]');
}

/** runc logs errors as logfmt (`level=error msg="..."`) or JSON lines; pull out the messages. */
export function runcMessage(text: string): string {
  const msgs: string[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t) continue;
    if (t.startsWith('{')) {
      try {
        const j = JSON.parse(t) as { level?: string; msg?: string };
        if (j.msg && (j.level === 'error' || j.level === 'fatal')) msgs.push(j.msg);
        continue;
      } catch { /* not JSON after all */ }
    }
    const m = /level=(\w+) msg="((?:[^"\\]|\\.)*)"/.exec(t);
    if (m) {
      if (m[1] === 'error' || m[1] === 'fatal') msgs.push(JSON.parse(`"${m[2]}"`) as string);
    } else if (!/level=(warning|info|debug)/.test(t)) {
      msgs.push(t);
    }
  }
  return [...new Set(msgs)].join('; ');
}

class ConmonRuntime implements Runtime {
  private readonly exitsDir: string;
  /** Cgroup paths of containers we touched, so oomKilled() can stay synchronous and cheap. */
  private readonly cgroupPaths = new Map<string, string>();

  constructor(private readonly o: RuntimeOptions) {
    this.exitsDir = path.join(o.stateDir, EXITS);
  }

  private bundle(id: string): string {
    return path.join(this.o.stateDir, id);
  }

  private runc(args: string[], input?: string): Promise<{ stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = execFile(this.o.runtimePath, ['--root', this.o.runtimeRoot, ...args], { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (err) {
          const e = new SystemError(runcMessage(stderr) || errorMessage(err));
          reject(e);
        } else {
          resolve({ stdout, stderr });
        }
      });
      if (input !== undefined) child.stdin?.end(input);
    });
  }

  async create(id: string, spec: OciSpec, io: CreateIO): Promise<{ pid: number; conmonPid: number }> {
    validId(id);
    const bundle = this.bundle(id);
    const attachPath = path.join(bundle, 'attach');
    if (Buffer.byteLength(attachPath) > SOCKET_PATH_MAX) {
      throw new InvalidParameter(`state directory too deep for a unix socket path: ${attachPath}`);
    }
    if (fs.existsSync(path.join(bundle, 'config.json'))) throw new Conflict(`container ${id} already exists in the runtime`);
    fs.mkdirSync(this.exitsDir, { recursive: true });
    fs.mkdirSync(this.o.runtimeRoot, { recursive: true, mode: 0o700 });
    fs.mkdirSync(bundle, { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.dirname(io.logPath), { recursive: true });
    fs.rmSync(path.join(this.exitsDir, id), { force: true });
    writeFileAtomic(path.join(bundle, 'config.json'), JSON.stringify(spec, null, 2), 0o600);
    this.cgroupPaths.set(id, spec.linux.cgroupsPath);

    try {
      const pid = await this.spawnConmon(id, bundle, io);
      const conmonPid = readIntFile(path.join(bundle, 'conmon.pid'));
      if (!conmonPid) throw new SystemError('conmon did not write its pid file');
      return { pid, conmonPid };
    } catch (err) {
      await this.delete(id).catch((e: unknown) => log.warn('clean-up after failed create', { id, error: errorMessage(e) }));
      throw err;
    }
  }

  /** Runs conmon and returns the container pid it reports on the sync pipe, or throws runc's error. */
  private async spawnConmon(id: string, bundle: string, io: CreateIO): Promise<number> {
    const args = conmonArgs(this.o, {
      container: id, session: id, dir: bundle, pidfile: path.join(bundle, 'pidfile'), exitDir: this.exitsDir, log: `k8s-file:${io.logPath}`,
    });
    args.push('--persist-dir', bundle);
    if (io.stdin) args.push('-i');
    if (io.stdin && io.leaveStdinOpen) args.push('--leave-stdin-open');
    if (io.tty) args.push('-t');

    const child = startConmon(this.o.conmonPath, args, bundle, 1, { _OCI_SYNCPIPE: '3' });
    const sync = child.stdio[3] as Readable;
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.once('error', (err) => { log.error('spawn conmon', { error: errorMessage(err) }); resolve(-1); });
    });

    let text = '';
    const report = await new Promise<{ data: number; message?: string } | null>((resolve) => {
      const timer = setTimeout(() => { log.error('conmon create timed out', { id }); resolve(null); }, CREATE_TIMEOUT_MS);
      const done = (r: { data: number; message?: string } | null) => { clearTimeout(timer); sync.destroy(); resolve(r); };
      sync.setEncoding('utf8');
      sync.on('data', (chunk: string) => {
        text += chunk;
        const nl = text.indexOf('\n');
        if (nl < 0) return;
        try {
          done(JSON.parse(text.slice(0, nl)) as { data: number; message?: string });
        } catch {
          done(null);
        }
      });
      sync.on('end', () => done(null));
      sync.on('error', () => done(null));
    });
    const firstExit = await exited;
    child.unref();

    if (report && report.data > 0) return report.data;

    // Failure: the best message is runc's own, from its log or what conmon relayed.
    const runcLog = (() => { try { return fs.readFileSync(path.join(bundle, 'runc.log'), 'utf8'); } catch { return ''; } })();
    const conmonLog = (() => { try { return fs.readFileSync(path.join(bundle, 'conmon.log'), 'utf8'); } catch { return ''; } })();
    const msg = runcMessage(runcLog) || runcMessage(report?.message ?? '') || conmonLog.trim() || `conmon exited with ${String(firstExit)}`;
    throw startFailure(`OCI runtime create failed: ${msg}: unknown`, SystemError);
  }

  async start(id: string): Promise<void> {
    validId(id);
    try {
      if (!(await this.releaseInit(id))) await this.runc(['start', id]);
    } catch (err) {
      throw new SystemError(`OCI runtime start failed: ${errorMessage(err)}: unknown`);
    }
  }

  /**
   * `runc start` without a runc process, ~7 ms of every run: runc init waits to open
   * <runtimeRoot>/<id>/exec.fifo for writing; a reader lets it write one byte and exec the command,
   * and removing the fifo is what makes runc's state say "running". That is all runc start does for
   * a created container without poststart hooks (berth sets none). False where there is no fifo:
   * not in the created state, or a runtime without one; the caller then asks the runtime.
   */
  private async releaseInit(id: string): Promise<boolean> {
    const fifo = path.join(this.o.runtimeRoot, id, 'exec.fifo');
    const pid = readIntFile(path.join(this.bundle(id), 'pidfile'));
    if (!pid || !fs.existsSync(fifo)) return false;
    const dead = () => new SystemError('container process is already dead');
    // The open blocks (in the pool) until init opens its end. If init dies first, or is past the
    // handshake (a start cut short between it and the fifo's removal), a writer of our own ends the wait.
    if (initWaiting(pid)) {
      const opening = fs.promises.open(fifo, fs.constants.O_RDONLY);
      const watchdog = setInterval(() => {
        if (initWaiting(pid)) return;
        try { fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)); } catch { /* the open has returned */ }
      }, 50);
      const fifoFile = await opening.finally(() => clearInterval(watchdog));
      try {
        const { bytesRead } = await fifoFile.read(Buffer.alloc(1), 0, 1, null);
        if (bytesRead !== 1 && processStart(pid) === null) throw dead();
      } finally {
        await fifoFile.close();
      }
    } else if (processStart(pid) === null) {
      throw dead();
    }
    fs.rmSync(fifo, { force: true });
    return true;
  }

  /**
   * `runc delete` without a runc process, ~8 ms of every run: for a container whose init has exited,
   * runc delete removes its cgroups and its state directory, and so does this. False when runc must
   * do it: init still runs, processes are left in a cgroup (a container in another's pid namespace),
   * there are nested cgroups or poststop hooks, or the state is not runc's.
   */
  private forgetStopped(id: string): boolean {
    const state = readRuncState(this.o.runtimeRoot, id);
    if (!state) return false;
    const pid = state.init_process_pid;
    if (!pid || !state.cgroup_paths || state.config?.hooks?.poststop?.length) return false;
    if (processStart(pid) === String(state.init_process_start)) return false;
    for (const dir of Object.values(state.cgroup_paths)) {
      try {
        fs.rmdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return false;
      }
    }
    fs.rmSync(path.join(this.o.runtimeRoot, id), { recursive: true, force: true });
    return true;
  }

  async kill(id: string, signal: string | number, all = false): Promise<void> {
    validId(id);
    const sig = typeof signal === 'number' ? String(signal) : signal.toUpperCase().replace(/^SIG/, '');
    try {
      await this.runc(['kill', ...(all ? ['--all'] : []), id, sig]);
    } catch (err) {
      const msg = errorMessage(err);
      if (/does not exist/.test(msg)) throw new NotFound(`No such container: ${id}`);
      if (/not running|process already finished/.test(msg)) throw new Conflict(`Container ${id} is not running`);
      throw err;
    }
  }

  async state(id: string): Promise<{ status: RuntimeStatus; pid: number } | null> {
    validId(id);
    try {
      const { stdout } = await this.runc(['state', id]);
      const s = JSON.parse(stdout) as { status: RuntimeStatus; pid: number };
      return { status: s.status, pid: s.pid };
    } catch (err) {
      if (/does not exist/.test(errorMessage(err))) return null;
      throw err;
    }
  }

  async exitCode(id: string): Promise<number | null> {
    validId(id);
    return readIntFile(path.join(this.exitsDir, id));
  }

  async waitExit(id: string): Promise<number> {
    validId(id);
    const file = path.join(this.exitsDir, id);
    fs.mkdirSync(this.exitsDir, { recursive: true });
    return new Promise<number>((resolve, reject) => {
      let settled = false;
      const finish = (err: Error | null, code?: number) => {
        if (settled) return;
        settled = true;
        watcher.close();
        clearInterval(timer);
        if (err) reject(err);
        else resolve(code as number);
      };
      const check = () => {
        const code = readIntFile(file);
        if (code !== null) return finish(null, code);
        // A conmon that died without an exit file (kill -9, reboot) will never write one.
        const conmonPid = readIntFile(path.join(this.bundle(id), 'conmon.pid'));
        if (!conmonAlive(conmonPid)) {
          const again = readIntFile(file);
          if (again !== null) return finish(null, again);
          finish(new SystemError(`container ${id}: monitor (conmon) is gone without recording an exit code`));
        }
      };
      const watcher = fs.watch(this.exitsDir, (_ev, name) => { if (name === id) check(); });
      watcher.on('error', () => undefined);
      // The watch covers the normal case; the slow poll catches a dead conmon.
      const timer = setInterval(check, 1000);
      check();
    });
  }

  async pause(id: string): Promise<void> {
    validId(id);
    if (!(await this.freeze(id, true))) await this.runc(['pause', id]);
  }

  async resume(id: string): Promise<void> {
    validId(id);
    if (!(await this.freeze(id, false))) await this.runc(['resume', id]);
  }

  /**
   * What runc pause and resume do, without a runc process (~10 ms each): the container's freezer
   * (v1 freezer.state, v2 cgroup.freeze) set, then read until the kernel says every task is frozen,
   * writing again while it says FREEZING, as runc does. `runc state` reads the same files, so it says
   * paused. False when runc's record or the freezer is not found: runc then does it, in its words.
   */
  private async freeze(id: string, frozen: boolean): Promise<boolean> {
    const state = readRuncState(this.o.runtimeRoot, id);
    if (!state) return false;
    const v1 = cgroupVersion() === 1;
    const dir = state.cgroup_paths?.[v1 ? 'freezer' : ''];
    const control = dir && path.join(dir, v1 ? 'freezer.state' : 'cgroup.freeze');
    if (!control || !fs.existsSync(control)) return false;
    const want = v1 ? (frozen ? 'FROZEN' : 'THAWED') : (frozen ? '1' : '0');
    const reached = v1 ? () => fs.readFileSync(control, 'utf8').trim() === want
      : () => fs.readFileSync(path.join(dir, 'cgroup.events'), 'utf8').includes(`frozen ${want}`);
    for (let i = 0; i < 1000; i++) {
      fs.writeFileSync(control, want);
      if (reached()) return true;
      await sleep(i < 50 ? 1 : 10);
    }
    if (frozen) fs.writeFileSync(control, v1 ? 'THAWED' : '0');
    throw new SystemError(`unable to ${frozen ? 'freeze' : 'thaw'} container ${id}`);
  }

  async update(id: string, resources: Omit<OciResources, 'devices'>): Promise<void> {
    validId(id);
    await this.runc(['update', '--resources', '-', id], JSON.stringify(resources));
  }

  cgroupsPath(id: string): string | undefined {
    validId(id);
    return this.cgroupPath(id);
  }

  private cgroupPath(id: string): string | undefined {
    let p = this.cgroupPaths.get(id);
    if (p === undefined) {
      try {
        const spec = JSON.parse(fs.readFileSync(path.join(this.bundle(id), 'config.json'), 'utf8')) as OciSpec;
        p = spec.linux.cgroupsPath;
        this.cgroupPaths.set(id, p);
      } catch {
        return undefined;
      }
    }
    return p;
  }

  oomKilled(id: string): boolean {
    validId(id);
    if (fs.existsSync(path.join(this.bundle(id), 'oom'))) return true;
    const cg = this.cgroupPath(id);
    return cg !== undefined && cgroupOomKilled(cg);
  }

  async delete(id: string): Promise<void> {
    validId(id);
    const bundle = this.bundle(id);
    const cg = this.cgroupPath(id);
    // Neither a bundle nor runc's state (a removal after the exit's delete): a runc process would only say "does not exist".
    if ((fs.existsSync(bundle) || fs.existsSync(path.join(this.o.runtimeRoot, id))) && !this.forgetStopped(id)) {
      try {
        await this.runc(['delete', '--force', id]);
      } catch (err) {
        if (!/does not exist/.test(errorMessage(err))) log.warn('runc delete', { id, error: errorMessage(err) });
      }
    }
    // conmon notices the container's death, writes the exit file and leaves; wait so it does not
    // write into a bundle (or exit dir) we have already cleaned. It is usually gone within a few ms.
    const conmonPid = readIntFile(path.join(bundle, 'conmon.pid'));
    for (let i = 0; i < 500 && conmonAlive(conmonPid); i++) await sleep(2);
    if (conmonAlive(conmonPid)) {
      try { process.kill(conmonPid as number, 'SIGKILL'); } catch { /* gone */ }
      for (let i = 0; i < 50 && conmonAlive(conmonPid); i++) await sleep(20);
    }
    if (cg) removeCgroup(cg);
    fs.rmSync(bundle, { recursive: true, force: true });
    fs.rmSync(path.join(this.exitsDir, id), { force: true });
    this.cgroupPaths.delete(id);
  }

  async list(): Promise<{ id: string; conmonAlive: boolean; exitCode: number | null }[]> {
    let names: fs.Dirent[];
    try {
      names = fs.readdirSync(this.o.stateDir, { withFileTypes: true });
    } catch {
      return [];
    }
    const out: { id: string; conmonAlive: boolean; exitCode: number | null }[] = [];
    for (const e of names) {
      if (!e.isDirectory() || e.name === EXITS) continue;
      if (!fs.existsSync(path.join(this.o.stateDir, e.name, 'config.json'))) continue;
      out.push({
        id: e.name,
        conmonAlive: conmonAlive(readIntFile(path.join(this.o.stateDir, e.name, 'conmon.pid'))),
        exitCode: readIntFile(path.join(this.exitsDir, e.name)),
      });
    }
    return out;
  }

  async attach(id: string): Promise<{ stdin: Writable; stdout: Readable; stderr: Readable; close(): void }> {
    validId(id);
    const sock = path.join(this.bundle(id), 'attach');
    if (!fs.existsSync(sock)) throw new NotFound(`No such container: ${id}`);
    return attachSocket(sock);
  }

  async resize(id: string, height: number, width: number): Promise<void> {
    validId(id);
    const ctl = path.join(this.bundle(id), 'ctl');
    let fd: number;
    try {
      // Non-blocking: conmon holds the read end; if it is gone, ENXIO instead of hanging.
      fd = fs.openSync(ctl, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    } catch (err) {
      throw new Conflict(`cannot resize container ${id}: ${errorMessage(err)}`);
    }
    try {
      fs.writeSync(fd, `1 ${Math.trunc(height)} ${Math.trunc(width)}\n`);
    } finally {
      fs.closeSync(fd);
    }
  }
}

export function createRuntime(o: RuntimeOptions): Runtime {
  return new ConmonRuntime(o);
}

/** The arguments every conmon we start shares: the session, its bundle dir, runc with our root and a JSON log in dir. */
export function conmonArgs(
  o: { runtimePath: string; runtimeRoot: string },
  s: { container: string; session: string; dir: string; pidfile: string; exitDir: string; log: string },
): string[] {
  return [
    '--api-version', '1',
    '-c', s.container, '-u', s.session, '-n', s.session,
    '-r', o.runtimePath,
    '-b', s.dir,
    '-p', s.pidfile,
    '-P', path.join(s.dir, 'conmon.pid'),
    '--exit-dir', s.exitDir,
    '--full-attach',
    '--socket-dir-path', s.dir,
    '-l', s.log,
    '--log-level', 'warning',
    '--runtime-arg', `--root=${o.runtimeRoot}`,
    '--runtime-arg', `--log=${path.join(s.dir, 'runc.log')}`,
    '--runtime-arg', '--log-format=json',
  ];
}

/**
 * Starts conmon detached with `pipes` extra pipes from fd 3 on. Its own output goes to
 * dir/conmon.log: a pipe we later close would kill it with SIGPIPE.
 */
export function startConmon(conmonPath: string, args: string[], dir: string, pipes: number, env: Record<string, string>): ChildProcess {
  const out = fs.openSync(path.join(dir, 'conmon.log'), 'a');
  try {
    return spawn(conmonPath, args, {
      cwd: dir,
      detached: true,
      stdio: ['ignore', out, out, ...Array<'pipe'>(pipes).fill('pipe')],
      env: { ...process.env, ...env },
    });
  } finally {
    fs.closeSync(out);
  }
}

/**
 * What runc's message says of the command it could not run: 127 when it was not found,
 * 126 when it could not be executed, null when the failure was something else. Docker's
 * exit codes for `run` and `exec` both come from here.
 */
export function commandFailureCode(message: string): 127 | 126 | null {
  if (/executable file not found|no such file or directory|system cannot find the file specified/.test(message)) return 127;
  if (/permission denied|cannot execute/i.test(message)) return 126;
  return null;
}

/** runc's message for a process it could not start, read once into the class of the failure. */
export function startFailure(message: string, Other: new (message: string) => BerthError): BerthError {
  const code = commandFailureCode(message);
  return code ? new CommandNotRunnable(message, code) : new Other(message);
}
