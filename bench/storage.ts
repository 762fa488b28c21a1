/**
 * Benchmark: the storage drivers side by side, in one run.
 *
 *   node --import tsx bench/storage.ts [--imports 5] [--containers 20] [--drivers overlay2,vfs,btrfs,fuse-overlayfs]
 *
 * For each driver: a berthd (test/harness.ts) with `--storage-driver <driver>`; btrfs on a btrfs
 * filesystem in a loop file this bench makes and removes, the others on the data root's usual
 * filesystem (/tmp). Then, through the real docker CLI and the Engine API:
 *   1. import of an image whose one layer is busybox + 100 MiB of random files (`docker import`,
 *      which streams, digests and applies the layer), `--imports` times, rmi in between: min/median/max;
 *   2. container create + start of that image (`sleep`) through the API, `--containers` times (20): min/median/max;
 *   3. disk used by those containers, beyond the image: du of the driver's folder (hard links once), or
 *      for btrfs the loop filesystem's own used-bytes count (du cannot see shared extents);
 *   4. rm -f, rmi, stop; everything it made is removed, also on Ctrl-C.
 * Prints an aligned table and one JSON line. No peer engine: dockerd's drivers need docker.io installed.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadTestImages, startDaemon, testImages, type Daemon } from '../test/harness.js';
import { makeLoopFs, type LoopFs } from '../test/loopfs.js';
import { benchArgs, formatTable, median, must, mustRun, onExitSync, timed } from './common.js';

const usage = 'usage: node --import tsx bench/storage.ts [--imports 5] [--containers 20] [--drivers a,b,...]';
const ALL = ['overlay2', 'vfs', 'btrfs', 'fuse-overlayfs'];

interface Result {
  driver: string;
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

function duBytes(dir: string): number {
  return Number(execFileSync('du', ['-s', '-B1', dir], { encoding: 'utf8' }).split('\t')[0]);
}

async function measure(driver: string, o: { imports: number; containers: number }, big: string): Promise<Result> {
  let loop: LoopFs | undefined;
  let disarm: (() => void) | undefined;
  let d: Daemon | undefined;
  const res: Result = { driver, backingFs: '' };
  try {
    const extraArgs = ['--storage-driver', driver];
    if (driver === 'btrfs') {
      loop = makeLoopFs('btrfs', 8192);
      disarm = onExitSync(() => loop?.release());
      extraArgs.push('--data-root', path.join(loop.dir, 'data'));
    }
    d = await startDaemon({ extraArgs });
    const dataRoot = loop ? path.join(loop.dir, 'data') : d.dataRoot;
    const docker = async (args: string[], timeoutMs = 300_000) => must(await d!.docker(args, { timeoutMs }), `docker ${args[0]}`).stdout;
    res.backingFs = JSON.parse(await docker(['info', '--format', '{{json .DriverStatus}}'])).find((r: string[]) => r[0] === 'Backing Filesystem')?.[1]
      ?? (driver === 'btrfs' ? 'btrfs' : execFileSync('stat', ['-f', '-c', '%T', dataRoot], { encoding: 'utf8' }).trim());
    await loadTestImages(d);

    res.importS = [];
    for (let i = 0; i < o.imports; i++) {
      res.importS.push(await timed(() => docker(['import', '-c', 'CMD ["sleep", "600"]', big, 'big:latest'])));
      if (i < o.imports - 1) await docker(['rmi', 'big:latest']);
    }

    const usedBefore = () => (loop ? (execFileSync('sync'), statFsUsed(loop.dir)) : duBytes(path.join(dataRoot, driver)));
    const before = usedBefore();
    res.createStartMs = [];
    const ids: string[] = [];
    for (let i = 0; i < o.containers; i++) {
      const t = await timed(async () => {
        const c = await d!.api('POST', '/containers/create', { Image: 'big:latest', HostConfig: { NetworkMode: 'none' } });
        if (c.status !== 201) throw new Error(`create: ${JSON.stringify(c.body)}`);
        ids.push(c.body.Id as string);
        const s = await d!.api('POST', `/containers/${c.body.Id}/start`);
        if (s.status !== 204) throw new Error(`start: ${JSON.stringify(s.body)}`);
      });
      res.createStartMs.push(t * 1000);
    }
    res.diskMiB = (usedBefore() - before) / 2 ** 20;
    await docker(['rm', '-f', ...ids]);
    await docker(['rmi', 'big:latest']);
  } catch (err) {
    res.error = (err as Error).message;
  } finally {
    try {
      await d?.stop();
    } finally {
      loop?.release();
      disarm?.();
    }
  }
  return res;
}

const stats = (xs: number[] | undefined, digits: number): string =>
  xs?.length ? [Math.min(...xs), median(xs), Math.max(...xs)].map((v) => v.toFixed(digits)).join(' / ') : '-';

async function main(): Promise<void> {
  const i = process.argv.indexOf('--drivers');
  const drivers = i > 0 ? (process.argv[i + 1] ?? '').split(',') : ALL;
  if (i > 0) process.argv.splice(i, 2);
  const o = benchArgs(usage, [] as const, {
    imports: { default: 5, min: 1, max: 100 },
    containers: { default: 20, min: 1, max: 200 },
  });
  const containers = o.containers;
  const big = await bigImageTar();
  const results: Result[] = [];
  for (const driver of drivers) {
    process.stderr.write(`bench: ${driver}...\n`);
    results.push(await measure(driver, { imports: o.imports, containers }, big));
  }
  const head = ['driver', 'backing fs', `import 100 MiB layer, s (min/median/max, N=${o.imports})`, `create+start, ms (min/median/max, N=${containers})`, `disk used by ${containers} containers, MiB`];
  const rows = results.map((r) => [r.driver, r.backingFs || '-', stats(r.importS, 2), stats(r.createStartMs, 1), r.diskMiB === undefined ? (r.error ?? '-') : r.diskMiB.toFixed(1)]);
  process.stdout.write(`${formatTable(head, rows, (c) => c < 2)}\n`);
  process.stdout.write(`${JSON.stringify({ bench: 'storage', results })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exit(1);
});
