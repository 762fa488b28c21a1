/**
 * Benchmark: push and pull throughput of `berth registry serve` against Debian's
 * docker-registry (distribution 2.8), with the same client (skopeo), side by side.
 *
 *   node --import tsx bench/registry.ts [-n 7] [--clients 4]
 *
 * 1. Builds once (cached under /tmp/berth-bench-cache/) an OCI image layout of about 90 MB
 *    compressed: a Debian minbase rootfs from mmdebstrap (when installed) as one gzip layer,
 *    topped up with random-data layers (incompressible) to ~90 MB; without mmdebstrap, random
 *    layers only.
 * 2. n runs; in each, the registries take turns (the first one alternating, so load from elsewhere
 *    hits both alike): start it (test/registry-fixtures.ts) on a fresh root on a free loopback
 *    port (so nothing is skipped or mounted from an earlier run), time `skopeo copy oci:… docker://…`
 *    (push), then `skopeo copy docker://… dir:…` into a fresh directory (pull), then that pull by
 *    --clients skopeo processes at once; stop it and delete its root.
 * 3. Prints MB/s (compressed bytes / wall time, median of n; all clients' bytes for the concurrent
 *    pulls) as a table and one JSON line.
 * Everything lives in temp dirs that are removed at the end, also on Ctrl-C.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBerthRegistry, startDistribution, type Distribution } from '../test/registry-fixtures.js';
import { benchArgs, cachedImage, formatTable, guardRegistry, median, mustRun, onExitSync, timed } from './common.js';

const TARGET_BYTES = 90 * 1024 * 1024;
/** Names everything that shapes the image; change it when the recipe changes. */
const IMAGE_KEY = 'debian-bookworm-random-90M-v1';
const { n: RUNS, clients: CLIENTS } = benchArgs('usage: bench/registry.ts [-n 7] [--clients 4]', [], {
  n: { default: 7, min: 1, max: 100, short: 'n' },
  clients: { default: 4, min: 1, max: 16 },
});

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-reg-'));
onExitSync(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Registry {
  name: string;
  /** On a fresh root and a free loopback port (the fixtures' own temp dirs, removed by stop()). */
  start(): Promise<Distribution>;
}

const registries: Registry[] = [{ name: 'berth registry', start: () => startBerthRegistry() }];
if (fs.existsSync('/usr/bin/docker-registry')) registries.push({ name: 'docker-registry 2.8', start: () => startDistribution() });

const skopeo = (args: string[]) => mustRun('skopeo', args);
const push = (layout: string, host: string, repo: string) =>
  skopeo(['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:bench`, `docker://${host}/${repo}:bench`]);
const pull = (host: string, repo: string, out: string) => skopeo(['copy', '--quiet', '--src-tls-verify=false', `docker://${host}/${repo}:bench`, `dir:${out}`]);

/** Wall seconds of each measured step, per registry. */
interface Times { pushS: number[]; pullS: number[]; pullManyS: number[] }

async function main(): Promise<void> {
  process.stderr.write('building the image (cached)…\n');
  const img = await cachedImage(IMAGE_KEY, { targetBytes: TARGET_BYTES, maxLayers: 4, docLayer: false });
  const mb = img.bytes / 1e6;
  process.stderr.write(`image: ${mb.toFixed(1)} MB compressed in ${img.layers} layers (${img.source}); ${RUNS} runs per registry, then ${CLIENTS} pulls at once\n`);
  const times: Times[] = registries.map(() => ({ pushS: [], pullS: [], pullManyS: [] }));
  const outs = Array.from({ length: CLIENTS }, (_, c) => path.join(tmp, `pulled-${c}`));
  const clean = () => { for (const o of outs) fs.rmSync(o, { recursive: true, force: true }); };
  for (let i = 0; i < RUNS; i++) {
    const order = registries.map((_, k) => k);
    if (i % 2) order.reverse();
    for (const k of order) {
      const r = await registries[k].start();
      const forget = guardRegistry(r);
      const t = times[k];
      try {
        t.pushS.push(await timed(() => push(img.layout, r.host, 'bench/one')));
        t.pullS.push(await timed(() => pull(r.host, 'bench/one', outs[0])));
        clean();
        // Concurrent pushes of one image would mount each other's blobs (skopeo remembers where it put them): pulls only.
        t.pullManyS.push(await timed(() => Promise.all(outs.map((out) => pull(r.host, 'bench/one', out)))));
      } finally {
        await r.stop();
        forget();
        clean();
      }
    }
  }
  const rate = (bytesMB: number, xs: number[]) => bytesMB / median(xs);
  const rows = registries.map((reg, k) => {
    const t = times[k];
    return [reg.name, rate(mb, t.pushS).toFixed(1), rate(mb, t.pullS).toFixed(1), rate(CLIENTS * mb, t.pullManyS).toFixed(1),
      median(t.pushS).toFixed(3), median(t.pullS).toFixed(3)];
  });
  process.stdout.write(`skopeo copy of a ${mb.toFixed(1)} MB image to and from each registry on loopback, median of ${RUNS} runs; MB/s = compressed bytes / wall time\n`);
  process.stdout.write(formatTable(['registry', 'push MB/s', 'pull MB/s', `pull MB/s, ${CLIENTS} clients`, 'push s', 'pull s'], rows, (c) => c === 0) + '\n');
  const round = (xs: number[]) => xs.map((x) => Number(x.toFixed(3)));
  process.stdout.write(
    JSON.stringify({
      bench: 'registry',
      imageMB: Number(mb.toFixed(1)),
      layers: img.layers,
      source: img.source,
      runs: RUNS,
      clients: CLIENTS,
      results: Object.fromEntries(registries.map((reg, k) => {
        const t = times[k];
        return [reg.name, {
          pushMBs: Number(rate(mb, t.pushS).toFixed(1)), pullMBs: Number(rate(mb, t.pullS).toFixed(1)),
          pullManyMBs: Number(rate(CLIENTS * mb, t.pullManyS).toFixed(1)),
          pushS: round(t.pushS), pullS: round(t.pullS), pullManyS: round(t.pullManyS),
        }];
      })),
    }) + '\n',
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1); // the exit hooks remove tmp and any registry still running
});
