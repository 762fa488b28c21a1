/**
 * Benchmark: the memory an engine holds idle, after a day's work, and once that work is over.
 *
 *   node --import tsx bench/memory.ts [--with-dockerd] [--berthd-only] [--pulls 4] [--runs 50] [--settle 30]
 *
 * For each engine (berthd always; dockerd when Debian's docker.io is installed, or installed with
 * apt-get under --with-dockerd), each on its own temp socket, data root, exec root and cgroup parent:
 *   1. idle: RSS 2 s after start (berthd; dockerd + containerd);
 *   2. after the work: `docker pull` + `docker rmi` of the ~90 MB, 4-layer Debian image that
 *      bench/pull.ts uses (from distribution 2.8 on loopback), `--pulls` times, then `--runs` times
 *      `docker run --rm --network none busybox true`; RSS 2 s after the last of them;
 *   3. settled: RSS again `--settle` seconds later, with nothing asked of the engine meanwhile.
 * The engines take turns, pull by pull and run by run, so load from elsewhere on the host hits both
 * alike. Each RSS figure is the median of 5 samples 400 ms apart; every sample is printed. The
 * run count is the workload, not a timing loop. For berthd the table also shows where its RSS lies
 * (/proc/PID/status: anonymous memory vs mapped files) and its thread count.
 * Prints a table, the targets against the figures, and one JSON line.
 */
import * as fs from 'node:fs';
import { startDistribution } from '../test/registry-fixtures.js';
import {
  benchArgs,
  debianImage,
  engineRss,
  ensureDockerd,
  formatTable,
  guardRegistry,
  loadBusybox,
  must,
  pushLayout,
  sleep,
  startBerth,
  startDockerd,
  sum,
  type Engine,
} from './common.js';

interface Options {
  withDockerd: boolean;
  berthdOnly: boolean;
  pulls: number;
  runs: number;
  settle: number;
}

/** Where a process's RSS lies, from /proc/PID/status, in KiB. */
interface Breakdown { anonKb: number; fileKb: number; threads: number }

interface Phase {
  /** Sum over the engine's processes, KiB: the median of the samples. */
  kb: number;
  samplesKb: number[];
  /** The processes counted in the median sample, by their command name. */
  processes: Record<string, number>;
  /** For berthd: its one process. */
  breakdown?: Breakdown;
}

interface EngineResult {
  engine: string;
  version?: string;
  idle?: Phase;
  afterWork?: Phase;
  settled?: Phase;
  error?: string;
}

const PULL_TIMEOUT_MS = 120_000;
const mib = (kb: number) => kb / 1024;

function comm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return String(pid);
  }
}

function breakdown(pid: number): Breakdown | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    return { anonKb: field('RssAnon'), fileKb: field('RssFile') + field('RssShmem'), threads: field('Threads') };
  } catch {
    return undefined;
  }
}

/** Five RSS samples of the engine's processes 400 ms apart, each printed; the median is the figure. */
async function phase(engine: Engine, what: string): Promise<Phase> {
  const samples: Map<number, number>[] = [];
  for (let i = 0; i < 5; i++) {
    if (i) await sleep(400);
    const s = engineRss(engine.target);
    samples.push(s);
    const parts = [...s].map(([pid, kb]) => `${comm(pid)} ${mib(kb).toFixed(1)}`).join(' + ');
    process.stderr.write(`bench: ${engine.name} ${what} sample ${i + 1}/5: ${mib(sum(s.values())).toFixed(1)} MiB (${parts})\n`);
  }
  const sorted = [...samples].sort((a, b) => sum(a.values()) - sum(b.values()));
  const mid = sorted[2];
  const processes: Record<string, number> = {};
  for (const [pid, kb] of mid) {
    const name = comm(pid);
    processes[name] = (processes[name] ?? 0) + kb;
  }
  const res: Phase = { kb: sum(mid.values()), samplesKb: samples.map((s) => sum(s.values())), processes };
  if (engine.daemon) res.breakdown = breakdown(engine.daemon.pid);
  return res;
}

async function pullRmi(engine: Engine, ref: string, i: number): Promise<void> {
  must(await engine.docker(['pull', ref], PULL_TIMEOUT_MS), `${engine.name}: docker pull ${i}`);
  must(await engine.docker(['rmi', ref], PULL_TIMEOUT_MS), `${engine.name}: docker rmi ${i}`);
}

/** Runs fn for each engine that has not failed yet, the first engine alternating from round to round. */
async function inTurns(engines: Engine[], results: EngineResult[], round: number, fn: (e: Engine) => Promise<void>): Promise<void> {
  const order = engines.map((_, i) => i);
  if (round % 2) order.reverse();
  for (const i of order) {
    if (results[i].error) continue;
    try {
      await fn(engines[i]);
    } catch (e) {
      results[i].error = (e as Error).message;
      process.stderr.write(`bench: ${engines[i].name} failed: ${results[i].error}\n${engines[i].log()}\n`);
    }
  }
}

async function measure(engines: Engine[], results: EngineResult[], ref: string, o: Options): Promise<void> {
  const everyEngine = async (what: string, fn: (e: Engine, r: EngineResult) => Promise<void>) =>
    inTurns(engines, results, 0, async (e) => {
      process.stderr.write(`bench: ${e.name}: ${what}\n`);
      await fn(e, results[engines.indexOf(e)]);
    });
  await sleep(2000);
  await everyEngine('idle', async (e, r) => {
    r.version = await e.version();
    r.idle = await phase(e, 'idle');
  });
  await everyEngine('importing busybox', (e) => loadBusybox(e));
  for (let i = 0; i < o.pulls; i++) {
    await inTurns(engines, results, i, async (e) => {
      const t0 = performance.now();
      await pullRmi(e, ref, i + 1);
      process.stderr.write(`bench: ${e.name} pull + rmi ${i + 1}/${o.pulls}: ${((performance.now() - t0) / 1000).toFixed(2)} s\n`);
    });
  }
  const runArgs = ['run', '--rm', '--network', 'none', 'busybox', 'true'];
  for (let i = 0; i < o.runs; i++) {
    await inTurns(engines, results, i, async (e) => {
      must(await e.docker(runArgs), `${e.name}: docker run ${i + 1}`);
    });
  }
  process.stderr.write(`bench: ${o.runs} runs done\n`);
  await sleep(2000);
  await everyEngine('after the work', async (e, r) => {
    r.afterWork = await phase(e, 'after the work');
  });
  process.stderr.write(`bench: ${o.settle} s with nothing to do...\n`);
  await sleep(o.settle * 1000);
  await everyEngine('settled', async (e, r) => {
    r.settled = await phase(e, `${o.settle} s later`);
  });
}

const fmtMiB = (p: Phase | undefined) => (p ? `${mib(p.kb).toFixed(1)} MiB` : '-');
const fmtBreakdown = (p: Phase | undefined) => (p?.breakdown ? `${mib(p.breakdown.anonKb).toFixed(1)} + ${mib(p.breakdown.fileKb).toFixed(1)}, ${p.breakdown.threads}` : '-');
const fmtProcesses = (p: Phase | undefined) => (p ? Object.entries(p.processes).map(([n, kb]) => `${n} ${mib(kb).toFixed(1)}`).join(' + ') : '-');

function table(results: EngineResult[], o: Options): string {
  const head = ['engine', 'version', 'idle', 'after work', `${o.settle} s later`, 'settled: processes (MiB)', 'anon + file MiB, threads (idle → settled)'];
  const rows = results.map((r) =>
    r.error
      ? [r.engine, r.version ?? '-', 'error', '-', '-', '-', '-']
      : [
          r.engine,
          r.version ?? '-',
          fmtMiB(r.idle),
          fmtMiB(r.afterWork),
          fmtMiB(r.settled),
          fmtProcesses(r.settled),
          r.idle?.breakdown ? `${fmtBreakdown(r.idle)} → ${fmtBreakdown(r.settled)}` : '-',
        ],
  );
  return formatTable(head, rows, (i) => i < 2 || i >= 5);
}

/** The targets: idle ≤ 60 MiB; after the work ≤ 0.5× dockerd + containerd and ≤ 1.5× berthd idle. */
function targets(results: EngineResult[]): { text: string; checks: Record<string, boolean> } {
  const b = results.find((r) => r.engine === 'berthd' && !r.error);
  const d = results.find((r) => r.engine === 'dockerd' && !r.error);
  if (!b?.idle || !b.afterWork || !b.settled) return { text: 'targets: berthd has no figures', checks: {} };
  const lines: string[] = [];
  const checks: Record<string, boolean> = {};
  const check = (name: string, value: number, limit: number, what: string) => {
    checks[name] = value <= limit;
    lines.push(`  ${checks[name] ? 'met    ' : 'MISSED '} ${what}: ${value.toFixed(1)} MiB ≤ ${limit.toFixed(1)} MiB`);
  };
  const worst = Math.max(b.afterWork.kb, b.settled.kb);
  check('idle', mib(b.idle.kb), 60, 'berthd idle ≤ 60 MiB');
  check('vsIdle', mib(worst), 1.5 * mib(b.idle.kb), 'berthd after the work (the larger of after / settled) ≤ 1.5× its idle');
  if (d?.afterWork) check('vsDocker', mib(worst), 0.5 * mib(d.afterWork.kb), 'berthd after the work ≤ 0.5× dockerd + containerd after the same work');
  else lines.push('  (no dockerd figures: run with --with-dockerd for the third target)');
  return { text: ['targets:', ...lines].join('\n'), checks };
}

async function main(): Promise<void> {
  const o = benchArgs('usage: bench/memory.ts [--with-dockerd] [--berthd-only] [--pulls 4] [--runs 50] [--settle 30]', ['with-dockerd', 'berthd-only'], {
    pulls: { default: 4, min: 0, max: 50 },
    runs: { default: 50, min: 0, max: 1000 },
    settle: { default: 30, min: 0, max: 600 },
  });
  const starts: (() => Promise<Engine>)[] = [startBerth];
  const dockerd = o.berthdOnly ? undefined : await ensureDockerd(o.withDockerd);
  if (dockerd) starts.push(() => startDockerd(dockerd));
  else if (!o.berthdOnly) process.stderr.write('bench: dockerd not installed; measuring berthd only (--with-dockerd installs docker.io)\n');

  process.stderr.write('bench: building the image (cached)...\n');
  const img = await debianImage();
  const reg = await startDistribution();
  const forgetReg = guardRegistry(reg);
  const ref = `${reg.host}/bench/debian:v1`;
  const running: Engine[] = [];
  const results: EngineResult[] = [];
  try {
    await pushLayout(img.layout, ref);
    for (const start of starts) {
      try {
        running.push(await start());
      } catch (e) {
        results.push({ engine: start === startBerth ? 'berthd' : 'dockerd', error: (e as Error).message });
        process.stderr.write(`bench: did not start: ${(e as Error).message}\n`);
      }
    }
    const measured: EngineResult[] = running.map((e) => ({ engine: e.name }));
    await measure(running, measured, ref, o);
    results.unshift(...measured);
  } finally {
    for (const e of running) await e.stop();
    await reg.stop();
    forgetReg();
  }

  const mb = img.bytes / 1e6;
  process.stdout.write(
    `RSS (MiB) idle, after ${o.pulls} × pull + rmi of a ${mb.toFixed(1)} MB ${img.layers}-layer image from distribution 2.8 on loopback and ${o.runs} × docker run --rm --network none busybox true, and ${o.settle} s later\n`,
  );
  process.stdout.write(table(results, o) + '\n');
  const t = targets(results);
  process.stdout.write(t.text + '\n');
  const phaseJson = (p: Phase | undefined) =>
    p && {
      MiB: Number(mib(p.kb).toFixed(1)),
      samplesMiB: p.samplesKb.map((kb) => Number(mib(kb).toFixed(1))),
      processesMiB: Object.fromEntries(Object.entries(p.processes).map(([n, kb]) => [n, Number(mib(kb).toFixed(1))])),
      ...(p.breakdown ? { anonMiB: Number(mib(p.breakdown.anonKb).toFixed(1)), fileMiB: Number(mib(p.breakdown.fileKb).toFixed(1)), threads: p.breakdown.threads } : {}),
    };
  const json = {
    bench: 'memory',
    imageMB: Number(mb.toFixed(1)),
    pulls: o.pulls,
    runs: o.runs,
    settleS: o.settle,
    targets: t.checks,
    engines: Object.fromEntries(
      results.map((r) => [r.engine, r.error ? { error: r.error } : { version: r.version, idle: phaseJson(r.idle), afterWork: phaseJson(r.afterWork), settled: phaseJson(r.settled) }]),
    ),
  };
  process.stdout.write(JSON.stringify(json) + '\n');
  if (results.some((r) => r.error)) process.exitCode = 1;
}

main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.message}\n`);
  process.exit(1);
});
