/**
 * The registry client against Debian's docker-registry (distribution 2.8) on loopback, with real
 * content / overlay2 / image stores in a temp dir. Token auth, blob redirects and dropped connections
 * are faked by a small node:http proxy in front of distribution (a faked boundary, real registry behind).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import BetterSqlite3 from 'better-sqlite3';
import { openContentStore, type ContentStore } from '../../src/content/index.js';
import { openOverlay2, type Snapshotter } from '../../src/storage/index.js';
import { importImage, openImageStore, type ImageStore } from '../../src/image/index.js';
import { createRegistryClient, progressBar, humanSize, type JSONMessage, type RegistryClient } from '../../src/registry/client/index.js';
import type { PushTuning } from '../../src/registry/client/push.js';
import { statusOf } from '../../src/api/errors.js';
import { testImages } from '../harness.js';
import {
  blobFile, pushBusybox, pushMultiArch, putBlob, putManifest, skopeoInspect, startDistribution, type Distribution, type PushedImage,
} from '../registry-fixtures.js';

interface Env { dir: string; db: BetterSqlite3.Database; content: ContentStore; storage: Snapshotter; images: ImageStore; client: RegistryClient }

const envs: Env[] = [];
function env(opts: { mirrors?: string[]; tuning?: PushTuning } = {}): Env {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-rc-'));
  const db = new BetterSqlite3(path.join(dir, 'berth.db'));
  const content = openContentStore(path.join(dir, 'content'));
  fs.mkdirSync(path.join(dir, 'overlay2'));
  const storage = openOverlay2(path.join(dir, 'overlay2'), db);
  const images = openImageStore(db, content, storage);
  const client = createRegistryClient({ content, storage, images, options: { mirrors: opts.mirrors ?? [], insecure: [] }, tuning: opts.tuning });
  const e = { dir, db, content, storage, images, client };
  envs.push(e);
  return e;
}

async function blobs(e: Env): Promise<string[]> {
  const out: string[] = [];
  for await (const b of e.content.list()) out.push(b.digest);
  return out;
}
function layerCount(e: Env): number {
  return (e.db.prepare('SELECT count(*) AS n FROM storage_layers').get() as { n: number }).n;
}
/** A failed pull leaves no image, no blob, no layer and no ingest file. */
async function assertEmpty(e: Env): Promise<void> {
  assert.deepEqual(e.images.list().map((i) => i.id), []);
  assert.deepEqual(await blobs(e), []);
  assert.equal(layerCount(e), 0);
  assert.deepEqual(fs.readdirSync(path.join(e.dir, 'content', 'ingest')), []);
  // Not even a staged (half-unpacked) layer dir.
  assert.deepEqual(fs.readdirSync(path.join(e.dir, 'overlay2')), ['l']);
}

function collect(): { msgs: JSONMessage[]; progress: (m: JSONMessage) => void } {
  const msgs: JSONMessage[] = [];
  return { msgs, progress: (m) => msgs.push(m) };
}

let reg: Distribution;
let bb: PushedImage;
const stops: (() => Promise<void>)[] = [];

before(async () => {
  await testImages();
  reg = await startDistribution();
  stops.push(() => reg.stop());
  bb = await pushBusybox(reg.host, 'busybox:latest');
});

after(async () => {
  for (const e of envs) {
    e.db.close();
    fs.rmSync(e.dir, { recursive: true, force: true });
  }
  for (const s of stops.reverse()) await s().catch(() => {});
});

test('progress bar strings match docker', () => {
  assert.equal(humanSize(1056410), '1.056MB');
  assert.equal(humanSize(119), '119B');
  assert.equal(humanSize(524288), '524.3kB');
  assert.equal(progressBar(524288, 1056410), '[========================>                          ]  524.3kB/1.056MB');
  assert.equal(progressBar(1056410, 1056410), '[==================================================>]  1.056MB/1.056MB');
});

test('pull by tag: image, tag, repo digest, layers and docker progress messages', async () => {
  const e = env();
  const { msgs, progress } = collect();
  const img = await e.client.pull(`${reg.host}/busybox`, { progress });
  assert.equal(img.id, bb.configDigest);
  assert.deepEqual(img.repoTags, [`${reg.host}/busybox:latest`]);
  assert.deepEqual(img.repoDigests, [`${reg.host}/busybox@${bb.manifestDigest}`]);
  assert.deepEqual(img.layers.map((l) => l.diffId), bb.layers.map((l) => l.diffId));
  assert.equal(e.images.resolve(`${reg.host}/busybox:latest`).id, img.id);
  // The layer is really unpacked.
  assert.ok(e.storage.stat(img.layers[0]!.chainId));

  assert.deepEqual(msgs[0], { status: 'Pulling from busybox', id: 'latest' });
  for (const l of bb.layers) {
    const id = l.digest.slice(7, 19);
    const seq = msgs.filter((m) => m.id === id).map((m) => m.status);
    const order = ['Pulling fs layer', 'Downloading', 'Verifying Checksum', 'Download complete', 'Extracting', 'Pull complete'];
    const firsts = order.map((s) => seq.indexOf(s));
    assert.ok(firsts.every((x, i) => x >= 0 && (i === 0 || x > firsts[i - 1]!)), `layer ${id}: ${seq.join(', ')}`);
    const dl = msgs.filter((m) => m.id === id && m.status === 'Downloading');
    assert.deepEqual(dl.at(-1)!.progressDetail, { current: l.size, total: l.size });
    assert.match(dl.at(-1)!.progress!, /^\[=+>\] /);
    assert.deepEqual(msgs.find((m) => m.id === id && m.status === 'Pull complete'), { status: 'Pull complete', progressDetail: {}, id });
  }
  assert.deepEqual(msgs.slice(-2), [
    { status: `Digest: ${bb.manifestDigest}` },
    { status: `Status: Downloaded newer image for ${reg.host}/busybox:latest` },
  ]);

  // Again: every layer already exists, nothing is fetched.
  const again = collect();
  await e.client.pull(`${reg.host}/busybox:latest`, { progress: again.progress });
  assert.deepEqual(again.msgs.filter((m) => m.id && m.id !== 'latest').map((m) => m.status), ['Already exists', 'Already exists']);
  assert.equal(again.msgs.at(-1)!.status, `Status: Image is up to date for ${reg.host}/busybox:latest`);
});

test('pull by digest verifies and records the repo digest without a tag', async () => {
  const e = env();
  const { msgs, progress } = collect();
  const img = await e.client.pull(`${reg.host}/busybox@${bb.manifestDigest}`, { progress });
  assert.equal(img.id, bb.configDigest);
  assert.deepEqual(img.repoTags, []);
  assert.deepEqual(img.repoDigests, [`${reg.host}/busybox@${bb.manifestDigest}`]);
  assert.deepEqual(msgs[0], { status: 'Pulling from busybox', id: bb.manifestDigest });
  await assert.rejects(e.client.pull(`${reg.host}/busybox@sha256:${'0'.repeat(64)}`, { progress }), /not found/);
  await assert.rejects(e.client.pull(`${reg.host}/busybox:nope`, { progress }), (err: Error) => {
    assert.equal(statusOf(err), 404);
    assert.match(err.message, /^manifest for 127\.0\.0\.1:\d+\/busybox:nope not found: manifest unknown/);
    return true;
  });
});

test('pull from an index picks linux/amd64, or the asked platform', async () => {
  const multi = await pushMultiArch(reg.host, 'multi:latest');
  const e = env();
  const amd = await e.client.pull(`${reg.host}/multi`, { progress: () => {} });
  assert.equal(amd.id, multi.images['linux/amd64']!.configDigest);
  assert.equal(amd.config.architecture, 'amd64');
  // The repo digest is the index's, as docker records it.
  assert.deepEqual(amd.repoDigests, [`${reg.host}/multi@${multi.indexDigest}`]);
  const arm = await e.client.pull(`${reg.host}/multi`, { platform: 'linux/arm64', progress: () => {} });
  assert.equal(arm.id, multi.images['linux/arm64']!.configDigest);
  await assert.rejects(e.client.pull(`${reg.host}/multi`, { platform: 'linux/s390x', progress: () => {} }),
    /no matching manifest for linux\/s390x in the manifest list entries/);
});

test('zstd layers are decompressed while streaming', async () => {
  const z = await pushBusybox(reg.host, 'zbox:latest', { compression: 'zstd', extra: 'zstd' });
  const e = env();
  const img = await e.client.pull(`${reg.host}/zbox`, { progress: () => {} });
  assert.deepEqual(img.layers.map((l) => l.diffId), z.layers.map((l) => l.diffId));
});

test('a layer blob with the wrong bytes fails and leaves nothing', async () => {
  const t = await pushBusybox(reg.host, 'tamper:latest', { extra: 'tamper' });
  // The second layer is unique to this image (the busybox layer is shared by every repository).
  const f = blobFile(reg, t.layers[1]!.digest);
  const data = fs.readFileSync(f);
  data[data.length - 10] ^= 0xff;
  fs.writeFileSync(f, data);
  const e = env();
  await assert.rejects(e.client.pull(`${reg.host}/tamper`, { progress: () => {} }),
    new RegExp(`filesystem layer verification failed for digest ${t.layers[1]!.digest}`));
  await assertEmpty(e);
});

test('a truncated blob fails and leaves nothing', async () => {
  const t = await pushBusybox(reg.host, 'trunc:latest', { extra: 'trunc' });
  const f = blobFile(reg, t.layers[1]!.digest);
  fs.truncateSync(f, 50);
  const e = env();
  await assert.rejects(e.client.pull(`${reg.host}/trunc`, { progress: () => {} }), /verification failed.*(truncated|mismatch)|not found/);
  await assertEmpty(e);
});

test('a manifest naming a missing blob fails and leaves nothing', async () => {
  const t = await pushBusybox(reg.host, 'missing:latest', { extra: 'missing' });
  fs.rmSync(blobFile(reg, t.layers[1]!.digest));
  const e = env();
  await assert.rejects(e.client.pull(`${reg.host}/missing`, { progress: () => {} }), new RegExp(t.layers[1]!.digest.slice(7, 19)));
  await assertEmpty(e);
});

test('an unknown layer media type fails with a clear message before any download', async () => {
  const layer = await putBlob(reg, 'weird', Buffer.from('not a tar'));
  const cfgBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer] } }));
  const cfg = await putBlob(reg, 'weird', cfgBytes);
  await putManifest(reg, 'weird', 'latest', {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfg, size: cfgBytes.length },
    layers: [{ mediaType: 'application/vnd.example.unknown', digest: layer, size: 9 }],
  });
  const e = env();
  await assert.rejects(e.client.pull(`${reg.host}/weird`, { progress: () => {} }), /unsupported layer media type: "application\/vnd.example.unknown"/);
  await assertEmpty(e);
});

test('a layer that is not a tar fails as it streams in, and leaves nothing', async () => {
  const junk = zlib.gzipSync(crypto.randomBytes(3 << 20));
  const layer = await putBlob(reg, 'junk', junk);
  const diffId = `sha256:${crypto.createHash('sha256').update(zlib.gunzipSync(junk)).digest('hex')}`;
  const cfgBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffId] } }));
  const cfg = await putBlob(reg, 'junk', cfgBytes);
  await putManifest(reg, 'junk', 'latest', {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfg, size: cfgBytes.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer, size: junk.length }],
  });
  const e = env();
  await assert.rejects(e.client.pull(`${reg.host}/junk`, { progress: () => {} }), new RegExp(`failed to register layer ${layer}: .*tar`, 'i'));
  await assertEmpty(e);
});

test('a bad reference fails before any request', async () => {
  const e = env();
  await assert.rejects(e.client.pull('Bad/Name', { progress: () => {} }), /invalid reference format/);
});

// ---- a faked boundary: proxy in front of distribution ---------------------------------------------

interface ProxyOpts { token?: { user: string; password: string }; redirectBlobs?: boolean; cutBlobOnce?: string; ignoreRange?: boolean; delayBlobsMs?: number }
interface Proxy { url: string; host: string; log: { method: string; url: string; auth?: string; range?: string; port: number }[]; tokens: number; stop(): Promise<void> }

async function listen(handler: http.RequestListener): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as { port: number }).port };
}

function forward(req: http.IncomingMessage, res: http.ServerResponse, target: string, p: Proxy, port: number, opts: ProxyOpts): void {
  if (opts.delayBlobsMs && /\/blobs\/sha256:/.test(req.url ?? '')) {
    const ms = opts.delayBlobsMs;
    setTimeout(() => forward(req, res, target, p, port, { ...opts, delayBlobsMs: 0 }), ms);
    return;
  }
  const headers = { ...req.headers };
  delete headers.authorization;
  delete headers.host;
  if (opts.ignoreRange) delete headers.range;
  const up = http.request(`${target}${req.url}`, { method: req.method, headers }, (r) => {
    const h = { ...r.headers };
    if (typeof h.location === 'string') h.location = h.location.replace(target, `http://127.0.0.1:${port}`);
    res.writeHead(r.statusCode ?? 502, h);
    const cut = opts.cutBlobOnce && req.method === 'GET' && req.url?.endsWith(opts.cutBlobOnce) && !req.headers.range;
    if (!cut) return void r.pipe(res);
    opts.cutBlobOnce = undefined;
    let n = 0;
    r.on('data', (c: Buffer) => {
      n += c.length;
      res.write(c);
      if (n > 200_000) { r.destroy(); res.socket?.destroy(); }
    });
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
  void p;
}

async function startProxy(target: string, opts: ProxyOpts): Promise<Proxy> {
  const p: Proxy = { url: '', host: '', log: [], tokens: 0, stop: async () => {} };
  // Where blob GETs are redirected: another "host" (port) that must not get the registry's credentials.
  const store = await listen((req, res) => {
    p.log.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, range: req.headers.range, port: storePort });
    forward(req, res, target, p, storePort, opts);
  });
  const storePort = store.port;
  const main = await listen((req, res) => {
    p.log.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, range: req.headers.range, port: mainPort });
    const url = new URL(req.url!, 'http://x');
    if (url.pathname === '/token') {
      const want = 'Basic ' + Buffer.from(`${opts.token!.user}:${opts.token!.password}`).toString('base64');
      if (req.headers.authorization !== want) { res.writeHead(401); return void res.end('{"details":"bad credentials"}'); }
      p.tokens++;
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return void res.end(JSON.stringify({ token: `tok-${url.searchParams.getAll('scope').join(' ')}`, expires_in: 300 }));
    }
    if (opts.token) {
      const m = /^\/v2\/(.+)\/(manifests|blobs|tags)\//.exec(url.pathname);
      const scope = m ? `repository:${m[1]}:pull` : '';
      const auth = req.headers.authorization ?? '';
      if (!auth.startsWith('Bearer tok-') || (scope && !auth.includes(scope))) {
        res.writeHead(401, {
          'WWW-Authenticate': `Bearer realm="http://127.0.0.1:${mainPort}/token",service="fake"${scope ? `,scope="${scope}"` : ''}`,
          'Content-Type': 'application/json',
        });
        return void res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
      }
    }
    if (opts.redirectBlobs && req.method === 'GET' && /\/blobs\/sha256:/.test(url.pathname)) {
      res.writeHead(307, { Location: `http://127.0.0.1:${storePort}${req.url}` });
      return void res.end();
    }
    forward(req, res, target, p, mainPort, opts);
  });
  const mainPort = main.port;
  p.url = `http://127.0.0.1:${mainPort}`;
  p.host = `127.0.0.1:${mainPort}`;
  p.stop = async () => {
    for (const s of [main.server, store.server]) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  };
  stops.push(p.stop);
  return p;
}

test('token auth: credentials go to the token server, the token is cached per scope; redirects drop auth', async () => {
  const p = await startProxy(reg.url, { token: { user: 'alice', password: 's3cret' }, redirectBlobs: true });
  const e = env();
  await assert.rejects(e.client.pull(`${p.host}/busybox`, { auth: { username: 'alice', password: 'wrong' }, progress: () => {} }), /unauthorized/);
  const img = await e.client.pull(`${p.host}/busybox`, { auth: { username: 'alice', password: 's3cret' }, progress: () => {} });
  assert.equal(img.id, bb.configDigest);
  assert.equal(p.tokens, 1, 'one token for the whole pull');
  const redirected = p.log.filter((l) => l.port !== Number(p.host.split(':')[1]));
  assert.ok(redirected.length >= 3, 'config and layers fetched from the redirect target');
  assert.ok(redirected.every((l) => l.auth === undefined), 'no Authorization header sent to another host');
  // Login answers the same challenge.
  assert.deepEqual(await e.client.login({ username: 'alice', password: 's3cret', serveraddress: p.host }), { Status: 'Login Succeeded' });
  await assert.rejects(e.client.login({ username: 'alice', password: 'nope', serveraddress: `http://${p.host}/` }), (err: Error) => {
    assert.equal(statusOf(err), 401);
    return true;
  });
});

test('a dropped blob download resumes with a Range request', async () => {
  const p = await startProxy(reg.url, { cutBlobOnce: bb.layers[0]!.digest });
  const e = env();
  const img = await e.client.pull(`${p.host}/busybox`, { progress: () => {} });
  assert.equal(img.id, bb.configDigest);
  const gets = p.log.filter((l) => l.url.endsWith(bb.layers[0]!.digest) && l.method === 'GET');
  assert.equal(gets.length, 2);
  assert.match(gets[1]!.range ?? '', /^bytes=\d+-$/);
});

test('a resumed download from a server that ignores Range skips the bytes it has, and the layer unpacks whole', async () => {
  const p = await startProxy(reg.url, { cutBlobOnce: bb.layers[0]!.digest, ignoreRange: true });
  const e = env();
  const img = await e.client.pull(`${p.host}/busybox`, { progress: () => {} });
  assert.deepEqual(img.layers.map((l) => l.diffId), bb.layers.map((l) => l.diffId));
  const gets = p.log.filter((l) => l.url.endsWith(bb.layers[0]!.digest) && l.method === 'GET');
  assert.equal(gets.length, 2);
});

test('concurrent pulls of the same image share the downloads', async () => {
  const p = await startProxy(reg.url, {});
  const e = env();
  const a = collect();
  const b = collect();
  const [x, y] = await Promise.all([
    e.client.pull(`${p.host}/busybox`, { progress: a.progress }),
    e.client.pull(`${p.host}/busybox:latest`, { progress: b.progress }),
  ]);
  assert.equal(x.id, y.id);
  for (const l of bb.layers) {
    assert.equal(p.log.filter((r) => r.method === 'GET' && r.url.endsWith(l.digest)).length, 1, `${l.digest} fetched once`);
  }
  assert.ok(b.msgs.some((m) => m.status?.startsWith('Status:')), 'the second caller sees the outcome');
});

test('a caller giving up on a shared pull leaves it to the others; the last one to go stops it', async () => {
  const p = await startProxy(reg.url, { delayBlobsMs: 400 });
  const e = env();
  const quitter = new AbortController();
  const first = e.client.pull(`${p.host}/busybox`, { progress: () => {}, signal: quitter.signal });
  const second = e.client.pull(`${p.host}/busybox`, { progress: () => {} });
  setTimeout(() => quitter.abort(), 100);
  await assert.rejects(first, { name: 'AbortError' });
  assert.equal((await second).id, bb.configDigest);

  const alone = env();
  const ac = new AbortController();
  const lone = alone.client.pull(`${p.host}/busybox`, { progress: () => {}, signal: ac.signal });
  setTimeout(() => ac.abort(), 100);
  await assert.rejects(lone, { name: 'AbortError' });
  // Left alone, the pull would have finished by now (two blob fetches of 400 ms); stopped, it leaves nothing behind.
  await new Promise((r) => setTimeout(r, 1500));
  await assertEmpty(alone);
});

test('basic auth (htpasswd) for pull, push and login', async () => {
  const sec = await startDistribution({ htpasswd: { user: 'bob', password: 'hunter2' } });
  stops.push(() => sec.stop());
  const priv = await pushBusybox(sec.host, 'private:latest', { creds: 'bob:hunter2' });
  const e = env();
  await assert.rejects(e.client.pull(`${sec.host}/private`, { progress: () => {} }), (err: Error) => {
    assert.equal(statusOf(err), 401);
    assert.match(err.message, /pull access denied for 127\.0\.0\.1:\d+\/private/);
    return true;
  });
  const auth = { auth: Buffer.from('bob:hunter2').toString('base64'), serveraddress: sec.host };
  const img = await e.client.pull(`${sec.host}/private`, { auth, progress: () => {} });
  assert.equal(img.id, priv.configDigest);
  e.images.tag(img.id, `${sec.host}/private2:v2`);
  await e.client.push(`${sec.host}/private2:v2`, { auth, progress: () => {} });
  assert.deepEqual(await e.client.login({ username: 'bob', password: 'hunter2', serveraddress: sec.host }), { Status: 'Login Succeeded' });
  await assert.rejects(e.client.login({ username: 'bob', password: 'x', serveraddress: sec.host }), /401 Unauthorized/);
});

test('push: same registry mounts, another registry uploads (chunked), skopeo inspects the result', async () => {
  const e = env({ tuning: { monolithicMax: 64 * 1024, chunkSize: 256 * 1024 } });
  const img = await e.client.pull(`${reg.host}/busybox`, { progress: () => {} });

  e.images.tag(img.id, `${reg.host}/copies/bb:v1`);
  const m = collect();
  const r1 = await e.client.push(`${reg.host}/copies/bb:v1`, { progress: m.progress });
  assert.deepEqual(r1, { digest: bb.manifestDigest, size: bb.manifestSize });
  assert.deepEqual(m.msgs[0], { status: `The push refers to repository [${reg.host}/copies/bb]` });
  const ids = bb.layers.map((l) => l.diffId.slice(7, 19));
  for (const id of ids) assert.ok(m.msgs.some((x) => x.id === id && x.status === 'Mounted from busybox'), `${id} mounted`);
  assert.deepEqual(m.msgs.slice(-2), [
    { status: `v1: digest: ${bb.manifestDigest} size: ${bb.manifestSize}` },
    { progressDetail: {}, aux: { Tag: 'v1', Digest: bb.manifestDigest, Size: bb.manifestSize } },
  ]);
  assert.ok(e.images.resolve(img.id).repoDigests.includes(`${reg.host}/copies/bb@${bb.manifestDigest}`));

  const other = await startDistribution();
  stops.push(() => other.stop());
  e.images.tag(img.id, `${other.host}/bb:latest`);
  const o = collect();
  await e.client.push(`${other.host}/bb`, { progress: o.progress });
  for (const id of ids) {
    const seq = o.msgs.filter((x) => x.id === id).map((x) => x.status);
    assert.equal(seq[0], 'Preparing');
    assert.equal(seq.at(-1), 'Pushed');
  }
  assert.ok(o.msgs.some((x) => x.status === 'Pushing' && x.progressDetail?.total === bb.layers[0]!.size));
  const inspected = await skopeoInspect(`${other.host}/bb:latest`);
  assert.equal(JSON.parse(inspected.raw).config.digest, bb.configDigest);
  assert.deepEqual(inspected.config.rootfs?.diff_ids, bb.layers.map((l) => l.diffId));

  // A second push finds everything there.
  const again = collect();
  await e.client.push(`${other.host}/bb:latest`, { progress: again.progress });
  assert.deepEqual(again.msgs.filter((x) => x.id).map((x) => x.status), ['Preparing', 'Preparing', 'Layer already exists', 'Layer already exists']);
  await assert.rejects(e.client.push(`${other.host}/nothere:latest`, { progress: () => {} }), /An image does not exist locally with the tag: 127\.0\.0\.1:\d+\/nothere/);
});

test('an imported image (plain tar layer) pushes and pulls back', async () => {
  const e = env();
  const bbTar = (await testImages()).find((i) => i.ref.startsWith('busybox'))!.tar;
  const img = await importImage(e.images, e.content, e.storage, fs.createReadStream(bbTar) as Readable, { ref: `${reg.host}/imported:1`, changes: ['CMD ["sh"]'] });
  const r = await e.client.push(`${reg.host}/imported:1`, { progress: () => {} });
  const inspected = await skopeoInspect(`${reg.host}/imported:1`);
  assert.equal(JSON.parse(inspected.raw).config.digest, img.id);
  const e2 = env();
  const back = await e2.client.pull(`${reg.host}/imported@${r.digest}`, { progress: () => {} });
  assert.equal(back.id, img.id);
});

test('docker.io pulls go to a mirror first and fall back to the next one', async () => {
  await pushBusybox(reg.host, 'library/busybox:latest');
  const dead = 'http://127.0.0.1:9'; // discard port: nothing listens
  const e = env({ mirrors: [dead, reg.url] });
  const { msgs, progress } = collect();
  const img = await e.client.pull('busybox', { progress });
  assert.equal(img.id, bb.configDigest);
  assert.deepEqual(img.repoTags, ['busybox:latest']);
  assert.deepEqual(msgs[0], { status: 'Pulling from library/busybox', id: 'latest' });
  assert.equal(msgs.at(-1)!.status, 'Status: Downloaded newer image for busybox:latest');
});
