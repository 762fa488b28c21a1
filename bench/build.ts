/**
 * Benchmark: builds and commit, berthd against dockerd (when Debian's docker.io is installed, or
 * installed with apt-get under --with-dockerd), side by side in one run, the engines taking turns.
 *
 *   node --import tsx bench/build.ts [--with-dockerd] [-n 20] [--context-runs 5] [--commit-runs 5]
 *
 * Through the real docker CLI with the classic builder (DOCKER_BUILDKIT=0) on each engine:
 *   cold     `docker build --no-cache` of a 10-step Dockerfile on busybox (3 RUN, 2 COPY, metadata);
 *   cached   the same build again, every step a cache hit;
 *   context  `docker build` of a 200 MB context (one random file) whose Dockerfile is `FROM busybox`
 *            + one LABEL, all cached: the time is sending and unpacking the context;
 *   commit   `docker commit` + `docker rmi` of a container that wrote 10,000 small files.
 * Prints min / median / max seconds per engine and one JSON line.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { benchArgs, ensureDockerd, formatTable, loadBusybox, median, must, onExitSync, startBerth, startDockerd, timed, type Engine } from './common.js';

const usage = 'usage: node --import tsx bench/build.ts [--with-dockerd] [-n 20] [--context-runs 5] [--commit-runs 5]';
const o = benchArgs(usage, ['with-dockerd'] as const, {
  n: { default: 20, min: 1, max: 1000, short: 'n' },
  'context-runs': { default: 5, min: 1, max: 100 },
  'commit-runs': { default: 5, min: 1, max: 100 },
});

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-build-'));
onExitSync(() => fs.rmSync(work, { recursive: true, force: true }));

function makeContexts(): { steps: string; big: string } {
  const steps = path.join(work, 'steps');
  fs.mkdirSync(steps);
  fs.writeFileSync(path.join(steps, 'a.txt'), 'a\n');
  fs.writeFileSync(path.join(steps, 'b.txt'), 'b\n');
  fs.writeFileSync(path.join(steps, 'Dockerfile'), [
    'FROM busybox',
    'ENV APP=/app',
    'WORKDIR /app',
    'COPY a.txt .',
    'RUN echo one > one.txt',
    'LABEL bench=build',
    'COPY b.txt .',
    'RUN cat a.txt b.txt > both.txt',
    'RUN ls -l > listing.txt',
    'CMD ["cat", "both.txt"]',
  ].join('\n') + '\n');
  const big = path.join(work, 'big');
  fs.mkdirSync(big);
  const fd = fs.openSync(path.join(big, 'blob.bin'), 'w');
  for (let i = 0; i < 200; i++) fs.writeSync(fd, randomBytes(1 << 20));
  fs.closeSync(fd);
  fs.writeFileSync(path.join(big, 'Dockerfile'), 'FROM busybox\nLABEL context=200MB\n');
  return { steps, big };
}

type Measure = 'cold' | 'cached' | 'context' | 'commit';

async function once(e: Engine, m: Measure, ctx: { steps: string; big: string }, i: number): Promise<number> {
  const build = (args: string[]) => e.docker(['build', ...args], 600_000);
  switch (m) {
    case 'cold': return timed(async () => must(await build(['--no-cache', '-q', '-t', 'bench-steps', ctx.steps]), 'cold build'));
    case 'cached': return timed(async () => must(await build(['-q', '-t', 'bench-steps', ctx.steps]), 'cached build'));
    case 'context': return timed(async () => must(await build(['-q', '-t', 'bench-big', ctx.big]), 'context build'));
    case 'commit': {
      const name = `bench-commit-${i}`;
      must(await e.docker(['run', '--name', name, '--network', 'none', 'busybox', 'sh', '-c',
        'mkdir /many && cd /many && i=0; while [ $i -lt 10000 ]; do echo $i > f$i; i=$((i+1)); done'], 300_000), 'write 10,000 files');
      const t = await timed(async () => {
        must(await e.docker(['commit', name, `bench-committed:${i}`], 300_000), 'commit');
        must(await e.docker(['rmi', `bench-committed:${i}`], 300_000), 'rmi');
      });
      must(await e.docker(['rm', name]), 'rm');
      return t;
    }
  }
}

async function main(): Promise<void> {
  process.env.DOCKER_BUILDKIT = '0';
  const ctx = makeContexts();
  const engines: Engine[] = [await startBerth()];
  const dockerd = await ensureDockerd(o.withDockerd);
  if (dockerd) engines.push(await startDockerd(dockerd));
  else process.stderr.write('bench: dockerd not installed (run with --with-dockerd to install docker.io): berthd only\n');
  const results = new Map<string, Map<Measure, number[]>>();
  try {
    for (const e of engines) {
      await loadBusybox(e);
      results.set(e.name, new Map());
      // Warm the cache for the cached and context runs.
      must(await e.docker(['build', '-q', '-t', 'bench-steps', ctx.steps], 600_000), 'warm-up build');
      must(await e.docker(['build', '-q', '-t', 'bench-big', ctx.big], 600_000), 'warm-up context build');
    }
    const plan: [Measure, number][] = [['cold', o.n], ['cached', o.n], ['context', o.contextRuns], ['commit', o.commitRuns]];
    for (const [m, runs] of plan) {
      for (let i = 0; i < runs; i++) {
        // Taking turns, so that the machine's state drifts alike for both.
        for (const e of engines) {
          const t = await once(e, m, ctx, i);
          const per = results.get(e.name)!;
          per.set(m, [...(per.get(m) ?? []), t]);
        }
      }
    }
  } finally {
    for (const e of engines) await e.stop().catch(() => {});
  }
  const rows: string[][] = [];
  const json: Record<string, Record<string, { min: number; median: number; max: number; n: number }>> = {};
  for (const [engine, per] of results) {
    json[engine] = {};
    for (const [m, xs] of per) {
      const s = { min: Math.min(...xs), median: median(xs), max: Math.max(...xs), n: xs.length };
      json[engine][m] = s;
      rows.push([engine, m, String(s.n), s.min.toFixed(3), s.median.toFixed(3), s.max.toFixed(3)]);
    }
  }
  process.stdout.write('build and commit, seconds (docker CLI, classic builder)\n');
  process.stdout.write(formatTable(['engine', 'measure', 'n', 'min', 'median', 'max'], rows, (i) => i < 2) + '\n');
  process.stdout.write(JSON.stringify({ bench: 'build', results: json }) + '\n');
}

main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
