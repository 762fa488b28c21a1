/**
 * Benchmark: what one health-check probe costs, berthd against dockerd, side by side.
 *
 *   node --import tsx bench/health.ts [--with-dockerd] [-n 30]
 *
 * For each engine (berthd always; dockerd when Debian's docker.io is installed, or installed with
 * apt-get under --with-dockerd): start it on its own temp dirs, import busybox, run one
 * `sleep` container with `--health-cmd true --health-interval 100ms`, wait until n probes have
 * run, and read the engine's own events for them: probe time = exec_create → exec_die of one
 * probe (what the engine spends creating, starting and reaping the exec), cycle = exec_create →
 * the next exec_create (interval + probe + bookkeeping). Prints min/median/max and one JSON line.
 */
import { testImages } from '../test/harness.js';
import { measureEach, benchArgs, ensureDockerd, formatTable, loadBusybox, median, must, sleep, startBerth, startDockerd, type Engine } from './common.js';

interface Result {
  engine: string;
  version?: string;
  probeMs?: number[];
  cycleMs?: number[];
  error?: string;
}

/** One event as printed by the docker CLI's --format (timeNano as text: it does not fit a double). */
interface Ev { timeNano: bigint; action: string; execId: string }

async function measure(engine: Engine, n: number): Promise<Result> {
  const res: Result = { engine: engine.name, version: await engine.version() };
  await loadBusybox(engine);
  const since = (Date.now() / 1000).toFixed(3);
  const id = must(await engine.docker(['run', '-d', '--health-cmd', 'true', '--health-interval', '100ms', 'busybox', 'sleep', '600']), 'run').stdout.trim();
  try {
    const deadline = Date.now() + 60_000 + n * 2000;
    let events: Ev[] = [];
    for (;;) {
      const r = must(await engine.docker(['events', '--since', since, '--until', (Date.now() / 1000).toFixed(3), '--filter', `container=${id}`, '--format', '{{.TimeNano}}|{{.Action}}|{{index .Actor.Attributes "execID"}}']), 'events');
      events = r.stdout.trim().split('\n').filter(Boolean).map((l) => {
        const [time, action, execId] = l.split('|');
        return { timeNano: BigInt(time!), action: action!, execId: execId ?? '' };
      });
      const dies = events.filter((e) => e.action === 'exec_die').length;
      if (dies >= n + 1) break;
      if (Date.now() > deadline) throw new Error(`only ${dies} probes ran`);
      await sleep(500);
    }
    const t = (e: Ev) => Number(e.timeNano / 1000n) / 1000;
    const created = new Map<string, number>();
    const starts: number[] = [];
    const probes: number[] = [];
    for (const e of events) {
      const exec = e.execId;
      if (!exec) continue;
      if (e.action.startsWith('exec_create')) {
        created.set(exec, t(e));
        starts.push(t(e));
      } else if (e.action === 'exec_die' && created.has(exec)) {
        probes.push(t(e) - created.get(exec)!);
      }
    }
    res.probeMs = probes.slice(0, n);
    res.cycleMs = starts.slice(1, n + 1).map((s, i) => s - starts[i]!);
  } finally {
    await engine.docker(['rm', '-f', id]);
  }
  return res;
}

function stats(xs: number[] | undefined): string {
  if (!xs?.length) return '-';
  const s = [...xs].sort((a, b) => a - b);
  return `${s[0]!.toFixed(1)} / ${median(s).toFixed(1)} / ${s[s.length - 1]!.toFixed(1)}`;
}

async function main(): Promise<void> {
  const o = benchArgs('usage: bench/health.ts [--with-dockerd] [-n 30]', ['with-dockerd'], { n: { default: 30, min: 20, max: 200, short: 'n' } });
  const engines: (() => Promise<Engine>)[] = [startBerth];
  const dockerd = await ensureDockerd(o.withDockerd);
  if (dockerd) engines.push(() => startDockerd(dockerd));
  else process.stderr.write('bench: dockerd not installed; measuring berthd only (--with-dockerd installs docker.io)\n');
  await testImages();

  const results = await measureEach<Result>(engines, (engine) => measure(engine, o.n));
  const head = ['engine', 'version', 'probe ms (min / median / max)', 'cycle ms at 100ms interval (min / median / max)'];
  const rows = results.map((r) => r.error ? [r.engine, r.version ?? '', `error: ${r.error}`, ''] : [r.engine, r.version ?? '', stats(r.probeMs), stats(r.cycleMs)]);
  process.stdout.write(`health probes (--health-cmd true), N=${o.n}\n${formatTable(head, rows, (i) => i < 2)}\n`);
  process.stdout.write(JSON.stringify({ bench: 'health-probe', n: o.n, engines: Object.fromEntries(results.map((r) => [r.engine, r])) }) + '\n');
  if (results.some((r) => r.error)) process.exitCode = 1;
}

main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.message}\n`);
  process.exit(1);
});
