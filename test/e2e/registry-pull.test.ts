/**
 * The docker CLI against berthd, pulling from and pushing to Debian's docker-registry (distribution
 * 2.8) on loopback: the walk of issue 3's "Done when" on the client side.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { startDaemon, printLogTail, type Daemon } from '../harness.js';
import { blobFile, pushBusybox, skopeoInspect, startDistribution, type Distribution, type PushedImage } from '../registry-fixtures.js';

let d: Daemon;
let reg: Distribution;
let bb: PushedImage;
/** localhost:PORT — docker's loopback rule makes it an insecure (plain http) registry. */
let host: string;
const cleanups: (() => Promise<void>)[] = [];

before(async () => {
  reg = await startDistribution();
  cleanups.push(() => reg.stop());
  host = `localhost:${reg.host.split(':')[1]}`;
  bb = await pushBusybox(reg.host, 'busybox:latest');
  d = await startDaemon();
});

after(async () => {
  await d?.stop();
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

async function ok(args: string[], input?: string) {
  const r = await d.docker(args, { input, timeoutMs: 120_000 });
  if (r.code !== 0) printLogTail(d, `docker ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r;
}

test('docker pull from a loopback registry, then run the image', async () => {
  const r = await ok(['pull', `${host}/busybox`]);
  assert.match(r.stdout, /^Using default tag: latest\n/);
  assert.match(r.stdout, /latest: Pulling from busybox\n/);
  for (const l of bb.layers) assert.match(r.stdout, new RegExp(`${l.digest.slice(7, 19)}: Pull complete`));
  assert.match(r.stdout, new RegExp(`Digest: ${bb.manifestDigest}\n`));
  assert.match(r.stdout, new RegExp(`Status: Downloaded newer image for ${host}/busybox:latest\n${host}/busybox:latest\n$`));

  const again = await ok(['pull', `${host}/busybox:latest`]);
  assert.match(again.stdout, new RegExp(`Status: Image is up to date for ${host}/busybox:latest`));

  const ids = await ok(['image', 'inspect', '--format', '{{.Id}} {{json .RepoTags}} {{json .RepoDigests}}', `${host}/busybox`]);
  assert.equal(ids.stdout.trim(), `${bb.configDigest} ["${host}/busybox:latest"] ["${host}/busybox@${bb.manifestDigest}"]`);

  const run = await ok(['run', '--rm', `${host}/busybox`, 'cat', '/etc/berth-hello']);
  assert.equal(run.stdout, 'hello from the registry\n');
});

test('docker pull by digest', async () => {
  const r = await ok(['pull', `${host}/busybox@${bb.manifestDigest}`]);
  assert.match(r.stdout, new RegExp(`Status: (Downloaded newer image|Image is up to date) for ${host}/busybox@${bb.manifestDigest}`));
});

test('docker run pulls a missing image first', async () => {
  await pushBusybox(reg.host, 'auto:1', { extra: 'auto-pulled' });
  const r = await d.docker(['run', '--rm', `${host}/auto:1`, 'cat', '/etc/berth-hello'], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`Unable to find image '${host}/auto:1' locally`));
  assert.equal(r.stdout.trim().split('\n').at(-1), 'auto-pulled');
});

test('docker push under a new name; skopeo inspects it', async () => {
  await ok(['pull', `${host}/busybox`]);
  await ok(['tag', `${host}/busybox`, `${host}/copies/busybox:v1`]);
  const r = await ok(['push', `${host}/copies/busybox:v1`]);
  assert.match(r.stdout, new RegExp(`The push refers to repository \\[${host}/copies/busybox\\]`));
  assert.match(r.stdout, /(Mounted from busybox|Layer already exists|Pushed)/);
  assert.match(r.stdout, new RegExp(`v1: digest: ${bb.manifestDigest} size: ${bb.manifestSize}`));
  const inspected = await skopeoInspect(`${reg.host}/copies/busybox:v1`);
  assert.equal(JSON.parse(inspected.raw).config.digest, bb.configDigest);
  const digests = await ok(['inspect', '--format', '{{json .RepoDigests}}', `${host}/copies/busybox:v1`]);
  assert.ok((JSON.parse(digests.stdout) as string[]).includes(`${host}/copies/busybox@${bb.manifestDigest}`));
});

test('a tampered layer fails the pull with a clear message and leaves no image', async () => {
  const t = await pushBusybox(reg.host, 'tampered:latest', { extra: 'tampered' });
  const f = blobFile(reg, t.layers[1]!.digest);
  const data = fs.readFileSync(f);
  data[data.length - 10] ^= 0xff;
  fs.writeFileSync(f, data);
  const r = await d.docker(['pull', `${host}/tampered`], { timeoutMs: 60_000 });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /filesystem layer verification failed for digest/);
  const imgs = await ok(['images', '-q', `${host}/tampered`]);
  assert.equal(imgs.stdout.trim(), '');
  assert.deepEqual(fs.readdirSync(path.join(d.dataRoot, 'content', 'ingest')), []);
});

test('a bad reference and an unknown tag fail like docker', async () => {
  const bad = await d.docker(['pull', `${host}/Bad`]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /invalid reference format/);
  const missing = await d.docker(['pull', `${host}/busybox:nope`]);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, new RegExp(`manifest for ${host}/busybox:nope not found: manifest unknown`));
});

test('docker login against an htpasswd registry', async () => {
  const sec = await startDistribution({ htpasswd: { user: 'bob', password: 'hunter2' } });
  cleanups.push(() => sec.stop());
  const secHost = `localhost:${sec.host.split(':')[1]}`;
  const bad = await d.docker(['login', secHost, '-u', 'bob', '--password-stdin'], { input: 'wrong\n' });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /401 Unauthorized/);
  const good = await ok(['login', secHost, '-u', 'bob', '--password-stdin'], 'hunter2\n');
  assert.match(good.stdout, /Login Succeeded/);
  await ok(['tag', `${host}/busybox`, `${secHost}/private:1`]);
  await ok(['push', `${secHost}/private:1`]);
  await ok(['rmi', `${secHost}/private:1`]);
  await ok(['pull', `${secHost}/private:1`]);
});

test('a pull killed halfway (kill -9 berthd) resumes cleanly after restart', async () => {
  // A proxy that sends the big layer slowly, so the daemon dies mid-download.
  const slow = await pushBusybox(reg.host, 'slow:latest', { extra: 'slow', randomBytes: 2_000_000 });
  const big = slow.layers[1]!.digest;
  let blobStarted = false;
  const server = http.createServer((req, res) => {
    const up = http.request(`${reg.url}${req.url}`, { method: req.method, headers: { ...req.headers, host: reg.host } }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      if (!(req.method === 'GET' && req.url?.endsWith(big))) return void r.pipe(res);
      blobStarted = true;
      let sent = 0;
      let paused = false;
      r.on('data', (c: Buffer) => {
        sent += c.length;
        res.write(c);
        if (sent > 300_000 && !paused) {
          paused = true; // once: hold the rest for 3 s
          r.pause();
          setTimeout(() => r.resume(), 3000).unref();
        }
      });
      r.on('end', () => res.end());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  cleanups.push(async () => { server.closeAllConnections(); await new Promise<void>((r) => server.close(() => r())); });
  const proxy = `localhost:${(server.address() as { port: number }).port}`;

  const pulling = d.docker(['pull', `${proxy}/slow`], { timeoutMs: 60_000 });
  const deadline = Date.now() + 30_000;
  while (!blobStarted && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(blobStarted, 'the layer download started');
  await new Promise((r) => setTimeout(r, 300));
  await d.kill9();
  const first = await pulling;
  assert.notEqual(first.code, 0);
  await d.restart();
  assert.deepEqual(fs.readdirSync(path.join(d.dataRoot, 'content', 'ingest')), [], 'partial ingest files dropped at start-up');
  const r = await ok(['pull', `${proxy}/slow`]);
  assert.match(r.stdout, /Status: Downloaded newer image/);
  const run = await ok(['run', '--rm', `${proxy}/slow`, 'cat', '/etc/berth-hello']);
  assert.equal(run.stdout, 'slow\n');
});
