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
 *    --clients skopeo processes at once, then the largest blob alone with curl (PUT, GET); stop it
 *    and delete its root.
 * 3. Prints MB/s (compressed bytes / wall time, median of n; all clients' bytes for the concurrent
 *    pulls) as a table and one JSON line.
 * Everything lives in temp dirs that are removed at the end, also on Ctrl-C.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBerthRegistry, startDistribution, type Distribution } from '../test/registry-fixtures.js';
import { benchArgs, cachedImage, formatTable, guardRegistry, median, mustRun, onExitSync, timed, which } from './common.js';

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

/**
 * The largest blob straight through curl, a client that costs next to nothing: monolithic PUT
 * (after the POST that opens the upload, not timed) and GET to /dev/null. skopeo's own hashing and
 * file writes bound the rows above; this one shows the server.
 */
async function rawBlob(host: string, blob: { file: string; digest: string }): Promise<{ putS: number; getS: number }> {
  const started = await fetch(`http://${host}/v2/bench/raw/blobs/uploads/`, { method: 'POST' });
  await started.arrayBuffer();
  const loc = new URL(started.headers.get('location') ?? '', `http://${host}`);
  loc.searchParams.set('digest', blob.digest);
  const putS = await timed(() => mustRun('curl', ['-sSf', '-o', '/dev/null', '-H', 'Content-Type: application/octet-stream', '-T', blob.file, loc.href]));
  const getS = await timed(() => mustRun('curl', ['-sSfL', '-o', '/dev/null', `http://${host}/v2/bench/raw/blobs/${blob.digest}`]));
  return { putS, getS };
}

/** Wall seconds of each measured step, per registry. */
interface Times { pushS: number[]; pullS: number[]; pullManyS: number[]; putS: number[]; getS: number[] }

async function main(): Promise<void> {
  process.stderr.write('building the image (cached)…\n');
  const img = await cachedImage(IMAGE_KEY, { targetBytes: TARGET_BYTES, maxLayers: 4, docLayer: false });
  const mb = img.bytes / 1e6;
  process.stderr.write(`image: ${mb.toFixed(1)} MB compressed in ${img.layers} layers (${img.source}); ${RUNS} runs per registry, then ${CLIENTS} pulls at once\n`);
  const times: Times[] = registries.map(() => ({ pushS: [], pullS: [], pullManyS: [], putS: [], getS: [] }));
  const blobDir = path.join(img.layout, 'blobs', 'sha256');
  const largest = fs.readdirSync(blobDir).map((hex) => ({ file: path.join(blobDir, hex), digest: `sha256:${hex}`, size: fs.statSync(path.join(blobDir, hex)).size }))
    .sort((a, b) => b.size - a.size)[0];
  const blobMB = largest.size / 1e6;
  const curl = which('curl') !== undefined;
  if (!curl) process.stderr.write('curl not installed: no raw blob figures\n');
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
        if (curl) {
          const raw = await rawBlob(r.host, largest);
          t.putS.push(raw.putS);
          t.getS.push(raw.getS);
        }
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
    const raw = (xs: number[]) => (xs.length ? rate(blobMB, xs).toFixed(1) : '-');
    return [reg.name, rate(mb, t.pushS).toFixed(1), rate(mb, t.pullS).toFixed(1), rate(CLIENTS * mb, t.pullManyS).toFixed(1), raw(t.putS), raw(t.getS),
      median(t.pushS).toFixed(3), median(t.pullS).toFixed(3)];
  });
  process.stdout.write(`skopeo copy of a ${mb.toFixed(1)} MB image to and from each registry on loopback, and curl PUT/GET of its ${blobMB.toFixed(1)} MB largest blob; median of ${RUNS} runs; MB/s = bytes / wall time\n`);
  process.stdout.write(formatTable(['registry', 'push MB/s', 'pull MB/s', `pull MB/s, ${CLIENTS} clients`, 'blob PUT MB/s (curl)', 'blob GET MB/s (curl)', 'push s', 'pull s'], rows, (c) => c === 0) + '\n');
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
          blobPutMBs: t.putS.length ? Number(rate(blobMB, t.putS).toFixed(1)) : undefined,
          blobGetMBs: t.getS.length ? Number(rate(blobMB, t.getS).toFixed(1)) : undefined,
          pushS: round(t.pushS), pullS: round(t.pullS), pullManyS: round(t.pullManyS), blobPutS: round(t.putS), blobGetS: round(t.getS),
        }];
      })),
    }) + '\n',
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1); // the exit hooks remove tmp and any registry still running
});
