/**
 * Benchmark: what volumes cost a container, through the real docker CLI.
 *
 *   node --import tsx bench/volume.ts [-n 20] [--files 10000]
 *
 * On berthd (and on dockerd, side by side, when Debian's docker.io is installed; this bench never
 * installs it):
 *   plain     `docker run --rm busybox true`
 *   named     `docker run --rm -v benchvol:/v busybox true` (an existing named volume)
 *   populate  `docker create` of an image whose VOLUME /data holds --files small files (a new
 *             anonymous volume filled with them at create), then `docker rm -v`
 * Prints min / median / max seconds of each, N runs after one warm-up, and one JSON line.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tarStream from 'tar-stream';
import { testImages } from '../test/harness.js';
import { benchArgs, formatTable, loadBusybox, must, startBerth, startDockerd, timed, which, type Engine } from './common.js';

const usage = 'usage: node --import tsx bench/volume.ts [-n 20] [--files 10000]';
const o = benchArgs(usage, [], { n: { default: 20, min: 1, max: 1000, short: 'n' }, files: { default: 10_000, min: 1, max: 200_000 } });

/** busybox's rootfs plus data/ with `files` files of 100 bytes, for `docker import -c 'VOLUME /data'`. */
async function volumeImageTar(out: string, files: number): Promise<void> {
  const busybox = (await testImages()).find((i) => i.ref === 'busybox:latest')!.tar;
  const pack = tarStream.pack();
  const written = fs.createWriteStream(out);
  pack.pipe(written);
  const extract = tarStream.extract();
  await new Promise<void>((resolve, reject) => {
    extract.on('entry', (h, stream, next) => stream.pipe(pack.entry(h, next)));
    extract.on('finish', resolve);
    extract.on('error', reject);
    fs.createReadStream(busybox).pipe(extract);
  });
  const add = (h: Partial<tarStream.Header> & { name: string }, body = '') =>
    new Promise<void>((resolve, reject) => pack.entry({ mtime: new Date(1_600_000_000_000), ...h }, body, (e) => (e ? reject(e) : resolve())));
  await add({ name: 'data/', type: 'directory', mode: 0o755 });
  for (let d = 0; d * 1000 < files; d++) {
    await add({ name: `data/d${d}/`, type: 'directory', mode: 0o755 });
    for (let i = d * 1000; i < Math.min(files, (d + 1) * 1000); i++) await add({ name: `data/d${d}/f${i}`, mode: 0o644 }, 'x'.repeat(100));
  }
  pack.finalize();
  await new Promise<void>((resolve, reject) => written.on('close', resolve).on('error', reject));
}

interface Stats { min: number; median: number; max: number }

function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0]!, median: s[Math.floor((s.length - 1) / 2)]!, max: s[s.length - 1]! };
}

async function measure(engine: Engine, tar: string): Promise<Record<string, Stats>> {
  const docker = (args: string[]) => engine.docker(args, 300_000);
  await loadBusybox(engine);
  must(await docker(['import', '-c', 'VOLUME /data', '-c', 'CMD ["sh"]', tar, 'benchvolimg:latest']), 'docker import');
  must(await docker(['volume', 'create', 'benchvol']), 'volume create');
  const cases: Record<string, () => Promise<void>> = {
    plain: async () => void must(await docker(['run', '--rm', 'busybox', 'true']), 'run'),
    named: async () => void must(await docker(['run', '--rm', '-v', 'benchvol:/v', 'busybox', 'true']), 'run -v'),
    populate: async () => {
      const id = must(await docker(['create', 'benchvolimg']), 'create').stdout.trim();
      must(await docker(['rm', '-v', id]), 'rm -v');
    },
  };
  const out: Record<string, Stats> = {};
  for (const [name, fn] of Object.entries(cases)) {
    await fn();
    const times: number[] = [];
    for (let i = 0; i < o.n; i++) times.push(await timed(fn));
    out[name] = stats(times);
  }
  return out;
}

async function main(): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-vol-'));
  const results: Record<string, Record<string, Stats> | { error: string }> = {};
  try {
    const tar = path.join(tmp, 'volimg.tar');
    await volumeImageTar(tar, o.files);
    const engines: (() => Promise<Engine>)[] = [startBerth];
    const dockerd = which('dockerd');
    if (dockerd) engines.push(() => startDockerd(dockerd));
    else process.stderr.write('bench: dockerd is not installed; berthd only\n');
    for (const start of engines) {
      const engine = await start();
      try {
        results[engine.name] = await measure(engine, tar);
      } catch (err) {
        results[engine.name] = { error: (err as Error).message };
        process.stderr.write(`${engine.name}: ${(err as Error).message}\n${engine.log()}\n`);
      } finally {
        await engine.stop();
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const rows: string[][] = [];
  for (const [engine, r] of Object.entries(results)) {
    if ('error' in r) {
      rows.push([engine, 'error', '', '', '']);
      continue;
    }
    for (const [name, s] of Object.entries(r)) rows.push([engine, name, s.min.toFixed(3), s.median.toFixed(3), s.max.toFixed(3)]);
  }
  process.stdout.write(`volume bench: N=${o.n}, populate image with ${o.files} files\n`);
  process.stdout.write(formatTable(['engine', 'case', 'min s', 'median s', 'max s'], rows, (i) => i < 2) + '\n');
  process.stdout.write(JSON.stringify({ bench: 'volume', n: o.n, files: o.files, results }) + '\n');
}

await main();
