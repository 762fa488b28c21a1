/**
 * Benchmark: push and pull throughput of `berth registry serve` against Debian's
 * docker-registry (distribution 2.8), with the same client (skopeo), side by side.
 *
 *   node --import tsx bench/registry.ts [-n 5]
 *
 * 1. Builds one OCI image layout of about 90 MB compressed: a Debian minbase rootfs from
 *    mmdebstrap (when installed) as one gzip layer, topped up with random-data layers
 *    (incompressible) to ~90 MB; without mmdebstrap, random layers only.
 * 2. For each registry and each of n runs: start it on a fresh root on a free loopback
 *    port (a fresh root so nothing is skipped or mounted from an earlier run), time
 *    `skopeo copy oci:… docker://…` (push), then `skopeo copy docker://… dir:…` into a
 *    fresh directory (pull), stop it and delete its root.
 * 3. Prints MB/s (compressed bytes / wall time, median of n) as a table and one JSON line.
 * Everything lives in one temp dir that is removed at the end, also on Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { paths, run } from '../test/harness.js';

const TARGET_BYTES = 90 * 1024 * 1024;
const argN = process.argv.indexOf('-n');
const RUNS = argN > 0 ? Number(process.argv[argN + 1]) : 5;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-reg-'));
const live = new Set<ChildProcess>();
function cleanup(): void {
  for (const p of live) p.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function must(cmd: string, args: string[], timeoutMs = 300_000): Promise<void> {
  const r = await run(cmd, args, { timeoutMs });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.slice(-2000)}`);
}

/** Streams a file through sha256 without holding it in memory. */
async function fileDigest(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of fs.createReadStream(file) as AsyncIterable<Buffer>) h.update(c);
  return `sha256:${h.digest('hex')}`;
}

async function buildImage(dir: string): Promise<{ bytes: number; layers: number; source: string }> {
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const layers: Array<{ digest: string; size: number; diffId: string }> = [];
  let source = 'random';
  const addFile = async (gz: string, diffId: string) => {
    const digest = await fileDigest(gz);
    const size = fs.statSync(gz).size;
    fs.renameSync(gz, path.join(blobs, digest.slice(7)));
    layers.push({ digest, size, diffId });
  };
  if (fs.existsSync('/usr/bin/mmdebstrap')) {
    const tar = path.join(tmp, 'debian.tar');
    const r = await run('mmdebstrap', ['--quiet', '--variant=minbase', 'bookworm', tar], { timeoutMs: 300_000 });
    if (r.code === 0) {
      const diffId = await fileDigest(tar);
      await must('gzip', ['-n', '-6', tar]);
      await addFile(`${tar}.gz`, diffId);
      source = 'mmdebstrap minbase bookworm + random';
    } else process.stderr.write(`mmdebstrap failed, random layers only: ${r.stderr.slice(-500)}\n`);
  }
  // Random data does not compress: a gzip layer of it is as big as the data (plus framing).
  let total = layers.reduce((n, l) => n + l.size, 0);
  let i = 0;
  while (total < TARGET_BYTES && layers.length < 4) {
    const want = Math.min(TARGET_BYTES - total, Math.ceil(TARGET_BYTES / 4));
    const raw = path.join(tmp, `rand${i++}.bin`);
    fs.writeFileSync(raw, randomBytes(want));
    const tar = `${raw}.tar`;
    await must('tar', ['--format=ustar', '--mtime=@0', '--owner=0', '--group=0', '-C', tmp, '-cf', tar, path.basename(raw)]);
    fs.rmSync(raw);
    const diffId = await fileDigest(tar);
    await must('gzip', ['-n', '-1', tar]);
    await addFile(`${tar}.gz`, diffId);
    total = layers.reduce((n, l) => n + l.size, 0);
  }
  const put = (b: Buffer) => {
    fs.writeFileSync(path.join(blobs, sha(b).slice(7)), b);
    return { digest: sha(b), size: b.length };
  };
  const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } })));
  const manifest = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
      }),
    ),
  );
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'bench' } }] }));
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return { bytes: total + config.size + manifest.size, layers: layers.length, source };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

interface Registry {
  name: string;
  start(root: string, port: number): ChildProcess;
}

const registries: Registry[] = [
  {
    name: 'berth registry',
    start: (root, port) => spawn(paths.berth, ['registry', 'serve', '--root', root, '--addr', `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', fs.openSync(path.join(tmp, 'berth.log'), 'a')] }),
  },
];
if (fs.existsSync('/usr/bin/docker-registry')) {
  registries.push({
    name: 'docker-registry 2.8',
    start: (root, port) => {
      const cfg = path.join(tmp, 'distribution.yml');
      fs.writeFileSync(cfg, `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${root}\nhttp:\n  addr: 127.0.0.1:${port}\n`);
      return spawn('/usr/bin/docker-registry', ['serve', cfg], { stdio: ['ignore', 'ignore', fs.openSync(path.join(tmp, 'distribution.log'), 'a')] });
    },
  });
}

async function waitReady(port: number, proc: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`registry exited ${proc.exitCode}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/v2/`)).status === 200) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('registry did not start');
}

async function stopProc(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const done = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
  await done;
  clearTimeout(t);
  live.delete(p);
}

async function timed(args: string[]): Promise<number> {
  const t0 = process.hrtime.bigint();
  await must('skopeo', args);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function main(): Promise<void> {
  const layout = path.join(tmp, 'layout');
  process.stderr.write('building the image…\n');
  const img = await buildImage(layout);
  const mb = img.bytes / 1e6;
  process.stderr.write(`image: ${mb.toFixed(1)} MB compressed in ${img.layers} layers (${img.source}); ${RUNS} runs per registry\n`);
  const results: Record<string, { pushMBs: number; pullMBs: number; pushS: number[]; pullS: number[] }> = {};
  for (const reg of registries) {
    const pushS: number[] = [];
    const pullS: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const root = path.join(tmp, 'root');
      const out = path.join(tmp, 'pulled');
      const port = await freePort();
      const proc = reg.start(root, port);
      live.add(proc);
      try {
        await waitReady(port, proc);
        pushS.push(await timed(['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:bench`, `docker://127.0.0.1:${port}/bench/img:${i}`]));
        pullS.push(await timed(['copy', '--quiet', '--src-tls-verify=false', `docker://127.0.0.1:${port}/bench/img:${i}`, `dir:${out}`]));
      } finally {
        await stopProc(proc);
        fs.rmSync(root, { recursive: true, force: true });
        fs.rmSync(out, { recursive: true, force: true });
      }
    }
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

main().then(
  () => cleanup(),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    cleanup();
    process.exit(1);
  },
);
