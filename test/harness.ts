/**
 * End-to-end test harness: each test starts its own berthd on private directories and removes
 * everything it left behind.
 *
 * Lifecycle of a Daemon:
 *   startDaemon()  → temp dirs /tmp/berth-e2e-XXXX/{data,exec}, socket <exec>/berth.sock, a random
 *                    cgroup parent; spawns bin/berthd (output appended to <root>/berthd.log) and
 *                    resolves once GET /_ping answers OK (15 s, else throws with the log tail).
 *                    Options: extraArgs, config (a daemon.json), rootsIn: 'config' (the roots,
 *                    socket, pidfile and cgroup parent as daemon.json keys instead of flags).
 *   berth()/docker()/api()  → talk to it (berth CLI, real docker CLI, raw HTTP over the socket).
 *   kill9()        → SIGKILL only; containers (under conmon) are meant to survive.
 *   restart()      → SIGKILL if still running (or SIGTERM with {graceful: true}), then start again
 *                    on the same directories.
 *   stop()         → SIGTERM (SIGKILL after 10 s), then cleanupHost(): kills this daemon's conmon,
 *                    runc and container processes, unmounts everything under its roots, removes its
 *                    cgroups in every hierarchy and deletes the temp dirs. Works after a crash too.
 *   leftovers()    → what the daemon itself failed to clean (mounts, cgroups, monitor processes,
 *                    files and container-id dirs in <exec>/c); a clean daemon with no
 *                    containers reports nothing.
 *
 * If the test process is interrupted (SIGINT/SIGTERM) or exits with daemons still running, they are
 * killed and cleaned up synchronously, so a crashed test run leaves nothing on the host.
 */
import { spawn, spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { constants as osConstants } from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { MNT_DETACH, umount } from '../src/sys/index.js';
import { hostRoutes, overlaps, parseCidr } from '../src/network/ipam.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string | Buffer;
  /** Default 60 s. On timeout the command is SIGKILLed and the call rejects with its output so far. */
  timeoutMs?: number;
  /** Extra environment on top of the daemon's env. */
  env?: NodeJS.ProcessEnv;
}

export interface ApiResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON when the body is one JSON document; otherwise the text (e.g. JSON-lines progress). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

export interface ApiOptions {
  headers?: Record<string, string>;
  /** Default 30 s. */
  timeoutMs?: number;
}

/** The host resources a daemon can leave behind; enough to find and remove them without the daemon. */
export interface DaemonTarget {
  /** The temp dir holding data/ and exec/ (removed by cleanup). */
  root: string;
  dataRoot: string;
  execRoot: string;
  cgroupParent: string;
  /** The daemon's default bridge; its iptables chains are named after it (BERTH-<bridge>-…). */
  bridge?: string;
}

export interface Leftovers {
  mounts: string[];
  cgroups: string[];
  processes: string[];
  files: string[];
}

export interface Daemon extends DaemonTarget {
  socket: string;
  /** unix://<socket> */
  host: string;
  /** process.env with DOCKER_HOST, BERTH_HOST and private DOCKER_CONFIG and BERTH_CONFIG set. */
  env: NodeJS.ProcessEnv;
  logFile: string;
  /** The daemon's pid (from its pidfile once written, else the spawned process). */
  readonly pid: number;
  berth(args: string[], opts?: RunOptions): Promise<RunResult>;
  docker(args: string[], opts?: RunOptions): Promise<RunResult>;
  api(method: string, path: string, body?: unknown, opts?: ApiOptions): Promise<ApiResponse>;
  kill9(): Promise<void>;
  restart(opts?: { graceful?: boolean; extraArgs?: string[] }): Promise<void>;
  stop(): Promise<void>;
}

export interface StartOptions {
  extraArgs?: string[];
  /** Written as <root>/daemon.json and passed with --config-file. */
  config?: object;
  /** Default 15 s. */
  readyTimeoutMs?: number;
  /**
   * Where the harness puts its data/exec roots, socket, pidfile, cgroup parent and group: as flags
   * (default), or as the matching keys of daemon.json (merged under config), to test the file.
   */
  rootsIn?: 'flags' | 'config';
}

// ---------------------------------------------------------------------------------------------
// Paths

function findRepoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && fs.existsSync(path.join(dir, 'scripts'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('harness: cannot find the berth repository root');
    dir = up;
  }
}

export const repoRoot = findRepoRoot();
/** Overridable so the harness can be pointed at an installed berth or, in its self-test, a fake daemon. */
export const paths = {
  berthd: process.env.BERTH_TEST_BERTHD ?? path.join(repoRoot, 'bin', 'berthd'),
  berth: process.env.BERTH_TEST_BERTH ?? path.join(repoRoot, 'bin', 'berth'),
  /** A docker CLI installed by hand in /usr/local/bin, else Debian's (docker.io, which scripts/test.sh installs). */
  docker: process.env.BERTH_TEST_DOCKER ?? (fs.existsSync('/usr/local/bin/docker') ? '/usr/local/bin/docker' : '/usr/bin/docker'),
};

// ---------------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Run a command to completion, collecting its output. */
export function run(cmd: string, args: string[], opts: RunOptions & { cwd?: string } = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
      // A grandchild may hold the pipes open; do not wait for it.
      child.stdout.destroy();
      child.stderr.destroy();
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`harness: cannot run ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const res = {
        code: code ?? 128 + (signal ? osConstants.signals[signal] : 0),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      };
      if (timedOut) {
        reject(
          new Error(
            `harness: ${path.basename(cmd)} ${args.join(' ')} timed out after ${timeoutMs} ms\n` +
              `stdout: ${res.stdout}\nstderr: ${res.stderr}`,
          ),
        );
      } else resolve(res);
    });
    // The command may exit without reading its input; that is not the caller's error.
    child.stdin.on('error', () => {});
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}


/** curl of a URL, at most 5 s: its exit code (0 when it got an answer) and the body. */
export async function curl(url: string): Promise<{ code: number; out: string }> {
  const r = await run('curl', ['-s', '--max-time', '5', url], { timeoutMs: 15_000 });
  return { code: r.code, out: r.stdout };
}

interface RequestOptions {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | Readable;
  timeoutMs: number;
}

function request(socket: string, o: RequestOptions): Promise<{ status: number; headers: http.IncomingHttpHeaders; raw: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, method: o.method, path: o.path, headers: o.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, raw: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(o.timeoutMs, () => req.destroy(new Error(`harness: ${o.method} ${o.path} timed out after ${o.timeoutMs} ms`)));
    req.on('error', reject);
    if (o.body === undefined) req.end();
    else if (Buffer.isBuffer(o.body)) req.end(o.body);
    else {
      o.body.on('error', (e) => req.destroy(e));
      o.body.pipe(req);
    }
  });
}

/** One Engine API call over a unix socket (any engine's: the benches use it for dockerd too); an object body is sent as JSON. */
export async function socketApi(socket: string, method: string, p: string, body?: unknown, opts: ApiOptions = {}): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  let raw: Buffer | undefined;
  if (body === undefined) raw = undefined;
  else if (Buffer.isBuffer(body)) raw = body;
  else if (typeof body === 'string') raw = Buffer.from(body);
  else {
    raw = Buffer.from(JSON.stringify(body));
    headers['Content-Type'] ??= 'application/json';
  }
  const r = await request(socket, { method, path: p, headers, body: raw, timeoutMs: opts.timeoutMs ?? 30_000 });
  return { status: r.status, headers: r.headers, body: decodeBody(r.raw) };
}

function decodeBody(raw: Buffer): unknown {
  const text = raw.toString();
  if (text.trim() === '') return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// ---------------------------------------------------------------------------------------------
// What a daemon left on the host

/** Decode the octal escapes (\040 etc.) mountinfo uses for spaces and the like. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points at or under any of the dirs, in mountinfo order (a point may repeat if stacked). */
function mountsUnder(dirs: string[]): string[] {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  const found: string[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const mp = unescapeMount(f[4]);
    if (dirs.some((d) => mp === d || mp.startsWith(d + '/'))) found.push(mp);
  }
  return found;
}

export interface CgroupMount {
  /** Where the hierarchy is mounted, e.g. /sys/fs/cgroup/memory or /sys/fs/cgroup. */
  path: string;
  version: 1 | 2;
  /** v1: the mount's controllers (and name=… for a named hierarchy); v2: cgroup.controllers. */
  controllers: string[];
}

/**
 * The cgroup hierarchies this host really mounts, read from /proc/self/mountinfo (not from berth's
 * own discovery, so tests can check berth against it): the v1 controllers and the hybrid layout's
 * cgroup2 "unified" mount, or the single cgroup2 tree of a pure v2 host.
 */
export function cgroupMounts(): CgroupMount[] {
  const out: CgroupMount[] = [];
  const seen = new Set<string>();
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const f = pre.split(' ');
    const [fstype, , superOpts = ''] = post.split(' ');
    if ((fstype !== 'cgroup' && fstype !== 'cgroup2') || seen.has(f[2])) continue;
    seen.add(f[2]); // one hierarchy mounted twice has one device number
    const mp = unescapeMount(f[4]);
    let controllers: string[];
    if (fstype === 'cgroup') controllers = superOpts.split(',').filter((o) => o !== 'rw' && o !== 'ro');
    else {
      try {
        controllers = fs.readFileSync(path.join(mp, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
      } catch {
        controllers = [];
      }
    }
    out.push({ path: mp, version: fstype === 'cgroup' ? 1 : 2, controllers });
  }
  return out;
}

/** Every cgroup hierarchy root on this host (v1 controllers, named hierarchies, cgroup2). */
function cgroupHierarchies(): string[] {
  const base = '/sys/fs/cgroup';
  if (fs.existsSync(path.join(base, 'cgroup.controllers'))) return [base];
  const seen = new Set<string>();
  const out: string[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(base);
  } catch {
    return [];
  }
  for (const name of names.sort()) {
    let real: string;
    try {
      real = fs.realpathSync(path.join(base, name));
      if (!fs.statSync(real).isDirectory()) continue;
    } catch {
      continue;
    }
    if (seen.has(real)) continue;
    seen.add(real);
    out.push(real);
  }
  return out;
}

/** The cgroup dirs a parent name maps to (cgroupfs: "<parent>", systemd driver: "<parent>.slice"). */
function cgroupParentDirs(parent: string): string[] {
  const out: string[] = [];
  for (const h of cgroupHierarchies()) {
    for (const name of [parent, `${parent}.slice`]) {
      const p = path.join(h, name);
      if (fs.existsSync(p)) out.push(p);
    }
  }
  return out;
}

/** Thaw every cgroup under the parent: v1 freezer.state, v2 cgroup.freeze. */
function thawAll(parent: string): void {
  for (const dir of cgroupParentDirs(parent)) {
    for (const d of [...subdirsDeepestFirst(dir), dir]) {
      for (const [file, value] of [['freezer.state', 'THAWED'], ['cgroup.freeze', '0']]) {
        try {
          fs.writeFileSync(path.join(d, file), value);
        } catch {}
      }
    }
  }
}

/** Subdirectories of dir, recursively, deepest first. */
function subdirsDeepestFirst(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      if (!e.isDirectory()) continue;
      const p = path.join(d, e.name);
      walk(p);
      out.push(p);
    }
  };
  walk(dir);
  return out;
}

interface ProcInfo {
  pid: number;
  ppid: number;
  state: string;
  argv: string[];
}

function listProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const argv = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (argv[argv.length - 1] === '') argv.pop();
      out.push({ pid: Number(name), state: rest[0], ppid: Number(rest[1]), argv });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function mentions(argv: string[], dirs: string[]): boolean {
  return argv.some((a) => dirs.some((d) => a === d || a.endsWith('=' + d) || a.includes(d + '/')));
}

function isMonitor(argv: string[]): boolean {
  const base = path.basename(argv[0] ?? '');
  return base === 'conmon' || base === 'runc' || base === 'crun' || base.startsWith('containerd-shim');
}

function targetDirs(t: DaemonTarget): string[] {
  return [...new Set([t.root, t.dataRoot, t.execRoot])];
}

/**
 * Where under the exec root the runtime keeps per-container state (bundles, attach sockets, exit
 * files). The daemon uses the short "c" (socket paths must fit in 107 bytes); "containers" is the
 * name the harness was first specified with, still checked in case a layout uses it; "netns" holds
 * the bind-mounted network namespaces of bridged containers.
 */
export const runtimeStateDirs = ['c', 'containers', 'netns'];

/** What the daemon left on the host. A daemon that cleans up after itself reports four empty lists. */
export function leftovers(t: DaemonTarget): Leftovers {
  const dirs = targetDirs(t);
  const mounts = [...new Set(mountsUnder(dirs))];
  const cgroups: string[] = [];
  for (const p of cgroupParentDirs(t.cgroupParent)) cgroups.push(...subdirsDeepestFirst(p).reverse());
  const processes = listProcesses()
    .filter((p) => p.state !== 'Z' && p.pid !== process.pid && isMonitor(p.argv) && mentions(p.argv, dirs))
    .map((p) => `${p.pid} ${p.argv.join(' ')}`);
  const files: string[] = [];
  let containers = '';
  const walk = (d: string) => {
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, e.name);
      // Bookkeeping dirs (e.g. an exits/ dir) may stay; files and container-id dirs may not.
      if (!e.isDirectory() || /^[0-9a-f]{64}$/.test(e.name)) files.push(path.relative(containers, p));
      if (e.isDirectory()) walk(p);
    }
  };
  for (const dir of runtimeStateDirs) {
    containers = path.join(t.execRoot, dir);
    const before = files.length;
    walk(containers);
    // Prefix with the state dir when both exist, so the paths stay unambiguous.
    if (dir !== runtimeStateDirs[0]) for (let i = before; i < files.length; i++) files[i] = path.join(dir, files[i]);
  }
  return { mounts, cgroups, processes, files };
}

/** Pids to kill for a target: processes naming its dirs, their descendants, and members of its cgroups. */
function doomedPids(t: DaemonTarget): Set<number> {
  const dirs = targetDirs(t);
  const procs = listProcesses().filter((p) => p.state !== 'Z');
  const doomed = new Set<number>();
  for (const p of procs) if (mentions(p.argv, dirs)) doomed.add(p.pid);
  for (const parent of cgroupParentDirs(t.cgroupParent)) {
    for (const dir of [parent, ...subdirsDeepestFirst(parent)]) {
      try {
        for (const s of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (s) doomed.add(Number(s));
      } catch {}
    }
  }
  // Descendants (e.g. a container's pid 1 under conmon), to a fixed point.
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of procs) {
      if (!doomed.has(p.pid) && doomed.has(p.ppid)) {
        doomed.add(p.pid);
        grew = true;
      }
    }
  }
  doomed.delete(process.pid);
  for (let pp = process.ppid; pp > 1; ) {
    doomed.delete(pp); // never our own ancestors, whatever their command line says
    const me = procs.find((p) => p.pid === pp);
    pp = me ? me.ppid : 0;
  }
  return doomed;
}

function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Remove everything a daemon (alive or crashed) may have left: kill its processes, unmount under
 * its dirs (deepest first, lazily), rmdir its cgroups (deepest first, every hierarchy), delete the
 * temp root. Synchronous so it can also run from a process 'exit' handler. Throws, without
 * deleting anything, if mounts under the root cannot be removed (rm -rf would reach through them).
 */
export function cleanupHost(t: DaemonTarget): void {
  const problems: string[] = [];
  // 1. processes; repeat, since a dying monitor may still have forked.
  const deadline = Date.now() + 5000;
  for (;;) {
    const doomed = [...doomedPids(t)].filter(alive);
    if (doomed.length === 0) break;
    if (Date.now() > deadline) {
      problems.push(`processes still alive: ${doomed.join(' ')}`);
      break;
    }
    for (const pid of doomed) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    // A paused container's processes take the SIGKILL only once thawed.
    thawAll(t.cgroupParent);
    sleepSync(50);
  }

  // 2. mounts, deepest first; a point mounted several times appears several times.
  const dirs = targetDirs(t);
  for (let pass = 0; pass < 5; pass++) {
    const mounts = mountsUnder(dirs);
    if (mounts.length === 0) break;
    const order = mounts
      .map((m, i) => ({ m, i, depth: m.split('/').length }))
      .sort((a, b) => b.depth - a.depth || b.i - a.i);
    for (const { m } of order) {
      try {
        umount(m, MNT_DETACH);
      } catch {}
    }
  }
  const stuck = mountsUnder(dirs);
  if (stuck.length) problems.push(`mounts left: ${stuck.join(' ')}`);

  // 3. cgroups, deepest first; rmdir fails with EBUSY while a member is still exiting.
  for (const parent of cgroupParentDirs(t.cgroupParent)) {
    for (const dir of [...subdirsDeepestFirst(parent), parent]) {
      for (let tries = 0; ; tries++) {
        try {
          fs.rmdirSync(dir);
          break;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (tries >= 50) {
            problems.push(`cgroup ${dir}: ${code}`);
            break;
          }
          sleepSync(100);
        }
      }
    }
  }

  // 4. network: the daemon's bridges (default and user-defined, from its database) and iptables chains.
  if (t.bridge) problems.push(...removeNetworkLeftovers(t.bridge, t.dataRoot));

  // 5. files — only when nothing is mounted below, or rm would delete through a bind mount.
  if (stuck.length === 0) {
    try {
      fs.rmSync(t.root, { recursive: true, force: true, maxRetries: 3 });
    } catch (e) {
      problems.push(`rm -rf ${t.root}: ${(e as Error).message}`);
    }
  }
  if (problems.length) throw new Error(`harness: cleanup of ${t.root} incomplete:\n  ${problems.join('\n  ')}`);
}

/** A /24 in 10.100–199.x.0 that no host route covers, for a test daemon's default bridge. */
export function testBip(): string {
  const routes = hostRoutes();
  for (;;) {
    const [a, b] = randomBytes(2);
    const cidr = `10.${100 + (a! % 100)}.${b}.0/24`;
    if (!routes.some((r) => overlaps(r, parseCidr(cidr)))) return cidr.replace(/0\/24$/, '1/24');
  }
}

/** Bridges the daemon's database names, plus its default bridge (the database may be gone). */
export function daemonBridges(bridge: string, dataRoot: string): string[] {
  const names = new Set([bridge]);
  try {
    const db = new Database(path.join(dataRoot, 'berth.db'), { readonly: true, fileMustExist: true });
    try {
      for (const row of db.prepare('SELECT record FROM networks').all() as { record: string }[]) {
        const b = (JSON.parse(row.record) as { bridge?: string }).bridge;
        if (b) names.add(b);
      }
    } finally {
      db.close();
    }
  } catch {}
  return [...names];
}

/** The iptables rules of a daemon's chains and the jumps to them, as `iptables -t T -S` lines. */
export function daemonRules(bridge: string): string[] {
  const prefix = `BERTH-${bridge}-`;
  const out: string[] = [];
  for (const table of ['nat', 'filter']) {
    const r = spawnSync('iptables', ['-w', '-t', table, '-S'], { encoding: 'utf8' });
    for (const line of (r.stdout ?? '').split('\n')) if (line.includes(prefix)) out.push(`${table} ${line}`);
  }
  return out;
}

function removeNetworkLeftovers(bridge: string, dataRoot: string): string[] {
  const problems: string[] = [];
  for (const b of daemonBridges(bridge, dataRoot)) {
    if (!fs.existsSync(`/sys/class/net/${b}`)) continue;
    const r = spawnSync('ip', ['link', 'del', b], { encoding: 'utf8' });
    if (r.status !== 0) problems.push(`ip link del ${b}: ${r.stderr.trim()}`);
  }
  const rules = daemonRules(bridge);
  // Jumps first (-A lines in built-in chains), then the chains themselves.
  for (const line of rules) {
    const [table, ...rule] = line.split(' ');
    if (rule[0] === '-A' && !rule[1]!.startsWith(`BERTH-${bridge}-`)) spawnSync('iptables', ['-w', '-t', table!, '-D', ...rule.slice(1).map((a) => a.replace(/^"|"$/g, ''))]);
  }
  for (const line of rules) {
    const [table, flag, chain] = line.split(' ');
    if (flag === '-N') {
      spawnSync('iptables', ['-w', '-t', table!, '-F', chain!]);
      spawnSync('iptables', ['-w', '-t', table!, '-X', chain!]);
    }
  }
  const left = daemonRules(bridge);
  if (left.length) problems.push(`iptables rules left: ${left.join('; ')}`);
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Daemons

const live = new Set<BerthDaemon>();
let exitHooked = false;

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  const cleanAll = () => {
    for (const d of live) {
      try {
        d.killSync();
        cleanupHost(d);
      } catch (e) {
        process.stderr.write(`${(e as Error).message}\n`);
      }
    }
    live.clear();
  };
  process.on('exit', cleanAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      cleanAll();
      process.exit(128 + osConstants.signals[sig]);
    });
  }
}

/** The last lines of a daemon's log, for failure messages. */
export function logTail(d: Pick<Daemon, 'logFile'>, lines = 60): string {
  try {
    const text = fs.readFileSync(d.logFile, 'utf8');
    return text.split('\n').slice(-lines - 1).join('\n');
  } catch (e) {
    return `(no daemon log: ${(e as Error).message})`;
  }
}

/** Print the daemon's log tail to stderr (node:test shows it next to the failure). */
export function printLogTail(d: Pick<Daemon, 'logFile'>, why = 'test failed', lines = 60): void {
  process.stderr.write(`\n----- berthd log tail (${why}): ${d.logFile} -----\n${logTail(d, lines)}\n----- end of berthd log -----\n`);
}

/**
 * Start a daemon, run fn with it, stop it — printing its log tail if fn throws.
 * The usual shape of an e2e test: `test('x', () => withDaemon(async (d) => { ... }))`.
 */
export async function withDaemon<T>(fn: (d: Daemon) => Promise<T>, opts?: StartOptions): Promise<T> {
  const d = await startDaemon(opts);
  try {
    return await fn(d);
  } catch (e) {
    printLogTail(d);
    throw e;
  } finally {
    await d.stop();
  }
}

/** Stop every daemon this process started and has not stopped yet (for an after() hook). */
export async function stopAllDaemons(): Promise<void> {
  for (const d of [...live]) await d.stop();
}

/**
 * /tmp/berth-e2e-XXXX with 4 random characters (mkdtemp would add 6). Socket paths are capped at
 * 107 bytes, and the runtime puts conmon's attach socket at <exec>/c/<64-hex id>/attach (98 bytes
 * with this root); keep the root short so that stays true.
 */
function makeShortTempDir(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  for (let i = 0; ; i++) {
    const suffix = [...randomBytes(4)].map((b) => alphabet[b % alphabet.length]).join('');
    const dir = `/tmp/berth-e2e-${suffix}`;
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
      return dir;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || i > 100) throw e;
    }
  }
}

class BerthDaemon implements Daemon {
  readonly root: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly cgroupParent: string;
  readonly bridge: string;
  readonly socket: string;
  readonly host: string;
  readonly env: NodeJS.ProcessEnv;
  readonly logFile: string;
  private readonly pidFile: string;
  private readonly args: string[];
  private readonly readyTimeoutMs: number;
  private childPid = 0;
  private exited: Promise<void> = Promise.resolve();
  private running = false;
  private stopped = false;

  constructor(opts: StartOptions) {
    this.root = makeShortTempDir();
    this.dataRoot = path.join(this.root, 'data');
    this.execRoot = path.join(this.root, 'exec');
    fs.mkdirSync(this.dataRoot);
    fs.mkdirSync(this.execRoot);
    this.cgroupParent = `berth-e2e-${randomBytes(4).toString('hex')}`;
    // Each daemon its own bridge and subnet, so parallel daemons never share rules or addresses.
    const own = opts.config as Record<string, unknown> | undefined;
    this.bridge = typeof own?.bridge === 'string' ? own.bridge : `bth${randomBytes(4).toString('hex')}`;
    // In daemon.json mode the socket and pidfile sit outside the exec root, where only the hosts and
    // pidfile keys (not the defaults derived from exec-root) can put them.
    const inConfig = opts.rootsIn === 'config';
    this.socket = path.join(inConfig ? this.root : this.execRoot, 'berth.sock');
    this.host = `unix://${this.socket}`;
    this.logFile = path.join(this.root, 'berthd.log');
    this.pidFile = path.join(inConfig ? this.root : this.execRoot, 'berthd.pid');
    this.readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
    const dockerConfig = path.join(this.root, 'docker-config');
    fs.mkdirSync(dockerConfig);
    this.env = { ...process.env, DOCKER_HOST: this.host, BERTH_HOST: this.host, DOCKER_CONFIG: dockerConfig, BERTH_CONFIG: dockerConfig, DOCKER_CLI_HINTS: 'false' };
    const roots = {
      'data-root': this.dataRoot,
      'exec-root': this.execRoot,
      hosts: [this.host],
      pidfile: this.pidFile,
      'cgroup-parent': this.cgroupParent,
      group: 'root',
      ...(own && 'bridge' in own ? {} : { bridge: this.bridge }),
      ...(own && 'bip' in own ? {} : { bip: testBip() }),
    };
    this.args = inConfig
      ? []
      : Object.entries(roots).flatMap(([k, v]) => [k === 'hosts' ? '-H' : `--${k}`, Array.isArray(v) ? v[0] : v]);
    const config = inConfig ? { ...roots, ...opts.config } : opts.config;
    if (config) {
      const cfg = path.join(this.root, 'daemon.json');
      fs.writeFileSync(cfg, JSON.stringify(config, null, 2));
      this.args.push('--config-file', cfg);
    }
    this.args.push(...(opts.extraArgs ?? []));
    // BERTH_TEST_STORAGE_DRIVER=vfs (or fuse-overlayfs) runs any e2e file on that driver, unless the test picks one.
    const driver = process.env.BERTH_TEST_STORAGE_DRIVER;
    if (driver && !this.args.includes('--storage-driver') && !JSON.stringify(config ?? {}).includes('"storage-driver"')) this.args.push('--storage-driver', driver);
  }

  get pid(): number {
    try {
      const n = Number(fs.readFileSync(this.pidFile, 'utf8').trim());
      if (Number.isInteger(n) && n > 0 && alive(n)) return n;
    } catch {}
    return this.childPid;
  }

  async start(extraArgs: string[] = []): Promise<void> {
    const args = [...this.args, ...extraArgs];
    const fd = fs.openSync(this.logFile, 'a');
    fs.writeSync(fd, `----- harness: ${new Date().toISOString()} starting ${paths.berthd} ${args.join(' ')}\n`);
    const daemonEnv = { ...process.env };
    delete daemonEnv.DOCKER_HOST;
    delete daemonEnv.BERTH_HOST;
    const child = spawn(paths.berthd, args, { stdio: ['ignore', fd, fd], env: daemonEnv });
    fs.closeSync(fd);
    let spawnError: Error | undefined;
    let exitDesc: string | undefined;
    this.exited = new Promise<void>((resolve) => {
      child.once('error', (e) => {
        spawnError = e;
        this.running = false;
        resolve();
      });
      child.once('exit', (code, signal) => {
        exitDesc = signal ? `killed by ${signal}` : `exited with code ${code}`;
        this.running = false;
        resolve();
      });
    });
    this.childPid = child.pid ?? 0;
    this.running = true;
    live.add(this);
    hookExit();

    const deadline = Date.now() + this.readyTimeoutMs;
    for (;;) {
      if (spawnError) throw new Error(`harness: cannot start ${paths.berthd}: ${spawnError.message}`);
      if (!this.running) throw new Error(`harness: berthd ${exitDesc} before answering /_ping\n${logTail(this)}`);
      try {
        const r = await request(this.socket, { method: 'GET', path: '/_ping', timeoutMs: 1000 });
        if (r.status === 200 && r.raw.toString() === 'OK') return;
      } catch {}
      if (Date.now() > deadline) {
        throw new Error(`harness: berthd did not answer GET /_ping within ${this.readyTimeoutMs} ms\n${logTail(this)}`);
      }
      await sleep(50);
    }
  }

  berth(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(paths.berth, args, { ...opts, env: { ...this.env, ...opts.env } });
  }

  docker(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(paths.docker, args, { ...opts, env: { ...this.env, ...opts.env } });
  }

  api(method: string, p: string, body?: unknown, opts: ApiOptions = {}): Promise<ApiResponse> {
    return socketApi(this.socket, method, p, body, opts);
  }

  /** POST a file as the request body (streamed), e.g. a tar to /images/create?fromSrc=-. */
  async apiUpload(p: string, file: string, contentType = 'application/x-tar', timeoutMs = 120_000): Promise<ApiResponse> {
    const size = fs.statSync(file).size;
    const r = await request(this.socket, {
      method: 'POST',
      path: p,
      headers: { 'Content-Type': contentType, 'Content-Length': String(size) },
      body: fs.createReadStream(file),
      timeoutMs,
    });
    return { status: r.status, headers: r.headers, body: decodeBody(r.raw) };
  }

  private async signal(sig: NodeJS.Signals, waitMs: number): Promise<boolean> {
    if (!this.running) return true;
    for (const pid of new Set([this.pid, this.childPid])) {
      try {
        if (pid > 0) process.kill(pid, sig);
      } catch {}
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), waitMs))),
    ]);
    clearTimeout(timer);
    return !timedOut;
  }

  /** Used only from the exit handler, where nothing async can run. */
  killSync(): void {
    for (const pid of new Set([this.pid, this.childPid])) {
      try {
        if (pid > 0 && this.running) process.kill(pid, 'SIGKILL');
      } catch {}
    }
    this.running = false;
  }

  async kill9(): Promise<void> {
    const daemonPid = this.pid;
    if (!(await this.signal('SIGKILL', 5000))) throw new Error(`harness: berthd (pid ${this.childPid}) survived SIGKILL`);
    // If bin/berthd is a wrapper, the real daemon (pidfile) may not be our child: wait for it too.
    for (let i = 0; i < 100 && daemonPid > 0 && alive(daemonPid); i++) await sleep(50);
  }

  async restart(opts: { graceful?: boolean; extraArgs?: string[] } = {}): Promise<void> {
    if (this.stopped) throw new Error('harness: restart() after stop()');
    if (opts.graceful) {
      if (!(await this.signal('SIGTERM', 10_000))) await this.kill9();
    } else {
      await this.kill9();
    }
    await this.start(opts.extraArgs);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    try {
      if (!(await this.signal('SIGTERM', 10_000))) {
        process.stderr.write(`harness: berthd (pid ${this.pid}) ignored SIGTERM for 10 s; killing it\n`);
        await this.kill9();
      }
    } finally {
      live.delete(this);
      cleanupHost(this);
    }
  }
}

/** Start a berthd on fresh temp dirs and wait until it answers /_ping. */
export async function startDaemon(opts: StartOptions = {}): Promise<Daemon> {
  const d = new BerthDaemon(opts);
  try {
    await d.start();
  } catch (e) {
    // Do not leak the half-started daemon's dirs; keep its log in the error.
    d.killSync();
    live.delete(d);
    try {
      cleanupHost(d);
    } catch (ce) {
      process.stderr.write(`${(ce as Error).message}\n`);
    }
    throw e;
  }
  return d;
}

// ---------------------------------------------------------------------------------------------
// Test images

export interface TestImage {
  /** Reference as tagged in the daemon. */
  ref: string;
  /** Rootfs tar built by scripts/mkimage-<name>.sh. */
  tar: string;
  /** Dockerfile-style changes given to the import (`docker import -c`). */
  changes: string[];
}

const imageCacheRoot = '/tmp/berth-test-images';
let imagesPromise: Promise<TestImage[]> | undefined;

/** Content key of the image sources: the cache is reused until a script, hello.c or busybox changes. */
function imageSourcesKey(): string {
  const h = createHash('sha256');
  for (const f of ['scripts/mkimage-hello.sh', 'scripts/mkimage-busybox.sh', 'hello/hello.c']) {
    h.update(f).update(fs.readFileSync(path.join(repoRoot, f)));
  }
  const bb = fs.statSync('/bin/busybox');
  h.update(`busybox ${bb.size} ${bb.mtimeMs}`);
  return h.digest('hex').slice(0, 16);
}

/**
 * Build (once per source version, cached under /tmp/berth-test-images/<key>/) the rootfs tars of
 * hello-world and busybox. The scripts write atomically, so concurrent test files may race safely.
 */
export function testImages(): Promise<TestImage[]> {
  imagesPromise ??= (async () => {
    const dir = path.join(imageCacheRoot, imageSourcesKey());
    fs.mkdirSync(dir, { recursive: true });
    const images: TestImage[] = [
      { ref: 'hello-world:latest', tar: path.join(dir, 'hello.tar'), changes: ['CMD ["/hello"]'] },
      { ref: 'busybox:latest', tar: path.join(dir, 'busybox.tar'), changes: ['CMD ["sh"]'] },
    ];
    const scripts = [path.join(repoRoot, 'scripts/mkimage-hello.sh'), path.join(repoRoot, 'scripts/mkimage-busybox.sh')];
    await Promise.all(
      images.map(async (img, i) => {
        if (fs.existsSync(img.tar)) return;
        const r = await run(scripts[i], [img.tar], { timeoutMs: 120_000 });
        if (r.code !== 0) throw new Error(`harness: ${path.basename(scripts[i])} failed (${r.code}):\n${r.stderr}`);
      }),
    );
    return images;
  })();
  imagesPromise.catch(() => {
    imagesPromise = undefined;
  });
  return imagesPromise;
}

/**
 * Import hello-world and busybox into the daemon through the Engine API (what `docker import` /
 * `berth import` send: POST /images/create?fromSrc=-). Images already present are left alone.
 */
export async function loadTestImages(d: Daemon): Promise<void> {
  const images = await testImages();
  const bd = d as BerthDaemon;
  for (const img of images) {
    const enc = encodeURIComponent;
    const have = await d.api('GET', `/images/${enc(img.ref)}/json`);
    if (have.status === 200) continue;
    const [repo, tag] = img.ref.split(':');
    const q = [`fromSrc=-`, `repo=${enc(repo)}`, `tag=${enc(tag)}`, ...img.changes.map((c) => `changes=${enc(c)}`)].join('&');
    const r = await bd.apiUpload(`/images/create?${q}`, img.tar);
    const text = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
    if (r.status !== 200 || /"error(Detail)?"\s*:/.test(text)) {
      throw new Error(`harness: import of ${img.ref} failed: HTTP ${r.status} ${text}\n${logTail(d)}`);
    }
    const check = await d.api('GET', `/images/${enc(img.ref)}/json`);
    if (check.status !== 200) {
      throw new Error(`harness: ${img.ref} missing after import (HTTP ${check.status} ${JSON.stringify(check.body)})\n${logTail(d)}`);
    }
  }
}
