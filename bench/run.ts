/**
 * Benchmark: berthd against dockerd, side by side, in one run.
 *
 *   node --import tsx bench/run.ts [--with-dockerd] [-n 30] [--warmup 3] [--containers 10]
 *
 * For each engine (berthd always; dockerd when Debian's docker.io is installed, or installed with
 * apt-get under --with-dockerd):
 *   1. start it on its own temp socket, data root, exec root, pidfile and cgroup parent under /tmp;
 *   2. idle RSS: 2 s after start, VmRSS of the engine's processes (berthd; dockerd + containerd);
 *   3. import the same busybox rootfs tar (scripts/mkimage-busybox.sh);
 *   4. per-container overhead: engine RSS (berthd + conmons; dockerd + containerd + shims) with
 *      N `sleep` containers running, minus the engine RSS just before starting them, divided by N,
 *      split into new monitor processes and growth of the engine itself (each RSS figure is the
 *      median of 5 samples; measured before the timing runs so their garbage does not count);
 *   5. wall time of `docker run --rm --network none busybox true` with the real docker CLI,
 *      after the warm-ups, sequentially; median and p90;
 *   6. stop it and remove everything it left (also on Ctrl-C / kill, via the harness's cleanup).
 * Only unix sockets; containers have no network. Prints an aligned table and one JSON line.
 */
import { testImages } from '../test/harness.js';
import { measureEach, benchArgs, ensureDockerd, formatTable, loadBusybox, must, quantile, sampleRss, sleep, startBerth, startDockerd, sum, type Engine } from './common.js';

interface Options {
  withDockerd: boolean;
  n: number;
  warmup: number;
  containers: number;
}

interface EngineResult {
  engine: string;
  version?: string;
  runs?: number[];
  medianS?: number;
  p90S?: number;
  idleRssMB?: number;
  perContainerMB?: number;
  /** Part of perContainerMB: processes started for the containers (conmon; containerd-shim). */
  monitorMB?: number;
  /** Part of perContainerMB: growth of the processes that were already running (the engine itself). */
  engineGrowthMB?: number;
  error?: string;
}

// ---------------------------------------------------------------------------------------------
// The measurements

async function measure(engine: Engine, o: Options): Promise<EngineResult> {
  const res: EngineResult = { engine: engine.name };
  const docker = (args: string[], timeoutMs = 60_000) => engine.docker(args, timeoutMs);
  res.version = await engine.version();

  await sleep(2000);
  res.idleRssMB = sum((await sampleRss(engine.target)).values()) / 1024;
  await loadBusybox(engine);

  // Per-container overhead first, before the timing runs leave garbage in the daemons' heaps.
  const before = await sampleRss(engine.target);
  const ids: string[] = [];
  try {
    for (let i = 0; i < o.containers; i++) {
      ids.push(must(await docker(['run', '-d', '--network', 'none', 'busybox', 'sleep', '600']), `${engine.name}: docker run -d`).stdout.trim());
    }
    await sleep(2000);
    const after = await sampleRss(engine.target);
    const mb = (kb: number) => kb / 1024 / o.containers;
    res.monitorMB = mb(sum([...after].filter(([pid]) => !before.has(pid)).map(([, kb]) => kb)));
    res.engineGrowthMB = mb(sum([...after].filter(([pid]) => before.has(pid)).map(([pid, kb]) => kb - before.get(pid)!)));
    res.perContainerMB = res.monitorMB + res.engineGrowthMB;
  } finally {
    if (ids.length) await docker(['rm', '-f', ...ids], 120_000);
  }

  const runArgs = ['run', '--rm', '--network', 'none', 'busybox', 'true'];
  for (let i = 0; i < o.warmup; i++) must(await docker(runArgs), `${engine.name}: docker run (warm-up)`);
  const times: number[] = [];
  for (let i = 0; i < o.n; i++) {
    const t0 = process.hrtime.bigint();
    must(await docker(runArgs), `${engine.name}: docker run`);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  res.runs = times;
  const sorted = [...times].sort((a, b) => a - b);
  res.medianS = quantile(sorted, 0.5);
  res.p90S = quantile(sorted, 0.9);
  return res;
}

function fmt(v: number | undefined, unit: string, digits: number): string {
  return v === undefined ? '-' : `${v.toFixed(digits)} ${unit}`;
}

function table(results: EngineResult[], o: Options): string {
  const head = ['engine', 'version', 'run median', 'run p90', 'idle RSS', 'per container', '(monitor + engine)'];
  const rows = results.map((r) =>
    r.error
      ? [r.engine, r.version ?? '-', 'error', '-', '-', '-', '-']
      : [
          r.engine,
          r.version ?? '-',
          fmt(r.medianS, 's', 3),
          fmt(r.p90S, 's', 3),
          fmt(r.idleRssMB, 'MB', 1),
          fmt(r.perContainerMB, 'MB', 1),
          `(${fmt(r.monitorMB, 'MB', 1)} + ${fmt(r.engineGrowthMB, 'MB', 1)})`,
        ],
  );
  const title = `docker run --rm --network none busybox true: N=${o.n} after ${o.warmup} warm-ups; per container: ${o.containers} sleep containers`;
  return [title, formatTable(head, rows, (i) => i < 2)].join('\n');
}

async function main(): Promise<void> {
  const o = benchArgs('usage: bench/run.ts [--with-dockerd] [-n 30] [--warmup 3] [--containers 10]', ['with-dockerd'], {
    n: { default: 30, min: 1, max: 500, short: 'n' },
    warmup: { default: 3, min: 0, max: 20 },
    containers: { default: 10, min: 1, max: 50 },
  });
  const engines: (() => Promise<Engine>)[] = [startBerth];
  const dockerd = await ensureDockerd(o.withDockerd);
  if (dockerd) engines.push(() => startDockerd(dockerd));
  else process.stderr.write('bench: dockerd not installed; comparing berthd only (--with-dockerd installs docker.io)\n');
  await testImages(); // build the tars before any engine starts

  const results = await measureEach<EngineResult>(engines, (engine) => measure(engine, o));

  process.stdout.write(table(results, o) + '\n');
  const json = {
    bench: 'docker-run-rm-true',
    n: o.n,
    warmup: o.warmup,
    containers: o.containers,
    engines: Object.fromEntries(
      results.map((r) => [
        r.engine,
        r.error
          ? { error: r.error }
          : {
              version: r.version,
              medianS: r.medianS,
              p90S: r.p90S,
              idleRssMB: Number(r.idleRssMB?.toFixed(1)),
              perContainerMB: Number(r.perContainerMB?.toFixed(2)),
              monitorMB: Number(r.monitorMB?.toFixed(2)),
              engineGrowthMB: Number(r.engineGrowthMB?.toFixed(2)),
              runsS: r.runs?.map((x) => Number(x.toFixed(4))),
            },
      ]),
    ),
  };
  process.stdout.write(JSON.stringify(json) + '\n');
  if (results.some((r) => r.error)) process.exitCode = 1;
}

main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.message}\n`);
  process.exit(1);
});
