/**
 * Extra processes in a running container (`docker exec`).
 *
 * An attached exec without a tty (the docker CLI's `exec c cmd`, health probes) is run by berthd
 * itself with three pipes as the process's stdio: nothing stands between the client's stream and
 * the process, and the exit code is its runner's exit status. The runner is berth-exec (native/,
 * see native-exec.ts), which enters the container in a few milliseconds where `runc exec` takes
 * ~40; runc exec stays for what berth-exec does not cover (native-exec.ts says what). A tty or a detached
 * exec goes through conmon in exec mode instead (conmon calls `runc exec --process <spec>`), as
 * conmon receives the pty (Node cannot take an fd over SCM_RIGHTS by itself) and outlives berthd,
 * so `exec -d` runs on after a `kill -9` of the daemon.
 *
 * Lifecycle of one exec, all of it under <bundlesDir>/exec/<execId12>/:
 *
 *   native  no directory: berth-exec reports "pid N" on fd 3 once the command is exec'd, or
 *           "error <runc's words>"; it exits with the process's code (128+n for signal n).
 *   direct  process.json is written; runc exec runs with --pid-file: once that file exists the
 *           command runs; a runc that exits without it failed to start it (its words are in
 *           runc.log). runc exits with the process's code (128+n when signal n ended it).
 *   conmon  conmon is spawned with three pipes: sync (fd 3: the pid, or runc's error, then the
 *           exit code), start (fd 4: "go") and attach (fd 5: "the attach socket is ready").
 *           When attached, we connect to the socket *before* letting runc start, so not a byte
 *           of output is lost. conmon reports the exit code on the sync pipe, closes the attach
 *           socket (our output streams end) and exits; EOF on the sync pipe means it is gone,
 *           and the directory is removed.
 *
 * Nothing is persisted: like dockerd, a restarted daemon forgets exec sessions (sweep() removes
 * the directories of ones whose conmon is gone). A direct exec outlives its client (its output is
 * read and dropped) but not berthd: once the daemon is gone its pipes are, and its next write fails.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { Conflict, ExecStartFailed, InvalidParameter, SystemError, errorMessage } from '../errors.js';
import { log } from '../log.js';
import { attachSocket, type AttachStreams } from './attach.js';
import { conmonArgs, runcMessage, startConmon, startFailure } from './conmon.js';
import { nativeExec, type NativeExec } from './native-exec.js';
import { conmonAlive } from './proc.js';
import type { OciProcess, OciSpec } from './spec.js';

export interface ExecRuntimeOptions {
  runtimePath: string;
  conmonPath: string;
  /** runc --root, the same as the containers'. */
  runtimeRoot: string;
  /**
   * The containers' bundles (<bundlesDir>/<id>/config.json), whose process an exec starts from.
   * Running execs keep one short directory each under <bundlesDir>/exec/ (attach socket paths
   * must fit in 107 bytes).
   */
  bundlesDir: string;
  /** berth-exec; default: the one `npm run build` puts in dist/native/; null: runc exec only. */
  helperPath?: string | null;
}

/** dist/native/berth-exec beside dist/src/runtime/exec.js. */
const BUILT_HELPER = fileURLToPath(new URL('../../native/berth-exec', import.meta.url));

export interface ExecIO {
  tty: boolean;
  /** Give the process a stdin pipe fed from the attach socket. */
  stdin: boolean;
  /** Connect to the process's stdio; false for `exec -d` (output is discarded). */
  attach: boolean;
}

export interface ExecProcess {
  pid: number;
  /** The process's stdio when attached: stdout/stderr end when it has exited and all output is read. */
  streams: AttachStreams | null;
  /** Resolves with the exit code once the process is gone (128+n when killed by signal n). */
  exit: Promise<number>;
  /** Window size of the exec's pty. */
  resize(height: number, width: number): void;
}


export interface ExecRuntime {
  /** The container's own process spec (capabilities, rlimits...), the base of every exec in it. */
  containerProcess(containerId: string): OciProcess;
  exec(containerId: string, execId: string, process: OciProcess, io: ExecIO): Promise<ExecProcess>;
  /** After a daemon restart: remove the directories of execs whose conmon is gone, and of the others once it goes. */
  sweep(): void;
  /** The container stopped or went: drop what was kept of its init for later execs. */
  forget(containerId: string): void;
}

const SOCKET_PATH_MAX = 107;
const START_TIMEOUT_MS = 60_000;

interface SyncMessage { data: number; message?: string }

function validId(id: string): void {
  if (!/^[0-9a-f]{64}$/.test(id)) throw new InvalidParameter(`invalid container id: ${JSON.stringify(id)}`);
}

/** conmon's JSON lines on a pipe, one at a time. */
class LineReader {
  private buf = '';
  private waiters: Array<(m: SyncMessage | null) => void> = [];
  private queue: Array<SyncMessage | null> = [];
  private ended = false;

  constructor(stream: Readable) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      this.buf += chunk;
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (!line) continue;
        try {
          this.push(JSON.parse(line) as SyncMessage);
        } catch {
          log.warn('conmon sent a line that is not JSON', { line });
        }
      }
    });
    const end = () => {
      if (this.ended) return;
      this.ended = true;
      this.push(null);
    };
    stream.on('end', end);
    stream.on('close', end);
    stream.on('error', end);
  }

  private push(m: SyncMessage | null): void {
    const w = this.waiters.shift();
    if (w) w(m);
    else this.queue.push(m);
  }

  /** The next message; null once the writer has closed its end. */
  next(): Promise<SyncMessage | null> {
    if (this.queue.length) {
      const m = this.queue.shift() as SyncMessage | null;
      if (m === null) this.queue.push(null); // stays at EOF
      return Promise.resolve(m);
    }
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_r, reject) => { timer = setTimeout(() => reject(new SystemError(`timed out waiting for ${what}`)), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

class ConmonExecRuntime implements ExecRuntime {
  private readonly stateDir: string;
  private readonly native: NativeExec | null;

  constructor(private readonly o: ExecRuntimeOptions) {
    this.stateDir = path.join(o.bundlesDir, 'exec');
    const helperPath = o.helperPath === undefined ? BUILT_HELPER : o.helperPath;
    this.native = helperPath === null ? null : nativeExec({ helperPath, runtimeRoot: o.runtimeRoot, bundlesDir: o.bundlesDir });
  }

  containerProcess(containerId: string): OciProcess {
    validId(containerId);
    try {
      return (JSON.parse(fs.readFileSync(path.join(this.o.bundlesDir, containerId, 'config.json'), 'utf8')) as OciSpec).process;
    } catch (err) {
      throw new Conflict(`Container ${containerId} is not running: ${errorMessage(err)}`);
    }
  }

  forget(containerId: string): void {
    this.native?.forget(containerId);
  }

  sweep(): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.stateDir);
    } catch {
      return;
    }
    for (const name of names) {
      const dir = path.join(this.stateDir, name);
      let pid = 0;
      try { pid = parseInt(fs.readFileSync(path.join(dir, 'conmon.pid'), 'utf8'), 10); } catch { /* never started */ }
      if (pid > 0 && conmonAlive(pid)) {
        // An exec a previous daemon started: nobody waits for it any more, but its files go when it ends.
        const timer = setInterval(() => {
          if (conmonAlive(pid)) return;
          clearInterval(timer);
          fs.rmSync(dir, { recursive: true, force: true });
        }, 1000);
        timer.unref();
        continue;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  async exec(containerId: string, execId: string, proc: OciProcess, io: ExecIO): Promise<ExecProcess> {
    validId(containerId);
    if (!/^[0-9a-f]{12,}$/.test(execId)) throw new InvalidParameter(`invalid exec id: ${JSON.stringify(execId)}`);
    if (io.attach && !io.tty && this.native) {
      const args = await this.native.prepare(containerId, proc);
      if (args) return this.helper(this.native.helperPath, args, io);
    }
    const dir = path.join(this.stateDir, execId.slice(0, 12));
    if (Buffer.byteLength(path.join(dir, 'attach')) > SOCKET_PATH_MAX) {
      throw new InvalidParameter(`state directory too deep for a unix socket path: ${dir}`);
    }
    if (fs.existsSync(dir)) throw new Conflict(`exec ${execId} is already running`);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
    try {
      // Read once by runc right away and never again: no need to make it durable.
      fs.writeFileSync(path.join(dir, 'process.json'), JSON.stringify(proc), { mode: 0o600 });
      if (io.attach && !io.tty) return await this.direct(containerId, dir, io, cleanup);
      return await this.spawn(containerId, execId, dir, io, cleanup);
    } catch (err) {
      cleanup();
      throw err;
    }
  }

  /** `runc exec` as our own child, its stdio our pipes (see the header). Resolves once the command runs. */
  private async direct(containerId: string, dir: string, io: ExecIO, cleanup: () => void): Promise<ExecProcess> {
    const pidFile = path.join(dir, 'pid');
    const child = spawn(this.o.runtimePath, [
      '--root', this.o.runtimeRoot, '--log', path.join(dir, 'runc.log'), '--log-format', 'json',
      'exec', '--process', path.join(dir, 'process.json'), '--pid-file', pidFile, containerId,
    ], { stdio: [io.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'], detached: true });
    const exited = exitCode(child, 'runc exec');
    const readPid = (): number => {
      try { return parseInt(fs.readFileSync(pidFile, 'utf8'), 10) || 0; } catch { return 0; }
    };
    // runc writes the pid file (by rename) once the command has been exec'd in the container.
    let watcher: fs.FSWatcher | undefined;
    const pid = await new Promise<number>((resolve) => {
      watcher = fs.watch(dir, () => { const p = readPid(); if (p > 0) resolve(p); });
      const p = readPid();
      if (p > 0) resolve(p);
      void exited.then(() => resolve(readPid()));
    }).finally(() => watcher?.close());
    if (pid <= 0) {
      // runc printed its error on stderr too: the client gets docker's wording from the log instead.
      destroyStdio(child);
      await exited;
      const message = this.failure(dir, null, 'runc exec exited before the process started');
      cleanup();
      throw startFailure(message, ExecStartFailed);
    }
    // The directory goes after the exit is reported, off the event loop (no part of the exec).
    return attached(child, pid, exited, () => void fs.promises.rm(dir, { recursive: true, force: true }).catch(() => undefined));
  }

  /** berth-exec as our own child, its stdio our pipes, fd 3 its report (see the header). Resolves once the command runs. */
  private async helper(helperPath: string, args: string[], io: ExecIO): Promise<ExecProcess> {
    const child = spawn(helperPath, args, { stdio: [io.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe', 'pipe'], detached: true });
    const exited = exitCode(child, 'berth-exec');
    const report = await firstLine(child.stdio[3] as Readable);
    const pid = /^pid (\d+)$/.exec(report)?.[1];
    if (!pid) {
      destroyStdio(child);
      await exited;
      const msg = report.startsWith('error ') ? report.slice(6) : 'berth-exec exited before the process started';
      throw startFailure(`OCI runtime exec failed: ${msg}: unknown`, ExecStartFailed);
    }
    return attached(child, Number(pid), exited, () => undefined);
  }

  private async spawn(containerId: string, execId: string, dir: string, io: ExecIO, cleanup: () => void): Promise<ExecProcess> {
    // The exit file is named after the container: it must not land in the containers' exit dir.
    const args = conmonArgs(this.o, { container: containerId, session: execId, dir, pidfile: path.join(dir, 'pid'), exitDir: dir, log: 'none:' });
    args.push(
      '--exec',
      '--exec-process-spec', path.join(dir, 'process.json'),
    );
    if (io.attach) args.push('--exec-attach');
    if (io.stdin) args.push('-i');
    if (io.tty) args.push('-t');

    const child = startConmon(this.o.conmonPath, args, dir, 3, { _OCI_SYNCPIPE: '3', _OCI_STARTPIPE: '4', ...(io.attach ? { _OCI_ATTACHPIPE: '5' } : {}) });
    child.on('error', (err) => log.error('spawn conmon (exec)', { error: errorMessage(err) }));
    child.unref();
    const pipes = child.stdio as unknown as Array<Readable | Writable | null>;
    const sync = new LineReader(pipes[3] as Readable);
    const start = pipes[4] as Writable;
    start.on('error', () => undefined);
    const attachPipe = pipes[5] as Readable;
    const closePipes = () => {
      start.destroy();
      attachPipe.destroy();
    };

    let streams: AttachStreams | null = null;
    try {
      // First "go": conmon forks and sets up its sockets.
      start.write('0');
      if (io.attach) {
        const ready = new LineReader(attachPipe);
        const msg = await withTimeout(ready.next(), START_TIMEOUT_MS, 'conmon attach socket');
        if (msg === null) throw new SystemError(this.failure(dir, null, 'conmon exited before its attach socket was ready'));
        streams = attachSocket(path.join(dir, 'attach'));
        // Second "go": runc exec may start now that we are listening.
        start.write('0');
      }
      const first = await withTimeout(sync.next(), START_TIMEOUT_MS, 'runc exec');
      if (first === null || first.data <= 0) {
        const message = this.failure(dir, first, `conmon exited with no report`);
        throw startFailure(message, ExecStartFailed);
      }
      const pid = first.data;
      const exit = (async () => {
        const last = await sync.next();
        // EOF on the sync pipe: conmon has exited (the pipe is close-on-exec in the process it runs).
        const conmonGone = (async () => {
          if (last !== null) while ((await sync.next()) !== null) { /* drain */ }
          closePipes();
        })();
        let code = last?.data ?? null;
        if (code !== null && code >= 0) {
          // The code is known: the caller need not wait for conmon to leave; the directory goes once it has.
          void conmonGone.then(cleanup);
          return code;
        }
        await conmonGone;
        try { code = parseInt(fs.readFileSync(path.join(dir, containerId), 'utf8'), 10); } catch { code = null; }
        cleanup();
        return code === null || !Number.isFinite(code) || code < 0 ? 137 : code;
      })();
      return {
        pid,
        streams,
        exit,
        resize: (height, width) => this.resize(dir, height, width),
      };
    } catch (err) {
      streams?.close();
      closePipes();
      // A conmon still waiting for "go" would linger: it is ours alone, end it.
      const pidFile = path.join(dir, 'conmon.pid');
      try {
        const pid = parseInt(fs.readFileSync(pidFile, 'utf8'), 10);
        if (pid > 0 && conmonAlive(pid)) process.kill(pid, 'SIGKILL');
      } catch { /* not written */ }
      // Let conmon leave before the directory it works in is removed.
      await withTimeout(waitNull(sync), 5000, 'conmon to exit').catch(() => undefined);
      throw err;
    }
  }

  /** runc's own words for why the exec failed, as docker phrases it. */
  private failure(dir: string, report: SyncMessage | null, fallback: string): string {
    let runcLog = '';
    try { runcLog = fs.readFileSync(path.join(dir, 'runc.log'), 'utf8'); } catch { /* none */ }
    let conmonLog = '';
    try { conmonLog = fs.readFileSync(path.join(dir, 'conmon.log'), 'utf8').trim(); } catch { /* none */ }
    const msg = runcMessage(runcLog) || runcMessage(report?.message ?? '') || conmonLog || fallback;
    return `OCI runtime exec failed: ${msg}: unknown`;
  }

  private resize(dir: string, height: number, width: number): void {
    let fd: number;
    try {
      fd = fs.openSync(path.join(dir, 'ctl'), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    } catch (err) {
      throw new Conflict(`cannot resize exec: ${errorMessage(err)}`);
    }
    try {
      fs.writeSync(fd, `1 ${Math.trunc(height)} ${Math.trunc(width)}\n`);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** The runner's exit status (the process's code, 128+n for signal n); -1 when it could not be spawned. */
function exitCode(child: ChildProcess, what: string): Promise<number> {
  return new Promise<number>((resolve) => {
    child.on('error', (err) => {
      log.error(`spawn ${what}`, { error: errorMessage(err) });
      resolve(-1);
    });
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 9)));
  });
}

/** The first line a stream carries ('' when it ends without one); the stream is closed after it. */
function firstLine(stream: Readable): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const done = () => {
      stream.destroy();
      const nl = text.indexOf('\n');
      resolve(nl >= 0 ? text.slice(0, nl) : '');
    };
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      text += chunk;
      if (text.includes('\n')) done();
    });
    stream.on('end', done);
    stream.on('error', done);
  });
}

function destroyStdio(child: ChildProcess): void {
  child.stdout?.destroy();
  child.stderr?.destroy();
  child.stdin?.destroy();
}

/** A started process whose stdio is the child's pipes; its exit code is the child's. */
function attached(child: ChildProcess, pid: number, exited: Promise<number>, afterExit: () => void): ExecProcess {
  const [stdin, stdout, stderr] = [child.stdin, child.stdout, child.stderr] as [Writable | null, Readable, Readable];
  stdin?.on('error', () => undefined);
  let closed = false;
  const streams: AttachStreams = {
    stdin: stdin ?? devNullWritable(),
    stdout,
    stderr,
    close: () => {
      if (closed) return;
      closed = true;
      // The client went: the process runs on (as under dockerd), its output read and dropped.
      stdin?.destroy();
      stdout.resume();
      stderr.resume();
    },
  };
  const exit = exited.then((code) => {
    afterExit();
    return code < 0 ? 137 : code;
  });
  return { pid, streams, exit, resize: () => undefined };
}

/** stdin of an exec without one: input is dropped. */
function devNullWritable(): Writable {
  return new PassThrough().resume();
}

async function waitNull(r: LineReader): Promise<void> {
  while ((await r.next()) !== null) { /* drain */ }
}

export function createExecRuntime(o: ExecRuntimeOptions): ExecRuntime {
  return new ConmonExecRuntime(o);
}
