/**
 * Benchmark: what the default seccomp profile costs a `docker run --rm`.
 *
 *   node --import tsx bench/seccomp.ts [-n 30] [--warmup 3]
 *
 * For berthd (and dockerd when Debian's docker.io is already installed; this bench never installs
 * it), runs `docker run --rm --network none busybox true` with the real docker CLI, taking turns
 * between the default profile and `--security-opt seccomp=unconfined`, so drift on the machine hits
 * both alike. Prints min/median/max of each and the difference of the medians (the profile's cost:
 * berth builds the filter's JSON, runc compiles and loads it).
 *
 * Then the same without any daemon: raw `runc run` of a busybox bundle whose config.json is the one
 * buildSpec writes, with and without the profile, wall time and the CPU time runc used (user + sys
 * of the reaped children), which a busy shared machine disturbs far less than wall time.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildSpec } from '../src/runtime/spec.js';
import { removeCgroup } from '../src/runtime/cgroups.js';
import { testImages } from '../test/harness.js';
import { benchArgs, ensureDockerd, formatTable, loadBusybox, median, must, startBerth, startDockerd, type Engine } from './common.js';

interface Row { engine: string; withProfile: number[]; unconfined: number[]; error?: string }

async function measure(engine: Engine, n: number, warmup: number): Promise<Row> {
  await loadBusybox(engine);
  const args = (extra: string[]) => ['run', '--rm', '--network', 'none', ...extra, 'busybox', 'true'];
  const variants: [keyof Pick<Row, 'withProfile' | 'unconfined'>, string[]][] = [['withProfile', []], ['unconfined', ['--security-opt', 'seccomp=unconfined']]];
  for (let i = 0; i < warmup; i++) for (const [, extra] of variants) must(await engine.docker(args(extra)), `${engine.name}: warm-up`);
  const row: Row = { engine: engine.name, withProfile: [], unconfined: [] };
  for (let i = 0; i < n; i++) {
    // alternate which variant goes first, so neither always follows the other
    for (const [key, extra] of i % 2 ? [...variants].reverse() : variants) {
      const t0 = process.hrtime.bigint();
      must(await engine.docker(args(extra)), `${engine.name}: docker run ${extra.join(' ')}`);
      row[key].push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
  }
  return row;
}

/** user + sys seconds of this process's reaped children (/proc/self/stat cutime + cstime). */
function childCpu(): number {
  const f = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[13]) + Number(f[14])) / 100;
}

interface RawRow { variant: string; wall: number[]; cpuPerRun: number }

async function rawRunc(n: number): Promise<RawRow[]> {
  const busybox = (await testImages()).find((i) => i.ref.startsWith('busybox'))!;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-seccomp-'));
  try {
    const rootfs = path.join(dir, 'rootfs');
    fs.mkdirSync(rootfs);
    must({ ...spawnSync('tar', ['-C', rootfs, '-xf', busybox.tar], { encoding: 'utf8' }), code: 0 }, 'untar busybox');
    const variants = [['default profile', 'default'], ['unconfined', 'unconfined']] as const;
    for (const [, mode] of variants) {
      const spec = buildSpec({
        rootfs, args: ['true'], env: [], cwd: '/', user: { uid: 0, gid: 0, additionalGids: [] }, hostname: 'bench', tty: false, openStdin: false,
        network: { mode: 'none' }, cgroupsPath: `berth-bench-seccomp-${process.pid}/${mode}`, resources: {}, mounts: [], seccomp: mode,
      });
      fs.mkdirSync(path.join(dir, mode));
      fs.writeFileSync(path.join(dir, mode, 'config.json'), JSON.stringify(spec));
    }
    const rows: RawRow[] = variants.map(([variant]) => ({ variant, wall: [], cpuPerRun: 0 }));
    for (let i = 0; i < n; i++) {
      for (const k of i % 2 ? [1, 0] : [0, 1]) {
        const mode = variants[k]![1];
        const c0 = childCpu();
        const t0 = process.hrtime.bigint();
        const r = spawnSync('runc', ['run', '--bundle', path.join(dir, mode), `berth-bench-seccomp-${process.pid}-${mode}-${i}`], { stdio: 'ignore' });
        rows[k]!.wall.push(Number(process.hrtime.bigint() - t0) / 1e9);
        rows[k]!.cpuPerRun += (childCpu() - c0) / n;
        if (r.status !== 0) throw new Error(`runc run (${mode}) exited ${r.status}`);
      }
    }
    return rows;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    // In every hierarchy, the hybrid layout's cgroup2 one included.
    for (const mode of ['default', 'unconfined']) removeCgroup(`berth-bench-seccomp-${process.pid}/${mode}`);
    removeCgroup(`berth-bench-seccomp-${process.pid}`);
  }
}

const ms = (s: number) => `${(s * 1000).toFixed(1)} ms`;
const stats = (xs: number[]) => `${ms(Math.min(...xs))} / ${ms(median(xs))} / ${ms(Math.max(...xs))}`;

async function main(): Promise<void> {
  const o = benchArgs('usage: bench/seccomp.ts [-n 30] [--warmup 3]', [], {
    n: { default: 30, min: 2, max: 500, short: 'n' },
    warmup: { default: 3, min: 0, max: 20 },
  });
  await testImages();
  const engines: (() => Promise<Engine>)[] = [startBerth];
  const dockerd = await ensureDockerd(false);
  if (dockerd) engines.push(() => startDockerd(dockerd));
  else process.stderr.write('bench: dockerd not installed; measuring berthd only\n');
  const rows: Row[] = [];
  for (const start of engines) {
    let engine: Engine | undefined;
    try {
      engine = await start();
      process.stderr.write(`bench: measuring ${engine.name}...\n`);
      rows.push(await measure(engine, o.n, o.warmup));
    } catch (e) {
      rows.push({ engine: engine?.name ?? 'engine', withProfile: [], unconfined: [], error: (e as Error).message });
    } finally {
      if (engine) await engine.stop();
    }
  }
  const head = ['engine', 'default profile min/median/max', 'unconfined min/median/max', 'profile cost (median)'];
  const table = rows.map((r) => (r.error ? [r.engine, 'error', r.error, '-'] : [
    r.engine, stats(r.withProfile), stats(r.unconfined), ms(median(r.withProfile) - median(r.unconfined)),
  ]));
  process.stdout.write(`docker run --rm --network none busybox true, N=${o.n} each, taking turns\n${formatTable(head, table, (i) => i === 0)}\n`);
  process.stdout.write(JSON.stringify({ bench: 'seccomp-run-rm', n: o.n, engines: Object.fromEntries(rows.map((r) => [r.engine, r.error ? { error: r.error } : {
    withProfileMedianS: median(r.withProfile), unconfinedMedianS: median(r.unconfined), costS: median(r.withProfile) - median(r.unconfined),
  }])) }) + '\n');
  const raw = await rawRunc(o.n);
  const rawTable = raw.map((r) => [r.variant, stats(r.wall), ms(r.cpuPerRun)]);
  process.stdout.write(`\nraw runc run of a busybox bundle (buildSpec's config.json), N=${o.n} each, taking turns\n${formatTable(['variant', 'wall min/median/max', 'runc CPU per run'], rawTable, (i) => i === 0)}\n`);
  process.stdout.write(`profile cost: ${ms(median(raw[0]!.wall) - median(raw[1]!.wall))} wall (median), ${ms(raw[0]!.cpuPerRun - raw[1]!.cpuPerRun)} CPU\n`);
  process.stdout.write(JSON.stringify({ bench: 'seccomp-runc-raw', n: o.n, variants: Object.fromEntries(raw.map((r) => [r.variant, { wallMedianS: median(r.wall), cpuPerRunS: r.cpuPerRun }])) }) + '\n');
  if (rows.some((r) => r.error)) process.exitCode = 1;
}

main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.message}\n`);
  process.exit(1);
});
