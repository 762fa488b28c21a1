/**
 * Benchmark: push and pull throughput of `berth registry serve` against Debian's
 * docker-registry (distribution 2.8), with the same client (skopeo), side by side.
 *
 *   node --import tsx bench/registry.ts [-n 7]
 *
 * 1. Builds once (cached under /tmp/berth-bench-cache/) an OCI image layout of about 90 MB
 *    compressed: a Debian minbase rootfs from mmdebstrap (when installed) as one gzip layer,
 *    topped up with random-data layers (incompressible) to ~90 MB; without mmdebstrap, random
 *    layers only.
 * 2. n runs; in each, the registries take turns (the first one alternating, so load from elsewhere
 *    hits both alike): start it (test/registry-fixtures.ts) on a fresh root on a free loopback
 *    port (so nothing is skipped or mounted from an earlier run), time `skopeo copy oci:… docker://…`
 *    (push), then `skopeo copy docker://… dir:…` into a fresh directory (pull), stop it and
 *    delete its root.
 * 3. Prints MB/s (compressed bytes / wall time, median of n) as a table and one JSON line.
 * Everything lives in temp dirs that are removed at the end, also on Ctrl-C.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBerthRegistry, startDistribution, type Distribution } from '../test/registry-fixtures.js';
import { benchArgs, cachedImage, guardRegistry, median, mustRun, onExitSync, timed } from './common.js';

const TARGET_BYTES = 90 * 1024 * 1024;
/** Names everything that shapes the image; change it when the recipe changes. */
const IMAGE_KEY = 'debian-bookworm-random-90M-v1';
const { n: RUNS } = benchArgs('usage: bench/registry.ts [-n 7]', [], { n: { default: 7, min: 1, max: 100, short: 'n' } });

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-reg-'));
onExitSync(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Registry {
  name: string;
  /** On a fresh root and a free loopback port (the fixtures' own temp dirs, removed by stop()). */
  start(): Promise<Distribution>;
}

const registries: Registry[] = [{ name: 'berth registry', start: () => startBerthRegistry() }];
if (fs.existsSync('/usr/bin/docker-registry')) registries.push({ name: 'docker-registry 2.8', start: () => startDistribution() });

const skopeo = (args: string[]) => timed(() => mustRun('skopeo', args));

async function main(): Promise<void> {
  process.stderr.write('building the image (cached)…\n');
  const img = await cachedImage(IMAGE_KEY, { targetBytes: TARGET_BYTES, maxLayers: 4, docLayer: false });
  const mb = img.bytes / 1e6;
  process.stderr.write(`image: ${mb.toFixed(1)} MB compressed in ${img.layers} layers (${img.source}); ${RUNS} runs per registry\n`);
  const times = registries.map(() => ({ pushS: [] as number[], pullS: [] as number[] }));
  for (let i = 0; i < RUNS; i++) {
    const order = registries.map((_, k) => k);
    if (i % 2) order.reverse();
    for (const k of order) {
      const out = path.join(tmp, 'pulled');
      const r = await registries[k].start();
      const forget = guardRegistry(r);
      try {
        times[k].pushS.push(await skopeo(['copy', '--quiet', '--dest-tls-verify=false', `oci:${img.layout}:bench`, `docker://${r.host}/bench/img:${i}`]));
        times[k].pullS.push(await skopeo(['copy', '--quiet', '--src-tls-verify=false', `docker://${r.host}/bench/img:${i}`, `dir:${out}`]));
      } finally {
        await r.stop();
        forget();
        fs.rmSync(out, { recursive: true, force: true });
      }
    }
  }
  const results: Record<string, { pushMBs: number; pullMBs: number; pushS: number[]; pullS: number[] }> = {};
  for (const [k, reg] of registries.entries()) {
    const { pushS, pullS } = times[k];
    results[reg.name] = { pushMBs: mb / median(pushS), pullMBs: mb / median(pullS), pushS, pullS };
  }
  const rows = [['registry', 'push MB/s', 'pull MB/s', 'push s (median)', 'pull s (median)']];
  for (const [name, r] of Object.entries(results)) {
    rows.push([name, r.pushMBs.toFixed(1), r.pullMBs.toFixed(1), median(r.pushS).toFixed(3), median(r.pullS).toFixed(3)]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) process.stdout.write(r.map((v, c) => v.padEnd(widths[c])).join('  ') + '\n');
  process.stdout.write(
    JSON.stringify({
      bench: 'registry',
      imageMB: Number(mb.toFixed(1)),
      layers: img.layers,
      source: img.source,
      runs: RUNS,
      results: Object.fromEntries(Object.entries(results).map(([k, r]) => [k, { pushMBs: Number(r.pushMBs.toFixed(1)), pullMBs: Number(r.pullMBs.toFixed(1)), pushS: r.pushS.map((x) => Number(x.toFixed(3))), pullS: r.pullS.map((x) => Number(x.toFixed(3))) }])),
    }) + '\n',
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1); // the exit hooks remove tmp and any registry still running
});
