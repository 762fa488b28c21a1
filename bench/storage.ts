/**
 * Benchmark: the storage drivers side by side, berthd and dockerd, in one run.
 *
 *   node --import tsx bench/storage.ts [--with-dockerd] [--imports 5] [--containers 20] [--drivers overlay2,vfs,btrfs,fuse-overlayfs]
 *
 * For each driver: a berthd (test/harness.ts) with `--storage-driver <driver>` and, when Debian's
 * docker.io is installed (or installed with apt-get under --with-dockerd), a dockerd with the same
 * "storage-driver", both running at once; btrfs on one btrfs filesystem in a loop file this bench
 * makes and removes (each engine's data root in a folder of it), the others on the data roots'
 * usual filesystem (/tmp). Then, through the real docker CLI and the Engine API, the engines taking
 * turns run by run (bench/common.ts turns), so a slow moment of the machine hits both alike:
 *   1. import of an image whose one layer is busybox + 100 MiB of random files (`docker import`,
 *      which streams, digests and applies the layer), `--imports` times, rmi in between: min/median/max;
 *   2. container create + start of that image (`sleep`) through the API, `--containers` times (20): min/median/max;
 *   3. disk used by those containers, beyond the image: around each create+start (not timed), du of
 *      the engine's <data-root>/<driver> folder (hard links once, not crossing into mounts), or for
 *      btrfs the loop filesystem's own used-bytes count once removed subvolumes are freed and the
 *      transaction committed (du cannot see shared extents);
 *   4. rm -f, rmi, stop; everything it made is removed, also on Ctrl-C.
 * The backing filesystem is named by berth's own statfs lookup (src/sys) for both engines' driver
 * folders. Prints an aligned table and one JSON line.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FS_MAGIC, fsType } from '../src/sys/index.js';
import { testImages } from '../test/harness.js';
import { makeLoopFs } from '../test/loopfs.js';
import { benchArgs, ensureDockerd, formatTable, median, must, mustRun, onExitSync, startBerth, startDockerd, timed, turns, type Engine } from './common.js';

const usage = 'usage: node --import tsx bench/storage.ts [--with-dockerd] [--imports 5] [--containers 20] [--drivers a,b,...]';
const ALL = ['overlay2', 'vfs', 'btrfs', 'fuse-overlayfs'];

interface Result {
  driver: string;
  engine: Engine['name'];
  backingFs: string;
  importS?: number[];
  createStartMs?: number[];
  diskMiB?: number;
  error?: string;
}

/** busybox's rootfs plus 100 files of 1 MiB from /dev/urandom (incompressible), as one layer tar; cached. */
async function bigImageTar(): Promise<string> {
  const busybox = (await testImages()).find((i) => i.ref.startsWith('busybox'))!.tar;
  const out = path.join(os.tmpdir(), 'berth-bench-cache', 'storage-100m.tar');
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-big-'));
  const disarm = onExitSync(() => fs.rmSync(work, { recursive: true, force: true }));
  try {
    await mustRun('tar', ['-xf', busybox, '-C', work]);
    fs.mkdirSync(path.join(work, 'data'));
    const fd = fs.openSync('/dev/urandom', 'r');
    const buf = Buffer.alloc(1 << 20);
    try {
      for (let i = 0; i < 100; i++) {
        fs.readSync(fd, buf, 0, buf.length, null);
        fs.writeFileSync(path.join(work, 'data', `f${i}`), buf);
      }
    } finally {
      fs.closeSync(fd);
    }
    await mustRun('tar', ['-cf', `${out}.tmp`, '-C', work, '.']);
    fs.renameSync(`${out}.tmp`, out);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    disarm();
  }
  return out;
}

const statFsUsed = (dir: string): number => {
  const s = fs.statfsSync(dir);
  return (s.blocks - s.bfree) * s.bsize;
};

/** Bytes under dir, each hard-linked file once, not descending into mounts (a running container's merged rootfs). */
function duBytes(dir: string): number {
  return Number(execFileSync('du', ['-x', '-s', '-B1', dir], { encoding: 'utf8' }).split('\t')[0]);
}

/** The name berth gives the filesystem holding dir (what its `docker info` says for "Backing Filesystem"). */
function fsName(dir: string): string {
  const magic = fsType(dir);
  return FS_MAGIC[magic] ?? `0x${magic.toString(16)}`;
}

/** One row per engine of one driver; an engine that fails is its row's error, not the end of the bench. */
async function measure(driver: string, dockerd: string | undefined, o: { imports: number; containers: number }, big: string): Promise<Result[]> {
  const loop = driver === 'btrfs' ? makeLoopFs('btrfs', 8192) : undefined;
  const loopRoot = (name: string) => path.join(loop!.dir, name);
  const starts: [Engine['name'], () => Promise<Engine>][] = [
    ['berthd', () => startBerth({ extraArgs: ['--storage-driver', driver, ...(loop ? ['--data-root', loopRoot('berthd')] : [])] })],
  ];
  if (dockerd) starts.push(['dockerd', () => startDockerd(dockerd, { 'storage-driver': driver, ...(loop ? { 'data-root': loopRoot('dockerd') } : {}) })]);
  const results = new Map<string, Result>(starts.map(([engine]) => [engine, { driver, engine, backingFs: '' }]));
  const engines: Engine[] = [];
  const driverDir = (e: Engine) => path.join(loop ? loopRoot(e.name) : e.target.dataRoot, driver);
  try {
    for (const [name, start] of starts) {
      try {
        const e = await start();
        engines.push(e);
        const info = must(await e.docker(['info', '--format', '{{.Driver}}']), `${name}: docker info`).stdout.trim();
        if (info !== driver) throw new Error(`${name} runs the ${info} driver, not ${driver}`);
        results.get(name)!.backingFs = fsName(driverDir(e));
      } catch (err) {
        results.get(name)!.error = (err as Error).message;
        process.stderr.write(`bench: ${name} with ${driver}: ${(err as Error).message}\n`);
      }
    }
    const live = engines.filter((e) => !results.get(e.name)!.error);
    const docker = async (e: Engine, args: string[]) => must(await e.docker(args, 300_000), `${e.name}: docker ${args[0]}`).stdout;

    const imports = await turns(live, o.imports, async (e, i) => {
      if (i) await docker(e, ['rmi', 'big:latest']);
      return timed(() => docker(e, ['import', '-c', 'CMD ["sleep", "600"]', big, 'big:latest']));
    });

    // btrfs frees a removed subvolume (the rmi of the imports) in the background: wait for that, then commit.
    const settled = (dir: string) => (execFileSync('btrfs', ['subvolume', 'sync', dir]), execFileSync('sync', ['-f', dir]), statFsUsed(dir));
    const used = (e: Engine) => (loop ? settled(loop.dir) : duBytes(driverDir(e)));
    const ids = new Map<string, string[]>(live.map((e) => [e.name, []]));
    const disk = new Map<string, number>(live.map((e) => [e.name, 0]));
    const createStart = await turns(live, o.containers, async (e) => {
      const before = used(e);
      const t = await timed(async () => {
        const c = await e.api('POST', '/containers/create', { Image: 'big:latest', HostConfig: { NetworkMode: 'none' } });
        if (c.status !== 201) throw new Error(`${e.name}: create: ${JSON.stringify(c.body)}`);
        ids.get(e.name)!.push(c.body.Id as string);
        const s = await e.api('POST', `/containers/${c.body.Id}/start`);
        if (s.status !== 204) throw new Error(`${e.name}: start: ${JSON.stringify(s.body)}`);
      });
      disk.set(e.name, disk.get(e.name)! + used(e) - before);
      return t * 1000;
    });
    for (const e of live) {
      Object.assign(results.get(e.name)!, { importS: imports.get(e.name), createStartMs: createStart.get(e.name), diskMiB: disk.get(e.name)! / 2 ** 20 });
      await docker(e, ['rm', '-f', ...ids.get(e.name)!]);
      await docker(e, ['rmi', 'big:latest']);
    }
  } catch (err) {
    for (const r of results.values()) r.error ??= (err as Error).message;
  } finally {
    try {
      for (const e of engines) await e.stop().catch((err: Error) => process.stderr.write(`bench: stopping ${e.name}: ${err.message}\n`));
    } finally {
      loop?.release();
    }
  }
  return [...results.values()];
}

const stats = (xs: number[] | undefined, digits: number): string =>
  xs?.length ? [Math.min(...xs), median(xs), Math.max(...xs)].map((v) => v.toFixed(digits)).join(' / ') : '-';

async function main(): Promise<void> {
  const i = process.argv.indexOf('--drivers');
  const drivers = i > 0 ? (process.argv[i + 1] ?? '').split(',') : ALL;
  if (i > 0) process.argv.splice(i, 2);
  const o = benchArgs(usage, ['with-dockerd'] as const, {
    imports: { default: 5, min: 1, max: 100 },
    containers: { default: 20, min: 1, max: 200 },
  });
  const dockerd = await ensureDockerd(o.withDockerd);
  if (!dockerd) process.stderr.write('bench: dockerd not installed; berthd alone (--with-dockerd installs docker.io)\n');
  const big = await bigImageTar();
  const results: Result[] = [];
  for (const driver of drivers) {
    process.stderr.write(`bench: ${driver}...\n`);
    results.push(...(await measure(driver, dockerd, o, big)));
  }
  const head = ['driver', 'engine', 'backing fs', `import 100 MiB layer, s (min/median/max, N=${o.imports})`, `create+start, ms (min/median/max, N=${o.containers})`, `disk used by ${o.containers} containers, MiB`];
  const rows = results.map((r) => [r.driver, r.engine, r.backingFs || '-', stats(r.importS, 2), stats(r.createStartMs, 1), r.diskMiB === undefined ? (r.error ?? '-').split('\n')[0]! : r.diskMiB.toFixed(1)]);
  process.stdout.write(`${formatTable(head, rows, (c) => c < 3)}\n`);
  process.stdout.write(`${JSON.stringify({ bench: 'storage', results })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exit(1);
});
