/**
 * Benchmark: `docker load` and `docker save` throughput of the pull benches' Debian image (~90 MB
 * compressed in 4 layers; as a docker-archive its layers are uncompressed), berthd against dockerd
 * side by side when dockerd is installed (or installed with apt-get under --with-dockerd).
 *
 *   node --import tsx bench/saveload.ts [--with-dockerd] [-n 5]
 *
 * 1. skopeo copies the cached OCI layout (bench/common.ts debianImage) into a docker-archive tar once.
 * 2. Per engine, taking turns run by run: `docker load -i archive` (timed), `docker save -o out.tar`
 *    (timed; the file is removed), `docker rmi` (not timed), so every load is cold.
 * 3. Prints min/median/max seconds and MB/s (archive bytes / median seconds) per engine and verb.
 * Engines and temp files are removed at the end, also on Ctrl-C.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchArgs, debianImage, ensureDockerd, formatTable, median, must, mustRun, onExitSync, startBerth, startDockerd, timed, type Engine } from './common.js';

const usage = 'usage: node --import tsx bench/saveload.ts [--with-dockerd] [-n 5]';
const o = benchArgs(usage, ['with-dockerd'] as const, { n: { default: 5, min: 1, max: 50, short: 'n' } });
const REF = 'bench/debian:v1';
const TIMEOUT = 300_000;

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-saveload-'));
const forget = onExitSync(() => fs.rmSync(work, { recursive: true, force: true }));
const engines: Engine[] = [];
try {
  const img = await debianImage();
  const archive = path.join(work, 'debian.tar');
  await mustRun('skopeo', ['--insecure-policy', 'copy', '--quiet', `oci:${img.layout}:bench`, `docker-archive:${archive}:${REF}`], TIMEOUT);
  const bytes = fs.statSync(archive).size;
  process.stderr.write(`bench: docker-archive of ${img.source}: ${(bytes / 1e6).toFixed(1)} MB, ${img.layers} layers\n`);

  engines.push(await startBerth());
  const dockerd = await ensureDockerd(o.withDockerd);
  if (dockerd) engines.push(await startDockerd(dockerd));
  else process.stderr.write('bench: no dockerd (install with --with-dockerd to compare)\n');

  const times = engines.map(() => ({ load: [] as number[], save: [] as number[] }));
  for (let run = 0; run < o.n; run++) {
    const order = engines.map((_, i) => i);
    if (run % 2) order.reverse();
    for (const i of order) {
      const e = engines[i]!;
      const out = path.join(work, `${e.name}.tar`);
      const load = await timed(async () => must(await e.docker(['load', '-q', '-i', archive], TIMEOUT), `${e.name}: docker load`));
      const save = await timed(async () => must(await e.docker(['save', '-o', out, REF], TIMEOUT), `${e.name}: docker save`));
      fs.rmSync(out, { force: true });
      must(await e.docker(['rmi', REF], TIMEOUT), `${e.name}: docker rmi`);
      times[i]!.load.push(load);
      times[i]!.save.push(save);
      process.stderr.write(`bench: ${e.name} run ${run + 1}/${o.n}: load ${load.toFixed(3)} s, save ${save.toFixed(3)} s\n`);
    }
  }
  const rows: string[][] = [];
  for (const [i, e] of engines.entries()) {
    for (const verb of ['load', 'save'] as const) {
      const xs = times[i]![verb];
      const med = median(xs);
      rows.push([e.name, verb, `${Math.min(...xs).toFixed(3)} s`, `${med.toFixed(3)} s`, `${Math.max(...xs).toFixed(3)} s`, `${(bytes / 1e6 / med).toFixed(1)} MB/s`]);
    }
  }
  process.stdout.write(formatTable(['engine', 'verb', 'min', 'median', 'max', 'throughput'], rows, (c) => c < 2) + '\n');
  process.stdout.write(JSON.stringify({ bench: 'saveload', archiveBytes: bytes, n: o.n, results: engines.map((e, i) => ({ engine: e.name, ...times[i] })) }) + '\n');
} finally {
  for (const e of engines) await e.stop().catch(() => {});
  fs.rmSync(work, { recursive: true, force: true });
  forget();
}
