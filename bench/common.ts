/**
 * What the benches share: engines (berthd from test/harness.ts, dockerd from Debian's docker.io on
 * private dirs), the bench image (an OCI layout built from mmdebstrap + filler layers), statistics
 * and table printing, and clean-up that also runs on Ctrl-C.
 *
 * Lifecycle of an engine: `startBerth()` / `startDockerd(bin)` → `docker([...])` as often as
 * needed → `stop()`, which kills what it started and removes its mounts, cgroups and temp dirs.
 * If the process dies first (Ctrl-C, SIGTERM, an uncaught error), an exit hook does the same
 * synchronously: the harness for berthd daemons, `killDockerdsSync` here for dockerds, and
 * `onExitSync` for anything else a bench registers (registries, temp dirs).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { cleanupHost, loadTestImages, logTail, paths, run, socketApi, startDaemon, testImages, type ApiResponse, type Daemon, type DaemonTarget, type RunResult, type StartOptions } from '../test/harness.js';

export { freePort } from '../test/registry-fixtures.js';
import { initLayout, writeIndex, writeManifest } from '../test/registry-fixtures.js';

// ---------------------------------------------------------------------------------------------
// Small helpers

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Nearest rank: the smallest sample with at least q of the samples at or below it. */
export function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** The middle sample, or the mean of the two middle ones. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export const sum = (xs: Iterable<number>) => [...xs].reduce((a, b) => a + b, 0);

/** Throws with the command's output unless it exited 0. */
export function must(r: RunResult, what: string): RunResult {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r;
}

/** Runs a command and throws (with the end of its stderr) unless it exits 0. */
export async function mustRun(cmd: string, args: string[], timeoutMs = 300_000): Promise<void> {
  const r = await run(cmd, args, { timeoutMs });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.slice(-2000)}`);
}

/** Wall time of fn in seconds. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/usr/bin'])) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {}
  }
  return undefined;
}

/** Streams a file through sha256 without holding it in memory. */
export async function fileDigest(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of fs.createReadStream(file) as AsyncIterable<Buffer>) h.update(c);
  return `sha256:${h.digest('hex')}`;
}

/** Aligned text table; columns listed in `left` are padded on the right, the others on the left. */
export function formatTable(head: string[], rows: string[][], left: (i: number) => boolean): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (left(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Clean-up on exit

const exitHooks = new Set<() => void>();
let signalsHooked = false;

/**
 * Registers a synchronous clean-up for process exit (normal, error, Ctrl-C or SIGTERM); returns
 * a function that unregisters it (call it once the thing was cleaned up the normal way).
 */
export function onExitSync(fn: () => void): () => void {
  exitHooks.add(fn);
  hookSignals();
  return () => exitHooks.delete(fn);
}

function runExitHooks(): void {
  for (const fn of [...exitHooks]) {
    exitHooks.delete(fn);
    try {
      fn();
    } catch (e) {
      process.stderr.write(`${(e as Error).message}\n`);
    }
  }
}

function hookSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  process.on('exit', runExitHooks);
  // process.exit runs the 'exit' listeners (ours and the harness's, which stops berthds).
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
}

/** SIGKILLs the processes whose command line names dir (or a path below it). Synchronous. */
export function killProcessesUnder(dir: string): void {
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const argv = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a === dir || a.includes(dir + '/'))) process.kill(Number(name), 'SIGKILL');
    } catch {}
  }
}

/**
 * For a registry from test/registry-fixtures.ts (its temp dir is the parent of `root`, and its
 * process names a file in it): kill it and remove the dir if the bench exits before stop().
 * Returns the function that disarms this, for after stop().
 */
export function guardRegistry(reg: { root: string }): () => void {
  const dir = path.dirname(reg.root);
  return onExitSync(() => {
    killProcessesUnder(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  });
}

// ---------------------------------------------------------------------------------------------
// Engines

/** How a bench drives one running engine; clean-up happens in stop(). */
export interface Engine {
  name: 'berthd' | 'dockerd';
  target: DaemonTarget;
  /** Environment for the docker CLI: DOCKER_HOST and a private DOCKER_CONFIG. */
  env: NodeJS.ProcessEnv;
  /** The harness daemon, for berthd only. */
  daemon?: Daemon;
  /** The real docker CLI pointed at this engine. */
  docker(args: string[], timeoutMs?: number): Promise<RunResult>;
  /** A raw Engine API call over its socket (the same client code for both engines). */
  api(method: string, path: string, body?: unknown): Promise<ApiResponse>;
  version(): Promise<string>;
  stop(): Promise<void>;
  log(): string;
}

export async function startBerth(opts: StartOptions = {}): Promise<Engine> {
  const d = await startDaemon(opts);
  const docker = (args: string[], timeoutMs = 60_000) => d.docker(args, { timeoutMs });
  return {
    name: 'berthd',
    target: d,
    env: d.env,
    daemon: d,
    docker,
    api: (method, p, body) => d.api(method, p, body, { timeoutMs: 120_000 }),
    version: async () => must(await docker(['version', '--format', '{{.Server.Version}}']), 'docker version').stdout.trim(),
    stop: () => d.stop(),
    log: () => logTail(d, 30),
  };
}

/**
 * Each engine in turn: start it, measure it, stop it. A failure is that engine's row (with its log
 * tail on stderr), not the end of the bench.
 */
export async function measureEach<R extends { engine: string; error?: string }>(
  starts: (() => Promise<Engine>)[],
  measure: (engine: Engine) => Promise<Omit<R, 'engine'>>,
): Promise<R[]> {
  const results: R[] = [];
  for (const start of starts) {
    let engine: Engine | undefined;
    const res = { engine: start === startBerth ? 'berthd' : 'dockerd' } as R;
    try {
      engine = await start();
      process.stderr.write(`bench: measuring ${engine.name}...\n`);
      Object.assign(res, await measure(engine));
    } catch (e) {
      res.error = (e as Error).message;
      process.stderr.write(`bench: ${res.engine} failed: ${res.error}\n${engine ? engine.log() : ''}\n`);
    } finally {
      if (engine) await engine.stop();
    }
    results.push(res);
  }
  return results;
}

/**
 * Runs sample(engine, i) `n` times per engine, the engines taking turns each round (berthd,
 * dockerd, dockerd, berthd, …) so a slow moment of the machine hits both alike; samples by engine name.
 */
export async function turns(engines: Engine[], n: number, sample: (e: Engine, i: number) => Promise<number>): Promise<Map<string, number[]>> {
  const out = new Map(engines.map((e) => [e.name, [] as number[]]));
  for (let i = 0; i < n; i++) {
    for (const e of i % 2 ? [...engines].reverse() : engines) out.get(e.name)!.push(await sample(e, i));
  }
  return out;
}

/** dockerd's path; under `install`, installs Debian's docker.io first (its services kept stopped). */
export async function ensureDockerd(install: boolean): Promise<string | undefined> {
  const found = which('dockerd');
  if (found || !install) return found;
  process.stderr.write('bench: installing docker.io with apt-get (services kept stopped)...\n');
  // Keep the package's init script from starting a system-wide dockerd.
  const policy = '/usr/sbin/policy-rc.d';
  const addedPolicy = !fs.existsSync(policy);
  if (addedPolicy) fs.writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let r = await run('apt-get', ['install', '-y', '--no-install-recommends', 'docker.io'], { env, timeoutMs: 600_000 });
    if (r.code !== 0) {
      must(await run('apt-get', ['update'], { env, timeoutMs: 300_000 }), 'apt-get update');
      r = await run('apt-get', ['install', '-y', '--no-install-recommends', 'docker.io'], { env, timeoutMs: 600_000 });
    }
    must(r, 'apt-get install docker.io');
  } finally {
    if (addedPolicy) fs.rmSync(policy, { force: true });
  }
  return which('dockerd');
}

function ping(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request({ socketPath: socket, path: '/_ping', agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

const dockerdTargets = new Set<DaemonTarget>();
const dockerdChildren = new Set<ChildProcess>();

/**
 * A dockerd on its own socket, data root, exec root, pidfile and cgroup parent under /tmp, without
 * a bridge or iptables rules. `daemonJson` is merged into the daemon.json it is given, except
 * "data-root", which replaces the data root under /tmp (dockerd refuses a key given as a flag too).
 */
export async function startDockerd(bin: string, daemonJson: Record<string, unknown> = {},
  /** Replaces the no-bridge, no-iptables flags (bench/network.ts gives it a bridge of its own). */
  networkFlags = ['--bridge', 'none', '--iptables=false', '--ip-masq=false']): Promise<Engine> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-dockerd-'));
  const { 'data-root': dataRoot, ...json } = daemonJson;
  const t: DaemonTarget = {
    root,
    dataRoot: typeof dataRoot === 'string' ? dataRoot : path.join(root, 'data'),
    execRoot: path.join(root, 'exec'),
    cgroupParent: `bench-${path.basename(root)}`,
  };
  dockerdTargets.add(t);
  hookDockerdExit();
  fs.mkdirSync(t.dataRoot, { recursive: true });
  fs.mkdirSync(t.execRoot);
  const socket = path.join(root, 'docker.sock');
  const logFile = path.join(root, 'dockerd.log');
  const configDir = path.join(root, 'docker-config');
  fs.mkdirSync(configDir);
  const env = { ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: configDir, DOCKER_CLI_HINTS: 'false' };
  // dockerd 20.10 writes its trust key under /etc/docker unless told otherwise.
  const config = path.join(root, 'daemon.json');
  fs.writeFileSync(config, JSON.stringify({ 'deprecated-key-path': path.join(root, 'key.json'), ...json }));
  // It (and its containerd) also make a few fixed dirs under /run; remove those it created.
  const hostDirs = ['/run/docker/plugins', '/run/docker', '/run/containerd/s', '/run/containerd'].filter((d) => !fs.existsSync(d));
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(
    bin,
    [
      '--data-root', t.dataRoot,
      '--exec-root', t.execRoot,
      '-H', `unix://${socket}`,
      '--pidfile', path.join(root, 'dockerd.pid'),
      ...networkFlags,
      '--cgroup-parent', t.cgroupParent,
      '--group', 'root',
      '--config-file', config,
    ],
    { stdio: ['ignore', fd, fd], env: { ...process.env, DOCKER_HOST: '' } },
  );
  fs.closeSync(fd);
  dockerdChildren.add(child);
  let exited = false;
  const exit = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  child.once('error', () => (exited = true));
  const tail = () => fs.readFileSync(logFile, 'utf8').split('\n').slice(-30).join('\n');
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      await Promise.race([exit, sleep(15_000)]);
    }
    dockerdChildren.delete(child);
    dockerdTargets.delete(t);
    cleanupHost(t);
    for (const d of hostDirs) {
      try {
        fs.rmdirSync(d); // only if empty
      } catch {}
    }
  };
  const deadline = Date.now() + 30_000;
  while (!(await ping(socket))) {
    if (exited || Date.now() > deadline) {
      const why = exited ? 'exited' : 'did not answer /_ping in 30 s';
      const log = tail();
      await stop();
      throw new Error(`dockerd ${why}:\n${log}`);
    }
    await sleep(100);
  }
  const docker = (args: string[], timeoutMs = 120_000) => run(paths.docker, args, { env, timeoutMs });
  return {
    name: 'dockerd',
    target: t,
    env,
    docker,
    api: (method, p, body) => socketApi(socket, method, p, body, { timeoutMs: 120_000 }),
    version: async () => must(await docker(['version', '--format', '{{.Server.Version}}']), 'docker version').stdout.trim(),
    stop,
    log: tail,
  };
}

// A Ctrl-C or kill must not leave a dockerd, its containerd, shims, mounts or cgroups behind.
// (The harness does the same for berthd daemons on exit.)
export function killDockerdsSync(): void {
  for (const c of dockerdChildren) c.kill('SIGKILL');
  for (const t of dockerdTargets) {
    try {
      cleanupHost(t);
    } catch (e) {
      process.stderr.write(`${(e as Error).message}\n`);
    }
  }
  dockerdTargets.clear();
}

let dockerdExitHooked = false;
function hookDockerdExit(): void {
  if (dockerdExitHooked) return;
  dockerdExitHooked = true;
  onExitSync(killDockerdsSync);
}

/** Imports the busybox rootfs: berthd through the harness (the Engine API), dockerd with `docker import`. */
export async function loadBusybox(engine: Engine): Promise<void> {
  if (engine.daemon) return loadTestImages(engine.daemon);
  const [, busybox] = await testImages();
  must(await engine.docker(['import', '-c', 'CMD ["sh"]', busybox.tar, 'busybox:latest']), 'docker import');
}

// ---------------------------------------------------------------------------------------------
// Memory of an engine's processes

/** The engine's own processes (berthd; dockerd + containerd; monitors and shims while running): those whose command line names its dirs. */
export function enginePids(t: DaemonTarget): number[] {
  const dirs = [t.root, t.dataRoot, t.execRoot];
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      // berthd's title is its whole command line in one string (process.title): split that too.
      const argv = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split(/[\0 ]/);
      if (argv.some((a) => dirs.some((d) => a === d || a.includes(d + '/') || a.endsWith('=' + d)))) pids.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** VmRSS of one process in kB, or undefined once it is gone. */
export function processRssKb(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** VmRSS in kB of each of the engine's own processes. */
export function engineRss(t: DaemonTarget): Map<number, number> {
  const rss = new Map<number, number>();
  for (const pid of enginePids(t)) {
    const kb = processRssKb(pid);
    if (kb !== undefined) rss.set(pid, kb);
  }
  return rss;
}

/** The median of a few samples, so one GC in a Node or Go daemon does not decide the figure. */
export async function sampleRss(t: DaemonTarget, samples = 5, gapMs = 400): Promise<Map<number, number>> {
  const runs: Map<number, number>[] = [];
  for (let i = 0; i < samples; i++) {
    if (i) await sleep(gapMs);
    runs.push(engineRss(t));
  }
  runs.sort((a, b) => sum(a.values()) - sum(b.values()));
  return runs[Math.floor(runs.length / 2)];
}

// ---------------------------------------------------------------------------------------------
// The bench image: an OCI layout

export interface BenchImage {
  /** The OCI layout directory; its one manifest is tagged "bench". */
  layout: string;
  /** Compressed bytes of layers + config + manifest. */
  bytes: number;
  layers: number;
  /** What the layers hold, for the report. */
  source: string;
}

export interface BuildOptions {
  /** Total compressed size the random filler layers top the image up to. */
  targetBytes: number;
  /** At most this many layers in all. */
  maxLayers: number;
  /** Layer 2: /usr/share/doc of the Debian rootfs again (many small compressible files). */
  docLayer: boolean;
  /** Scratch space (removed or left to the caller). */
  work: string;
}

const tarArgs = ['--format=ustar', '--mtime=@0', '--owner=0', '--group=0'];

/**
 * Builds an OCI image layout in `dir` (which must not exist yet): the Debian minbase rootfs from
 * mmdebstrap (when installed) as one gzip layer, optionally its /usr/share/doc again as a second,
 * then random-data layers (incompressible, so gzip makes them no smaller) up to targetBytes.
 * Without mmdebstrap, random layers only.
 */
export async function buildImage(dir: string, o: BuildOptions): Promise<BenchImage> {
  initLayout(dir);
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(o.work, { recursive: true });
  const layers: Array<{ digest: string; size: number; diffId: string }> = [];
  const sources: string[] = [];
  const total = () => layers.reduce((n, l) => n + l.size, 0);
  const addLayer = async (tar: string, level: number) => {
    const diffId = await fileDigest(tar);
    const gz = `${tar}.gz`;
    await mustRun('gzip', ['-n', `-${level}`, tar]); // replaces tar with tar.gz
    const digest = await fileDigest(gz);
    const size = fs.statSync(gz).size;
    fs.renameSync(gz, path.join(blobs, digest.slice(7)));
    layers.push({ digest, size, diffId });
  };
  const debianTar = path.join(o.work, 'debian.tar');
  if (fs.existsSync('/usr/bin/mmdebstrap')) {
    const r = await run('mmdebstrap', ['--quiet', '--variant=minbase', 'bookworm', debianTar], { timeoutMs: 300_000 });
    if (r.code === 0) {
      sources.push('mmdebstrap minbase bookworm');
      if (o.docLayer) {
        // Take /usr/share/doc out of the rootfs tar before it is compressed away.
        const docDir = path.join(o.work, 'doc');
        fs.mkdirSync(docDir);
        await mustRun('tar', ['-C', docDir, '-xf', debianTar, './usr/share/doc']);
        const docTar = path.join(o.work, 'doc.tar');
        await addLayer(debianTar, 6);
        await mustRun('tar', [...tarArgs, '-C', docDir, '-cf', docTar, 'usr']);
        fs.rmSync(docDir, { recursive: true, force: true });
        await addLayer(docTar, 6);
        sources.push('/usr/share/doc');
      } else await addLayer(debianTar, 6);
    } else process.stderr.write(`mmdebstrap failed, random layers only: ${r.stderr.slice(-500)}\n`);
  }
  sources.push('random');
  let i = 0;
  while (total() < o.targetBytes && layers.length < o.maxLayers) {
    const want = Math.min(o.targetBytes - total(), Math.ceil(o.targetBytes / o.maxLayers));
    const raw = path.join(o.work, `rand${i++}.bin`);
    fs.writeFileSync(raw, randomBytes(want));
    const tar = `${raw}.tar`;
    await mustRun('tar', [...tarArgs, '-C', o.work, '-cf', tar, path.basename(raw)]);
    fs.rmSync(raw);
    await addLayer(tar, 1);
  }
  const built = writeManifest(dir, layers.map((l) => ({ ...l, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' })));
  writeIndex(dir, 'bench', { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: built.manifestDigest, size: built.manifest.length });
  const configSize = fs.statSync(path.join(blobs, built.configDigest.slice(7))).size;
  return { layout: dir, bytes: total() + configSize + built.manifest.length, layers: layers.length, source: sources.join(' + ') };
}

/**
 * The pull benches' image: Debian minbase, its /usr/share/doc again and random layers, ~90 MB
 * compressed in 4 layers. The key names everything that shapes it; change it when the recipe changes.
 */
export const debianImage = (): Promise<BenchImage> =>
  // Without mmdebstrap the recipe gives random layers only: a different image, under a key of its own.
  cachedImage(fs.existsSync('/usr/bin/mmdebstrap') ? 'debian-bookworm-doc-random-90M-v1' : 'random-90M-v1',
    { targetBytes: 90 * 1024 * 1024, maxLayers: 4, docLayer: true });

export const benchCacheRoot = '/tmp/berth-bench-cache';

/**
 * buildImage once per `key` (which should name everything that shapes the image), cached under
 * /tmp/berth-bench-cache/<key>/: built in a temp dir next to it and renamed into place, so a
 * killed build leaves no half image and two benches may race safely.
 */
export async function cachedImage(key: string, o: Omit<BuildOptions, 'work'>): Promise<BenchImage> {
  const dir = path.join(benchCacheRoot, key);
  const meta = path.join(dir, 'bench-image.json');
  if (fs.existsSync(meta)) return { ...(JSON.parse(fs.readFileSync(meta, 'utf8')) as Omit<BenchImage, 'layout'>), layout: path.join(dir, 'layout') };
  fs.mkdirSync(benchCacheRoot, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(benchCacheRoot, `.${key}-`));
  const forget = onExitSync(() => fs.rmSync(tmp, { recursive: true, force: true }));
  try {
    const work = path.join(tmp, 'work');
    const img = await buildImage(path.join(tmp, 'layout'), { ...o, work });
    fs.rmSync(work, { recursive: true, force: true });
    const { layout: _layout, ...rest } = img;
    const fd = fs.openSync(path.join(tmp, 'bench-image.json'), 'w');
    fs.writeSync(fd, JSON.stringify(rest));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    try {
      fs.renameSync(tmp, dir);
    } catch (e) {
      // Another bench won the race; use its image.
      if (!fs.existsSync(meta)) throw e;
    }
    return { ...rest, layout: path.join(dir, 'layout') };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    forget();
  }
}

/** skopeo copy of the layout's "bench" manifest to docker://ref (plain HTTP; digests kept). */
export async function pushLayout(layout: string, ref: string, timeoutMs = 300_000): Promise<void> {
  await mustRun('skopeo', ['--insecure-policy', 'copy', '--quiet', '--dest-tls-verify=false', '--preserve-digests', `oci:${layout}:bench`, `docker://${ref}`], timeoutMs);
}

export interface IntFlag { default: number; min: number; max: number; short?: string }

/**
 * A bench's flags: booleans and bounded integers (node's parseArgs), kebab-case on the
 * command line, camelCase in the result; -h/--help prints `usage` and exits.
 */
export function benchArgs<B extends string, I extends string>(usage: string, bools: readonly B[], ints: Record<I, IntFlag>): { [K in B as Camel<K>]: boolean } & { [K in I as Camel<K>]: number } {
  const options: Record<string, { type: 'boolean' | 'string'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const b of bools) options[b] = { type: 'boolean' };
  for (const [name, f] of Object.entries<IntFlag>(ints)) options[name] = { type: 'string', ...(f.short ? { short: f.short } : {}) };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: process.argv.slice(2), options, strict: true }).values as Record<string, string | boolean | undefined>;
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${usage}`);
  }
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  const out: Record<string, boolean | number> = {};
  const camel = (k: string) => k.replace(/-(\w)/g, (_m, c: string) => c.toUpperCase());
  for (const b of bools) out[camel(b)] = values[b] === true;
  for (const [name, f] of Object.entries<IntFlag>(ints)) {
    const raw = values[name];
    const v = raw === undefined ? f.default : Number(raw);
    if (!Number.isInteger(v) || v < f.min || v > f.max) throw new Error(`${name.length === 1 ? '-' : '--'}${name} wants an integer in ${f.min}..${f.max}`);
    out[camel(name)] = v;
  }
  return out as ReturnType<typeof benchArgs<B, I>>;
}

type Camel<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
