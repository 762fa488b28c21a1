/**
 * What berth-exec (native/berth-exec.c) needs to start a process in a running container: the
 * container's init as runc recorded it (<runtimeRoot>/<id>/state.json: pid, start time, cgroups) and
 * the seccomp filter runc installed on it, and the OCI process flattened into argv.
 *
 * The filter is read from init once per container start, by `berth-exec --dump-seccomp` at the
 * first exec, into <bundle>/seccomp-<start>.bpf: later execs (and health probes) read that file
 * instead of ptrace-stopping init each time, and a restarted daemon finds it again. The start time in
 * the name ties it to one run of the container; a restart leaves a new one and removes the old.
 *
 * prepare() answers null when runc exec must do the work instead: no state.json (another runtime),
 * a process asking for what berth-exec does not do (LSM labels, names it does not know), or a filter
 * that could not be read (berthd itself under seccomp cannot read another's).
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { errorMessage } from '../errors.js';
import { log } from '../log.js';
import { runcStatePath, type RuncState } from './runc-state.js';
import { capabilityMask } from './spec.js';
import type { OciProcess } from './spec.js';

export interface NativeExecOptions {
  helperPath: string;
  runtimeRoot: string;
  bundlesDir: string;
}

export interface NativeExec {
  readonly helperPath: string;
  /** berth-exec's arguments for this process in this container, or null: use runc exec. */
  prepare(containerId: string, proc: OciProcess): Promise<string[] | null>;
  /** Drop what was read of the container's init. */
  forget(containerId: string): void;
}

interface Target {
  pid: number;
  start: string;
  cgroups: string[];
  /** The dumped filter, or null once reading it failed. */
  seccomp: Promise<string | null>;
}


/** RLIMIT_* numbers of Linux (asm-generic), the ones an OCI spec names. */
const RLIMITS: Record<string, number> = {
  RLIMIT_CPU: 0, RLIMIT_FSIZE: 1, RLIMIT_DATA: 2, RLIMIT_STACK: 3, RLIMIT_CORE: 4, RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6, RLIMIT_NOFILE: 7, RLIMIT_MEMLOCK: 8, RLIMIT_AS: 9, RLIMIT_LOCKS: 10, RLIMIT_SIGPENDING: 11,
  RLIMIT_MSGQUEUE: 12, RLIMIT_NICE: 13, RLIMIT_RTPRIO: 14, RLIMIT_RTTIME: 15,
};

function rlimitValue(v: number): string {
  return v < 0 || v >= 2 ** 63 ? '-1' : String(Math.trunc(v));
}

/** The OCI process as berth-exec's options, or null when it asks for something berth-exec does not do. */
function processArgs(proc: OciProcess): string[] | null {
  const p = proc as OciProcess & { apparmorProfile?: string; selinuxLabel?: string };
  if (p.apparmorProfile || p.selinuxLabel) return null;
  const a: string[] = [];
  for (const r of p.rlimits ?? []) {
    const n = RLIMITS[r.type];
    if (n === undefined) return null;
    a.push('--rlimit', `${n}:${rlimitValue(r.soft)}:${rlimitValue(r.hard)}`);
  }
  const c = p.capabilities;
  const masks = [c.bounding, c.effective, c.permitted, c.inheritable ?? [], c.ambient ?? []].map(capabilityMask);
  if (masks.includes(null)) return null;
  a.push('--caps', masks.join(':'));
  if (p.noNewPrivileges) a.push('--nnp');
  a.push('--uid', String(p.user.uid), '--gid', String(p.user.gid), '--groups', (p.user.additionalGids ?? []).join(','));
  if (p.cwd) a.push('--cwd', p.cwd);
  if (p.oomScoreAdj !== undefined) a.push('--oom-score-adj', String(p.oomScoreAdj));
  for (const e of p.env) a.push('--env', e);
  a.push('--', ...p.args);
  return a;
}

class HelperExec implements NativeExec {
  /** Per container: the state.json it was read from (inode, mtime, size) and what it said. */
  private readonly targets = new Map<string, { key: string; target: Target | null }>();

  constructor(private readonly o: NativeExecOptions) {}

  get helperPath(): string {
    return this.o.helperPath;
  }

  async prepare(containerId: string, proc: OciProcess): Promise<string[] | null> {
    const rest = processArgs(proc);
    if (!rest) return null;
    const t = this.target(containerId);
    if (!t) return null;
    const seccomp = await t.seccomp;
    if (seccomp === null) return null;
    const a = ['--pid', String(t.pid), '--start', t.start, '--id', containerId, '--seccomp', seccomp];
    for (const dir of t.cgroups) a.push('--cgroup', dir);
    return [...a, ...rest];
  }

  forget(containerId: string): void {
    this.targets.delete(containerId);
  }

  /** runc's record of the container's init, read again only when state.json changed. */
  private target(id: string): Target | null {
    const file = runcStatePath(this.o.runtimeRoot, id);
    let key: string;
    try {
      const st = fs.statSync(file);
      key = `${st.ino}:${st.mtimeMs}:${st.size}`;
    } catch {
      this.targets.delete(id);
      return null;
    }
    const cached = this.targets.get(id);
    if (cached?.key === key) return cached.target;
    let target: Target | null = null;
    try {
      const s = JSON.parse(fs.readFileSync(file, 'utf8')) as RuncState;
      const pid = s.init_process_pid ?? 0;
      const start = String(s.init_process_start ?? '');
      if (pid > 0 && /^\d+$/.test(start)) {
        target = { pid, start, cgroups: Object.values(s.cgroup_paths ?? {}).filter((p) => p !== ''), seccomp: this.seccompFile(id, pid, start) };
      }
    } catch (err) {
      log.warn('exec: cannot read runc state', { id, error: errorMessage(err) });
    }
    this.targets.set(id, { key, target });
    return target;
  }

  /** <bundle>/seccomp-<start>.bpf, dumped from init unless an earlier exec (or daemon) did. */
  private async seccompFile(id: string, pid: number, start: string): Promise<string | null> {
    const bundle = path.join(this.o.bundlesDir, id);
    const name = `seccomp-${start}.bpf`;
    const file = path.join(bundle, name);
    if (fs.existsSync(file)) return file;
    try {
      await new Promise<void>((resolve, reject) => {
        execFile(this.o.helperPath, ['--dump-seccomp', String(pid), start, file], (err, _out, stderr) => {
          if (err) reject(new Error(stderr.trim() || errorMessage(err)));
          else resolve();
        });
      });
    } catch (err) {
      log.warn('exec: cannot read the container\'s seccomp filter; execs go through runc', { id, error: errorMessage(err) });
      return null;
    }
    try {
      for (const f of fs.readdirSync(bundle)) {
        if (f.startsWith('seccomp-') && f !== name) fs.rmSync(path.join(bundle, f), { force: true });
      }
    } catch { /* the container went meanwhile */ }
    return file;
  }
}

/** berth-exec when its binary is there; null (runc exec for everything) when it is not. */
export function nativeExec(o: NativeExecOptions): NativeExec | null {
  try {
    fs.accessSync(o.helperPath, fs.constants.X_OK);
  } catch {
    log.info('exec: no berth-exec helper, execs go through runc', { path: o.helperPath });
    return null;
  }
  return new HelperExec(o);
}
