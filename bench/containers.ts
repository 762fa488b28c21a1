/**
 * Benchmark: the container verbs users repeat, berthd and dockerd side by side in one run.
 *
 *   node --import tsx bench/containers.ts [--with-dockerd] [-n 30] [--containers 50] [--stats-runs 5]
 *
 * Both engines run at once on private sockets and roots; every measurement takes turns between
 * them (berthd, dockerd, berthd, …) so a slow moment of the machine hits both alike:
 *   1. `docker exec c true` round trip on a running busybox container, N times after 3 warm-ups;
 *   2. `docker stats --no-stream` over M running containers (each call waits the one-second
 *      interval both daemons use for CPU %, so this shows what the engine adds on top);
 *   3. `docker pause c` + `docker unpause c`, N times.
 * Prints min / median / max per engine and one JSON line. Containers have no network.
 */
import { benchArgs, ensureDockerd, formatTable, loadBusybox, must, startBerth, startDockerd, timed, turns, type Engine } from './common.js';
import { testImages } from '../test/harness.js';

interface Series { name: string; values: Map<string, number[]> }

function stats(xs: number[]): { min: number; median: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { min: s[0], median: mid, max: s[s.length - 1] };
}

async function main(): Promise<void> {
  const o = benchArgs('usage: bench/containers.ts [--with-dockerd] [-n 30] [--containers 50] [--stats-runs 5]', ['with-dockerd'], {
    n: { default: 30, min: 1, max: 500, short: 'n' },
    containers: { default: 50, min: 1, max: 100 },
    'stats-runs': { default: 5, min: 1, max: 50 },
  });
  const dockerd = await ensureDockerd(o.withDockerd);
  if (!dockerd) process.stderr.write('bench: dockerd not installed; berthd alone (--with-dockerd installs docker.io)\n');
  await testImages();
  const engines: Engine[] = [];
  try {
    engines.push(await startBerth());
    if (dockerd) engines.push(await startDockerd(dockerd));
    for (const e of engines) await loadBusybox(e);
    const ids = new Map<string, string[]>();
    for (const e of engines) {
      const list: string[] = [];
      for (let i = 0; i < o.containers; i++) {
        list.push(must(await e.docker(['run', '-d', '--network', 'none', 'busybox', 'sleep', '3600']), `${e.name}: run -d`).stdout.trim());
      }
      ids.set(e.name, list);
    }
    const first = (e: Engine) => ids.get(e.name)![0]!;
    const series: Series[] = [];

    for (let i = 0; i < 3; i++) for (const e of engines) must(await e.docker(['exec', first(e), 'true']), 'exec warm-up');
    series.push({ name: 'exec c true', values: await turns(engines, o.n, (e) => timed(async () => must(await e.docker(['exec', first(e), 'true']), `${e.name}: exec`))) });
    series.push({
      name: `stats --no-stream (${o.containers} containers)`,
      values: await turns(engines, o.statsRuns, (e) => timed(async () => {
        const r = must(await e.docker(['stats', '--no-stream', ...ids.get(e.name)!], 120_000), `${e.name}: stats`);
        const rows = r.stdout.trim().split('\n').length - 1;
        if (rows !== o.containers) throw new Error(`${e.name}: stats listed ${rows} of ${o.containers} containers`);
      })),
    });
    series.push({
      name: 'pause + unpause',
      values: await turns(engines, o.n, (e) => timed(async () => {
        must(await e.docker(['pause', first(e)]), `${e.name}: pause`);
        must(await e.docker(['unpause', first(e)]), `${e.name}: unpause`);
      })),
    });

    const head = ['measurement', ...engines.flatMap((e) => [`${e.name} min`, 'median', 'max'])];
    const rows = series.map((s) => [s.name, ...engines.flatMap((e) => Object.values(stats(s.values.get(e.name)!)).map((v) => `${v.toFixed(3)} s`))]);
    process.stdout.write(`N=${o.n} (stats: ${o.statsRuns} runs), turns between engines\n${formatTable(head, rows, (i) => i === 0)}\n`);
    process.stdout.write(JSON.stringify({
      bench: 'containers',
      results: Object.fromEntries(series.map((s) => [s.name, Object.fromEntries(engines.map((e) => [e.name, stats(s.values.get(e.name)!)]))])),
    }) + '\n');
    for (const e of engines) await e.docker(['rm', '-f', ...ids.get(e.name)!], 300_000);
  } finally {
    for (const e of engines) await e.stop();
  }
}

main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.message}\n`);
  process.exit(1);
});
