/**
 * Benchmark: cold pull (then remove) of a ~90 MB, 4-layer Debian-based image from a loopback
 * registry, berthd against dockerd, side by side, in one run.
 *
 *   node --import tsx bench/pull.ts [--with-dockerd] [-n 5] [--warmup 1] [--stages]
 *
 * 1. Builds once (cached under /tmp/berth-bench-cache/) an OCI layout: mmdebstrap minbase bookworm
 *    (gzip), its /usr/share/doc again (gzip), and two layers of random data, ~90 MB compressed;
 *    skopeo copies it into Debian's docker-registry (distribution 2.8) on a free loopback port.
 * 2. Starts each engine (berthd always; dockerd when Debian's docker.io is installed, or installed
 *    with apt-get under --with-dockerd) on its own temp dirs. After the warm-ups, n rounds in which
 *    each engine in turn runs `docker pull 127.0.0.1:PORT/bench/debian:v1` then `docker rmi` of it
 *    (so the next pull is cold), each timed as wall time of the real docker CLI; a pull or rmi over
 *    120 s aborts. The engines take turns so that load from elsewhere on the host hits both alike.
 *    dockerd treats 127.0.0.0/8 registries as insecure (plain HTTP) by default, like berthd.
 *    With --stages, one more pull per engine goes through POST /images/create directly and its
 *    progress messages are printed as a timeline (when each layer finished downloading, started
 *    and finished extracting), to see where the time goes.
 * 3. Prints a table (pull+rmi median and p90, pull and rmi medians, berthd/dockerd ratio), each
 *    engine's first pull, and one JSON line.
 * On ext4 without a journal (this machine's root), a file created within minutes of many deletions
 * in its block group costs ~0.8 ms instead of ~20 µs (ext4 skips recently freed inodes one by one),
 * so each pull after an rmi can be several times slower than the first; berthd places each layer
 * in a fresh block group to avoid that (storage/overlay2.ts), dockerd does not. Daemons, the registry and temp dirs are removed at the end, also on Ctrl-C.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { startDistribution } from '../test/registry-fixtures.js';
import {
  debianImage,
  ensureDockerd,
  formatTable,
  benchArgs,
  guardRegistry,
  median,
  must,
  pushLayout,
  quantile,
  startBerth,
  startDockerd,
  timed,
  type Engine,
} from './common.js';

interface Options {
  withDockerd: boolean;
  n: number;
  warmup: number;
  /** One more pull per engine through the Engine API, printed as a per-layer timeline. */
  stages: boolean;
}

interface EngineResult {
  engine: string;
  version?: string;
  pullS?: number[];
  rmiS?: number[];
  totalS?: number[];
  /** The first warm-up pull, into a data root nothing was ever deleted from. */
  firstPullS?: number;
  /** Bytes under the data root after the last rmi: what a "cold" pull could still reuse. */
  leftAfterRmiMB?: number;
  error?: string;
}

const PULL_TIMEOUT_MS = 120_000;

/** Bytes of regular files under dir (not following symlinks, not crossing into mounts' contents twice). */
function duBytes(dir: string): number {
  let total = 0;
  const walk = (d: string) => {
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        try {
          total += fs.lstatSync(p).size;
        } catch {}
      }
    }
  };
  walk(dir);
  return total;
}

/** One cold pull then rmi, each timed. */
async function pullRmi(engine: Engine, ref: string, what: string): Promise<{ pull: number; rmi: number }> {
  const pull = await timed(async () => must(await engine.docker(['pull', ref], PULL_TIMEOUT_MS), `${engine.name}: docker pull (${what})`));
  const rmi = await timed(async () => must(await engine.docker(['rmi', ref], PULL_TIMEOUT_MS), `${engine.name}: docker rmi (${what})`));
  return { pull, rmi };
}

/**
 * The engines take turns, run by run (the first engine alternating), so a burst of load from the
 * rest of the machine hits both alike instead of deciding the ratio.
 */
async function measure(engines: Engine[], results: EngineResult[], ref: string, o: Options): Promise<void> {
  const fail = (i: number, e: unknown) => {
    results[i].error = (e as Error).message;
    process.stderr.write(`bench: ${engines[i].name} failed: ${results[i].error}\n${engines[i].log()}\n`);
  };
  for (const [i, engine] of engines.entries()) {
    try {
      results[i].version = await engine.version();
      for (let w = 0; w < o.warmup; w++) {
        const { pull } = await pullRmi(engine, ref, 'warm-up');
        results[i].firstPullS ??= pull;
      }
    } catch (e) {
      fail(i, e);
    }
  }
  for (let run = 0; run < o.n; run++) {
    const order = engines.map((_, i) => i);
    if (run % 2) order.reverse();
    for (const i of order) {
      const res = results[i];
      if (res.error) continue;
      try {
        const { pull, rmi } = await pullRmi(engines[i], ref, `run ${run + 1}`);
        res.pullS!.push(pull);
        res.rmiS!.push(rmi);
        res.totalS!.push(pull + rmi);
        process.stderr.write(`bench: ${res.engine} run ${run + 1}/${o.n}: pull ${pull.toFixed(3)} s + rmi ${rmi.toFixed(3)} s\n`);
      } catch (e) {
        fail(i, e);
      }
    }
  }
  for (const [i, engine] of engines.entries()) results[i].leftAfterRmiMB = duBytes(engine.target.dataRoot) / 1e6;
}

/**
 * One cold pull through the Engine API (then rmi), timing the first "Download complete",
 * "Extracting" and "Pull complete" message of each layer from the start of the request.
 */
async function stageTimeline(engine: Engine, ref: string): Promise<string> {
  const socket = String(engine.env.DOCKER_HOST).replace(/^unix:\/\//, '');
  const [name, tag] = [ref.slice(0, ref.lastIndexOf(':')), ref.slice(ref.lastIndexOf(':') + 1)];
  const t0 = performance.now();
  const at = new Map<string, Map<string, number>>();
  await new Promise<void>((resolve, reject) => {
    const req = http.request(
      { socketPath: socket, method: 'POST', path: `/v1.41/images/create?fromImage=${encodeURIComponent(name)}&tag=${encodeURIComponent(tag)}`, timeout: PULL_TIMEOUT_MS },
      (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          buf += c;
          for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
            const line = buf.slice(0, i).trim();
            buf = buf.slice(i + 1);
            if (!line) continue;
            const m = JSON.parse(line) as { id?: string; status?: string; error?: string };
            if (m.error) return req.destroy(new Error(m.error));
            if (!m.id || !m.status) continue;
            if (!at.has(m.id)) at.set(m.id, new Map());
            if (!at.get(m.id)!.has(m.status)) at.get(m.id)!.set(m.status, (performance.now() - t0) / 1000);
          }
        });
        res.on('end', resolve);
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`pull timed out after ${PULL_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
  const total = (performance.now() - t0) / 1000;
  must(await engine.docker(['rmi', ref], PULL_TIMEOUT_MS), `${engine.name}: docker rmi (stages)`);
  const rows = [...at]
    .filter(([, s]) => s.has('Pull complete'))
    .map(([id, s]) => [engine.name, id, f3(s.get('Download complete')), f3(s.get('Extracting')), f3(s.get('Pull complete')), f3((s.get('Pull complete') ?? 0) - (s.get('Extracting') ?? 0))]);
  rows.push([engine.name, 'whole pull', '', '', f3(total), '']);
  return formatTable(['engine', 'layer', 'downloaded at', 'extracting from', 'complete at', 'extract s'], rows, (i) => i < 2);
}

const f3 = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(3));
const q = (xs: number[] | undefined, p: number) => (xs?.length ? quantile([...xs].sort((a, b) => a - b), p) : undefined);

function summary(results: EngineResult[]): { table: string; ratio?: number } {
  const berth = results.find((r) => r.engine === 'berthd' && !r.error);
  const dockerd = results.find((r) => r.engine === 'dockerd' && !r.error);
  const ratio = berth?.totalS?.length && dockerd?.totalS?.length ? median(berth.totalS) / median(dockerd.totalS) : undefined;
  const head = ['engine', 'version', 'pull+rmi median', 'pull+rmi p90', 'pull median', 'rmi median', 'vs dockerd', 'left after rmi'];
  const rows = results.map((r) =>
    r.error
      ? [r.engine, r.version ?? '-', 'error', '-', '-', '-', '-', '-']
      : [
          r.engine,
          r.version ?? '-',
          `${f3(median(r.totalS!))} s`,
          `${f3(q(r.totalS, 0.9))} s`,
          `${f3(median(r.pullS!))} s`,
          `${f3(median(r.rmiS!))} s`,
          r.engine === 'berthd' && ratio !== undefined ? `${ratio.toFixed(2)}x` : r.engine === 'dockerd' ? '1.00x' : '-',
          `${(r.leftAfterRmiMB ?? 0).toFixed(1)} MB`,
        ],
  );
  return { table: formatTable(head, rows, (i) => i < 2), ratio };
}

async function main(): Promise<void> {
  const o = benchArgs('usage: bench/pull.ts [--with-dockerd] [-n 5] [--warmup 1] [--stages]', ['with-dockerd', 'stages'], {
    n: { default: 5, min: 1, max: 100, short: 'n' },
    warmup: { default: 1, min: 0, max: 10 },
  });
  const starts: (() => Promise<Engine>)[] = [startBerth];
  const dockerd = await ensureDockerd(o.withDockerd);
  if (dockerd) starts.push(() => startDockerd(dockerd));
  else process.stderr.write('bench: dockerd not installed; measuring berthd only (--with-dockerd installs docker.io)\n');

  process.stderr.write('bench: building the image (cached)...\n');
  const img = await debianImage();
  const mb = img.bytes / 1e6;
  process.stderr.write(`bench: image ${mb.toFixed(1)} MB compressed in ${img.layers} layers (${img.source})\n`);

  const reg = await startDistribution();
  const forgetReg = guardRegistry(reg);
  const ref = `${reg.host}/bench/debian:v1`;
  const running: Engine[] = [];
  const timelines: string[] = [];
  let results: EngineResult[] = [];
  try {
    await pushLayout(img.layout, ref);
    for (const start of starts) {
      const name = start === startBerth ? 'berthd' : 'dockerd';
      try {
        running.push(await start());
      } catch (e) {
        results.push({ engine: name, error: (e as Error).message });
        process.stderr.write(`bench: ${name} did not start: ${(e as Error).message}\n`);
      }
    }
    const measured: EngineResult[] = running.map((e) => ({ engine: e.name, pullS: [], rmiS: [], totalS: [] }));
    process.stderr.write(`bench: measuring ${running.map((e) => e.name).join(' and ')}, taking turns...\n`);
    await measure(running, measured, ref, o);
    results = [...measured, ...results];
    if (o.stages) {
      for (const e of running) {
        try {
          timelines.push(await stageTimeline(e, ref));
        } catch (err) {
          process.stderr.write(`bench: ${e.name}: stage timeline failed: ${(err as Error).message}\n`);
        }
      }
    }
  } finally {
    for (const e of running) await e.stop();
    await reg.stop();
    forgetReg();
  }

  const { table, ratio } = summary(results);
  process.stdout.write(
    `docker pull + docker rmi of a ${mb.toFixed(1)} MB, ${img.layers}-layer image (${img.source}) from distribution 2.8 on loopback: N=${o.n} after ${o.warmup} warm-up(s)\n`,
  );
  process.stdout.write(table + '\n');
  const firsts = results.filter((r) => r.firstPullS !== undefined).map((r) => `${r.engine} ${f3(r.firstPullS)} s`);
  if (firsts.length) process.stdout.write(`first pull, into a data root nothing was deleted from yet (warm-up): ${firsts.join(', ')}\n`);
  if (timelines.length) process.stdout.write(`\nOne more cold pull per engine through the API (seconds from the request):\n${timelines.join('\n')}\n`);
  const round = (xs: number[] | undefined) => xs?.map((x) => Number(x.toFixed(4)));
  const json = {
    bench: 'pull-rmi',
    imageMB: Number(mb.toFixed(1)),
    layers: img.layers,
    source: img.source,
    n: o.n,
    warmup: o.warmup,
    ratio: ratio === undefined ? undefined : Number(ratio.toFixed(3)),
    engines: Object.fromEntries(
      results.map((r) => [
        r.engine,
        r.error
          ? { error: r.error }
          : {
              version: r.version,
              medianS: Number(median(r.totalS!).toFixed(4)),
              p90S: Number(q(r.totalS, 0.9)!.toFixed(4)),
              pullMedianS: Number(median(r.pullS!).toFixed(4)),
              rmiMedianS: Number(median(r.rmiS!).toFixed(4)),
              firstPullS: r.firstPullS === undefined ? undefined : Number(r.firstPullS.toFixed(4)),
              leftAfterRmiMB: Number((r.leftAfterRmiMB ?? 0).toFixed(1)),
              pullS: round(r.pullS),
              rmiS: round(r.rmiS),
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
