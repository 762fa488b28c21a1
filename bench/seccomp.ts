/**
 * Benchmark: what the default seccomp profile costs a `docker run --rm`.
 *
 *   node --import tsx bench/seccomp.ts [-n 30] [--warmup 3] [--raw-only] [--split]
 *
 * For berthd (and dockerd when Debian's docker.io is already installed; this bench never installs
 * it), runs `docker run --rm --network none busybox true` with the real docker CLI, taking turns
 * between the default profile and `--security-opt seccomp=unconfined`, so drift on the machine hits
 * both alike. Prints min/median/max of each and the difference of the medians (the profile's cost:
 * berth builds the filter's JSON, runc compiles and loads it).
 *
 * Then the same without any daemon: raw `runc run` of a busybox bundle whose config.json is the one
 * buildSpec writes, wall time and the CPU time runc used (user + sys of the reaped children), which a
 * busy shared machine disturbs far less than wall time. Besides the profile and unconfined, two
 * variants show the floor runc sets: the profile on the native architecture alone (no i386), and a
 * filter of one rule (default allow, so runc adds no ENOSYS stub either): what any filter costs.
 * `--raw-only` skips the daemons.
 *
 * `--split` (needs gcc and libseccomp-dev) compiles bench/seccomp-libseccomp.c and replays in it
 * what runc asks of libseccomp for the profile, phase by phase: adding the rules, the BPF export,
 * the kernel's load; the rest of runc's cost is its own Go code (JSON, the ENOSYS patch).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildSpec, type OciSpec } from '../src/runtime/spec.js';
import type { OciSeccomp } from '../src/runtime/seccomp.js';
import { removeCgroup } from '../src/runtime/cgroups.js';
import { repoRoot, testImages } from '../test/harness.js';
import { benchArgs, ensureDockerd, formatTable, loadBusybox, median, must, startBerth, startDockerd, which, type Engine } from './common.js';

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

/** The raw runc variants: the filter each one puts in the bundle (undefined = none). */
function rawVariants(profile: OciSeccomp): [string, string, OciSeccomp | undefined][] {
  const native = profile.architectures?.slice(0, 1);
  return [
    ['default profile', 'default', profile],
    ['default profile, native arch only', 'native', { ...profile, architectures: native }],
    ['one-rule filter', 'one', { defaultAction: 'SCMP_ACT_ALLOW', architectures: profile.architectures, syscalls: [{ names: ['kexec_load'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] }],
    ['unconfined', 'unconfined', undefined],
  ];
}

function benchSpec(rootfs: string, cgroupsPath: string): OciSpec {
  return buildSpec({
    rootfs, args: ['true'], env: [], cwd: '/', user: { uid: 0, gid: 0, additionalGids: [] }, hostname: 'bench', tty: false, openStdin: false,
    network: { mode: 'none' }, cgroupsPath, resources: {}, mounts: [], seccomp: 'default',
  });
}

async function rawRunc(n: number): Promise<RawRow[]> {
  const busybox = (await testImages()).find((i) => i.ref.startsWith('busybox'))!;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-seccomp-'));
  const cgroup = (mode: string) => `berth-bench-seccomp-${process.pid}/${mode}`;
  const variants = rawVariants(benchSpec('/', 'unused').linux.seccomp!);
  try {
    const rootfs = path.join(dir, 'rootfs');
    fs.mkdirSync(rootfs);
    must({ ...spawnSync('tar', ['-C', rootfs, '-xf', busybox.tar], { encoding: 'utf8' }), code: 0 }, 'untar busybox');
    for (const [, mode, filter] of variants) {
      const spec = benchSpec(rootfs, cgroup(mode));
      if (filter) spec.linux.seccomp = filter;
      else delete spec.linux.seccomp;
      fs.mkdirSync(path.join(dir, mode));
      fs.writeFileSync(path.join(dir, mode, 'config.json'), JSON.stringify(spec));
    }
    const rows: RawRow[] = variants.map(([variant]) => ({ variant, wall: [], cpuPerRun: 0 }));
    const order = variants.map((_v, k) => k);
    for (let i = 0; i < n; i++) {
      // alternate the order, so no variant always follows the same one
      for (const k of i % 2 ? [...order].reverse() : order) {
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
    for (const [, mode] of variants) removeCgroup(cgroup(mode));
    removeCgroup(`berth-bench-seccomp-${process.pid}`);
  }
}

const SCMP_ACT_ALLOW = 0x7fff0000;
const SCMP_ACT_ERRNO = 0x00050000;
const SCMP_OPS = ['', 'SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ'];

/** The profile in seccomp-libseccomp.c's input format: architectures, then one rule a name as runc adds them. */
function replayLines(p: OciSeccomp): string {
  const action = (name: string, errno: number | undefined) => {
    if (name !== 'SCMP_ACT_ALLOW' && name !== 'SCMP_ACT_ERRNO') throw new Error(`replay: action ${name} not handled`);
    return name === 'SCMP_ACT_ALLOW' ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO | (errno ?? 1);
  };
  const lines = [`D ${action(p.defaultAction, p.defaultErrnoRet)}`, ...(p.architectures ?? []).map((a) => `A ${a.replace(/^SCMP_ARCH_/, '').toLowerCase()}`)];
  for (const r of p.syscalls ?? []) {
    const args = (r.args ?? []).map((a) => `${a.index} ${SCMP_OPS.indexOf(a.op)} ${a.value} ${a.valueTwo ?? 0}`);
    for (const name of r.names) lines.push(`R ${action(r.action, r.errnoRet)} ${args.length} ${name} ${args.join(' ')}`.trimEnd());
  }
  return lines.join('\n') + '\n';
}

interface SplitPhase { minMs: number; medianMs: number }
interface SplitRow {
  rules: number; arches: number; bpfInstructions: number; ruleAdd: SplitPhase; resolvePerArch: SplitPhase; bpfExport: SplitPhase; kernelLoad: SplitPhase;
  /** Instructions libseccomp executes in the two big phases (callgrind, when valgrind is installed): the same on an idle machine and a busy one. */
  instructions?: { ruleAdd: number; bpfExport: number };
}

/** Instructions executed inside `fn` (and what it calls) during one replay, counted by callgrind. */
function instructionsIn(bin: string, input: string, fn: string): number {
  const r = spawnSync('valgrind', ['--tool=callgrind', '--callgrind-out-file=/dev/null', `--toggle-collect=${fn}`, bin, '1', 'noload'], { input, encoding: 'utf8' });
  const m = /Collected : (\d+)/.exec(r.stderr ?? '');
  if (r.status !== 0 || !m) throw new Error(`valgrind (${fn}) exited ${r.status}: ${r.stderr}`);
  return Number(m[1]);
}

/** libseccomp's and the kernel's share of the profile, from bench/seccomp-libseccomp.c; undefined when it cannot be built here. */
function splitLibseccomp(n: number): [string, SplitRow][] | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-seccomp-split-'));
  try {
    const bin = path.join(dir, 'seccomp-libseccomp');
    const cc = spawnSync('gcc', ['-O2', '-o', bin, path.join(repoRoot, 'bench/seccomp-libseccomp.c'), '-lseccomp'], { encoding: 'utf8' });
    if (cc.status !== 0) {
      process.stderr.write(`bench: --split needs gcc and libseccomp-dev (${(cc.stderr ?? cc.error?.message ?? '').trim().split('\n')[0]})\n`);
      return undefined;
    }
    const profile = benchSpec('/', 'unused').linux.seccomp!;
    const valgrind = which('valgrind');
    if (!valgrind) process.stderr.write('bench: valgrind not installed; --split prints times only, no instruction counts\n');
    return rawVariants(profile).filter(([, , f]) => f).map(([variant, , filter]) => {
      const input = replayLines(filter!);
      const r = spawnSync(bin, [String(n)], { input, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`seccomp-libseccomp (${variant}) exited ${r.status}: ${r.stderr}`);
      const row = JSON.parse(r.stdout) as SplitRow;
      if (valgrind) row.instructions = { ruleAdd: instructionsIn(bin, input, 'seccomp_rule_add_array'), bpfExport: instructionsIn(bin, input, 'seccomp_export_bpf') };
      return [variant, row];
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const ms = (s: number) => `${(s * 1000).toFixed(1)} ms`;
const stats = (xs: number[]) => `${ms(Math.min(...xs))} / ${ms(median(xs))} / ${ms(Math.max(...xs))}`;

async function main(): Promise<void> {
  const o = benchArgs('usage: bench/seccomp.ts [-n 30] [--warmup 3] [--raw-only] [--split]', ['raw-only', 'split'], {
    n: { default: 30, min: 2, max: 500, short: 'n' },
    warmup: { default: 3, min: 0, max: 20 },
  });
  await testImages();
  const rows: Row[] = [];
  if (!o.rawOnly) {
    const engines: (() => Promise<Engine>)[] = [startBerth];
    const dockerd = await ensureDockerd(false);
    if (dockerd) engines.push(() => startDockerd(dockerd));
    else process.stderr.write('bench: dockerd not installed; measuring berthd only\n');
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
    }])) }) + '\n\n');
  }
  const raw = await rawRunc(o.n);
  const bare = raw[raw.length - 1]!;
  const rawTable = raw.map((r) => [r.variant, stats(r.wall), ms(r.cpuPerRun), r === bare ? '-' : ms(r.cpuPerRun - bare.cpuPerRun)]);
  process.stdout.write(`raw runc run of a busybox bundle (buildSpec's config.json), N=${o.n} each, taking turns\n${formatTable(['variant', 'wall min/median/max', 'runc CPU per run', 'CPU cost of the filter'], rawTable, (i) => i === 0)}\n`);
  process.stdout.write(`profile cost: ${ms(median(raw[0]!.wall) - median(bare.wall))} wall (median), ${ms(raw[0]!.cpuPerRun - bare.cpuPerRun)} CPU\n`);
  process.stdout.write(JSON.stringify({ bench: 'seccomp-runc-raw', n: o.n, variants: Object.fromEntries(raw.map((r) => [r.variant, { wallMedianS: median(r.wall), cpuPerRunS: r.cpuPerRun }])) }) + '\n');
  if (o.split) {
    const split = splitLibseccomp(o.n);
    if (split) {
      const phase = (p: SplitPhase) => `${p.minMs.toFixed(2)} / ${p.medianMs.toFixed(2)}`;
      const mega = (x: number | undefined) => (x === undefined ? '-' : `${(x / 1e6).toFixed(2)} M`);
      const t = split.map(([v, r]) => [v, `${r.rules} x ${r.arches}`, String(r.bpfInstructions), phase(r.ruleAdd), phase(r.resolvePerArch), phase(r.bpfExport), phase(r.kernelLoad),
        mega(r.instructions?.ruleAdd), mega(r.instructions?.bpfExport)]);
      process.stdout.write(`\nlibseccomp and the kernel, replaying runc's calls (bench/seccomp-libseccomp.c), ms min / median of ${o.n}\n`);
      const head = ['variant', 'rules x arches', 'BPF insns', 'rule add', 'resolve per arch', 'BPF export', 'kernel load', 'rule add instr', 'BPF export instr'];
      process.stdout.write(`${formatTable(head, t, (i) => i === 0)}\n`);
      process.stdout.write(JSON.stringify({ bench: 'seccomp-libseccomp-split', n: o.n, variants: Object.fromEntries(split) }) + '\n');
    }
  }
  if (rows.some((r) => r.error)) process.exitCode = 1;
}

main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.message}\n`);
  process.exit(1);
});
