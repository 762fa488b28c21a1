/**
 * A conformance-style walk over `berth registry serve` with plain fetch: what an OCI
 * client does and what it checks in the answers.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { setLevel } from '../../src/log.js';
import { collectGarbage, startRegistry, type RegistryServer } from '../../src/registry/server/index.js';

setLevel('warn');

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let dir: string;
let reg: RegistryServer;
let base: string;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-reg-'));
  reg = await startRegistry({ root: path.join(dir, 'root'), addr: '127.0.0.1:0', logRequests: false });
  base = reg.url;
});

after(async () => {
  await reg?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function req(method: string, p: string, init: { body?: Buffer | string; headers?: Record<string, string> } = {}) {
  const body = typeof init.body === 'string' || init.body === undefined ? init.body : new Uint8Array(init.body);
  const r = await fetch(base + p, { method, body, headers: init.headers, redirect: 'manual' });
  const text = method === 'HEAD' ? '' : await r.text();
  return { status: r.status, headers: r.headers, text, json: () => JSON.parse(text) as Record<string, unknown> };
}

function errCode(r: { json: () => Record<string, unknown> }): string {
  return (r.json().errors as Array<{ code: string }>)[0].code;
}

async function pushMonolithic(name: string, blob: Buffer): Promise<string> {
  const d = sha(blob);
  const r = await req('POST', `/v2/${name}/blobs/uploads/?digest=${d}`, { body: blob, headers: { 'Content-Type': 'application/octet-stream' } });
  assert.equal(r.status, 201, r.text);
  return d;
}

function imageManifest(config: Buffer, layers: Buffer[], extra: Record<string, unknown> = {}) {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(l), size: l.length })),
      ...extra,
    }),
  );
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

test('GET /v2/ answers 200 with the API version header', async () => {
  const r = await req('GET', '/v2/');
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('docker-distribution-api-version'), 'registry/2.0');
});

test('monolithic blob push, HEAD, GET, Range, DELETE', async () => {
  const blob = randomBytes(10000);
  const d = await pushMonolithic('mono/one', blob);
  const head = await req('HEAD', `/v2/mono/one/blobs/${d}`);
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('content-length'), '10000');
  assert.equal(head.headers.get('docker-content-digest'), d);
  const get = await fetch(`${base}/v2/mono/one/blobs/${d}`);
  assert.deepEqual(Buffer.from(await get.arrayBuffer()), blob);
  const part = await fetch(`${base}/v2/mono/one/blobs/${d}`, { headers: { Range: 'bytes=100-199' } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), 'bytes 100-199/10000');
  assert.deepEqual(Buffer.from(await part.arrayBuffer()), blob.subarray(100, 200));
  const bad = await req('GET', `/v2/mono/one/blobs/${d}`, { headers: { Range: 'bytes=20000-' } });
  assert.equal(bad.status, 416);
  // A blob is visible only in the repository that uploaded it.
  assert.equal((await req('HEAD', `/v2/mono/other/blobs/${d}`)).status, 404);
  const del = await req('DELETE', `/v2/mono/one/blobs/${d}`);
  assert.equal(del.status, 202);
  const gone = await req('GET', `/v2/mono/one/blobs/${d}`);
  assert.equal(gone.status, 404);
  assert.equal(errCode(gone), 'BLOB_UNKNOWN');
});

test('chunked upload: POST, PATCH with Content-Range, status, out-of-order 416, PUT with digest', async () => {
  const blob = randomBytes(300_000);
  const d = sha(blob);
  const start = await req('POST', '/v2/chunky/blobs/uploads/');
  assert.equal(start.status, 202);
  const uuid = start.headers.get('docker-upload-uuid');
  assert.ok(uuid);
  let loc = start.headers.get('location');
  assert.equal(loc, `/v2/chunky/blobs/uploads/${uuid}`);
  assert.equal(start.headers.get('range'), '0-0');
  const c1 = await req('PATCH', loc!, { body: blob.subarray(0, 100_000), headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': '0-99999' } });
  assert.equal(c1.status, 202, c1.text);
  assert.equal(c1.headers.get('range'), '0-99999');
  loc = c1.headers.get('location');
  // A chunk that does not start where the last one ended is refused and changes nothing.
  const ooo = await req('PATCH', loc!, { body: blob.subarray(200_000), headers: { 'Content-Range': '200000-299999' } });
  assert.equal(ooo.status, 416);
  const st = await req('GET', loc!);
  assert.equal(st.status, 204);
  assert.equal(st.headers.get('range'), '0-99999');
  const c2 = await req('PATCH', loc!, { body: blob.subarray(100_000, 200_000), headers: { 'Content-Range': '100000-199999' } });
  assert.equal(c2.status, 202);
  assert.equal(c2.headers.get('range'), '0-199999');
  // The last chunk travels with the closing PUT.
  const put = await req('PUT', `${c2.headers.get('location')}?digest=${d}`, { body: blob.subarray(200_000), headers: { 'Content-Range': '200000-299999' } });
  assert.equal(put.status, 201, put.text);
  assert.equal(put.headers.get('location'), `/v2/chunky/blobs/${d}`);
  assert.equal(put.headers.get('docker-content-digest'), d);
  const get = await fetch(`${base}/v2/chunky/blobs/${d}`);
  assert.equal(sha(Buffer.from(await get.arrayBuffer())), d);
  // The session is over.
  assert.equal((await req('GET', loc!)).status, 404);
});

test('wrong digest is refused with DIGEST_INVALID and nothing is stored', async () => {
  const blob = randomBytes(5000);
  const wrong = sha('something else');
  const mono = await req('POST', `/v2/bad/digest/blobs/uploads/?digest=${wrong}`, { body: blob });
  assert.equal(mono.status, 400);
  assert.equal(errCode(mono), 'DIGEST_INVALID');
  const start = await req('POST', '/v2/bad/digest/blobs/uploads/');
  const loc = start.headers.get('location')!;
  assert.equal((await req('PATCH', loc, { body: blob })).status, 202);
  const put = await req('PUT', `${loc}?digest=${wrong}`);
  assert.equal(put.status, 400);
  assert.equal(errCode(put), 'DIGEST_INVALID');
  assert.equal((await req('HEAD', `/v2/bad/digest/blobs/${wrong}`)).status, 404);
  assert.equal((await req('HEAD', `/v2/bad/digest/blobs/${sha(blob)}`)).status, 404);
  const blobFiles = fs.readdirSync(path.join(dir, 'root', 'blobs'), { recursive: true }).map(String);
  assert.ok(!blobFiles.some((f) => f.endsWith(sha(blob).slice(7)) || f.endsWith(wrong.slice(7))));
  assert.deepEqual(fs.readdirSync(path.join(dir, 'root', 'uploads')), []);
});

test('cancel an upload with DELETE', async () => {
  const start = await req('POST', '/v2/cancel/blobs/uploads/');
  const loc = start.headers.get('location')!;
  assert.equal((await req('DELETE', loc)).status, 204);
  const st = await req('GET', loc);
  assert.equal(st.status, 404);
  assert.equal(errCode(st), 'BLOB_UPLOAD_UNKNOWN');
});

test('cross-repository mount: 201 when the source has it, else a new upload (202)', async () => {
  const blob = randomBytes(2000);
  const d = await pushMonolithic('mount/src', blob);
  const m = await req('POST', `/v2/mount/dst/blobs/uploads/?mount=${d}&from=mount/src`);
  assert.equal(m.status, 201);
  assert.equal(m.headers.get('location'), `/v2/mount/dst/blobs/${d}`);
  assert.equal(m.headers.get('docker-content-digest'), d);
  assert.equal((await req('HEAD', `/v2/mount/dst/blobs/${d}`)).status, 200);
  const miss = await req('POST', `/v2/mount/dst2/blobs/uploads/?mount=${sha('nope')}&from=mount/src`);
  assert.equal(miss.status, 202);
  assert.ok(miss.headers.get('docker-upload-uuid'));
  // The blob is not visible to a repository that neither uploaded nor mounted it.
  const sneaky = await req('POST', `/v2/mount/dst3/blobs/uploads/?mount=${d}&from=mount/elsewhere`);
  assert.equal(sneaky.status, 202);
});

test('manifests by tag and digest, tags with pagination, catalog, delete', async () => {
  const name = 'app/web';
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const layer = randomBytes(4096);
  await pushMonolithic(name, config);
  await pushMonolithic(name, layer);
  const mf = imageManifest(config, [layer]);
  const md = sha(mf);
  for (const tag of ['v1', 'v2', 'v3', 'latest']) {
    const put = await req('PUT', `/v2/${name}/manifests/${tag}`, { body: mf, headers: { 'Content-Type': OCI_MANIFEST } });
    assert.equal(put.status, 201, put.text);
    assert.equal(put.headers.get('docker-content-digest'), md);
    assert.equal(put.headers.get('location'), `/v2/${name}/manifests/${md}`);
  }
  const byDigest = await req('PUT', `/v2/${name}/manifests/${md}`, { body: mf, headers: { 'Content-Type': OCI_MANIFEST } });
  assert.equal(byDigest.status, 201);
  const wrongDigest = await req('PUT', `/v2/${name}/manifests/${sha('x')}`, { body: mf, headers: { 'Content-Type': OCI_MANIFEST } });
  assert.equal(wrongDigest.status, 400);
  assert.equal(errCode(wrongDigest), 'DIGEST_INVALID');

  for (const ref of ['v1', md]) {
    const get = await req('GET', `/v2/${name}/manifests/${ref}`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(get.status, 200);
    assert.equal(get.headers.get('content-type'), OCI_MANIFEST);
    assert.equal(get.headers.get('docker-content-digest'), md);
    assert.equal(get.text, mf.toString());
    const head = await req('HEAD', `/v2/${name}/manifests/${ref}`);
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(mf.length));
  }
  const unknown = await req('GET', `/v2/${name}/manifests/nope`);
  assert.equal(unknown.status, 404);
  assert.equal(errCode(unknown), 'MANIFEST_UNKNOWN');

  const all = await req('GET', `/v2/${name}/tags/list`);
  assert.deepEqual(all.json(), { name, tags: ['latest', 'v1', 'v2', 'v3'] });
  const p1 = await req('GET', `/v2/${name}/tags/list?n=2`);
  assert.deepEqual(p1.json().tags, ['latest', 'v1']);
  assert.equal(p1.headers.get('link'), `</v2/${name}/tags/list?n=2&last=v1>; rel="next"`);
  const p2 = await req('GET', `/v2/${name}/tags/list?n=2&last=v1`);
  assert.deepEqual(p2.json().tags, ['v2', 'v3']);
  assert.equal(p2.headers.get('link'), null);
  const nameUnknown = await req('GET', '/v2/no/such/repo/tags/list');
  assert.equal(nameUnknown.status, 404);
  assert.equal(errCode(nameUnknown), 'NAME_UNKNOWN');

  const cat = await req('GET', '/v2/_catalog');
  const repos = cat.json().repositories as string[];
  assert.ok(repos.includes(name) && repos.includes('mount/src'));
  assert.deepEqual(repos, [...repos].sort());
  const c1 = await req('GET', '/v2/_catalog?n=1');
  assert.deepEqual(c1.json().repositories, [repos[0]]);
  assert.match(c1.headers.get('link') ?? '', /^<\/v2\/_catalog\?n=1&last=.+>; rel="next"$/);

  // Deleting a tag leaves the manifest; deleting the digest removes it and its tags.
  assert.equal((await req('DELETE', `/v2/${name}/manifests/v3`)).status, 202);
  assert.deepEqual((await req('GET', `/v2/${name}/tags/list`)).json().tags, ['latest', 'v1', 'v2']);
  assert.equal((await req('DELETE', `/v2/${name}/manifests/${md}`)).status, 202);
  assert.equal((await req('GET', `/v2/${name}/manifests/${md}`)).status, 404);
  assert.equal((await req('GET', `/v2/${name}/manifests/v1`)).status, 404);
  assert.deepEqual((await req('GET', `/v2/${name}/tags/list`)).json().tags, []);
  assert.equal((await req('DELETE', `/v2/${name}/manifests/${md}`)).status, 404);
});

test('manifest checks: missing blob, unknown media type, index children, Docker types', async () => {
  const name = 'checks';
  const config = Buffer.from('{"os":"linux"}');
  const layer = randomBytes(100);
  await pushMonolithic(name, config);
  const missing = await req('PUT', `/v2/${name}/manifests/t`, { body: imageManifest(config, [layer]), headers: { 'Content-Type': OCI_MANIFEST } });
  assert.equal(missing.status, 400);
  assert.equal(errCode(missing), 'MANIFEST_BLOB_UNKNOWN');
  assert.deepEqual(missing.json().errors, [{ code: 'MANIFEST_BLOB_UNKNOWN', message: 'blob unknown to registry', detail: { digests: [sha(layer)] } }]);
  assert.equal((await req('GET', `/v2/${name}/manifests/t`)).status, 404);

  await pushMonolithic(name, layer);
  const weird = await req('PUT', `/v2/${name}/manifests/t`, {
    body: JSON.stringify({ schemaVersion: 2, mediaType: 'application/x-weird', config: {}, layers: [] }),
    headers: { 'Content-Type': 'application/x-weird' },
  });
  assert.equal(weird.status, 400);
  assert.equal(errCode(weird), 'MANIFEST_INVALID');
  const notJson = await req('PUT', `/v2/${name}/manifests/t`, { body: 'nope', headers: { 'Content-Type': OCI_MANIFEST } });
  assert.equal(errCode(notJson), 'MANIFEST_INVALID');

  // Docker schema2 manifest and manifest list.
  const dm = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: sha(layer), size: layer.length }],
    }),
  );
  const r1 = await req('PUT', `/v2/${name}/manifests/docker`, { body: dm, headers: { 'Content-Type': 'application/vnd.docker.distribution.manifest.v2+json' } });
  assert.equal(r1.status, 201, r1.text);
  const list = (child: string) =>
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
        manifests: [{ mediaType: 'application/vnd.docker.distribution.manifest.v2+json', digest: child, size: dm.length, platform: { architecture: 'amd64', os: 'linux' } }],
      }),
    );
  const badList = await req('PUT', `/v2/${name}/manifests/list`, { body: list(sha('absent')), headers: { 'Content-Type': 'application/vnd.docker.distribution.manifest.list.v2+json' } });
  assert.equal(errCode(badList), 'MANIFEST_BLOB_UNKNOWN');
  const okList = await req('PUT', `/v2/${name}/manifests/list`, { body: list(sha(dm)), headers: { 'Content-Type': 'application/vnd.docker.distribution.manifest.list.v2+json' } });
  assert.equal(okList.status, 201);
  const got = await req('GET', `/v2/${name}/manifests/list`);
  assert.equal(got.headers.get('content-type'), 'application/vnd.docker.distribution.manifest.list.v2+json');
});

test('referrers: manifests with a subject, artifactType filter, OCI-Subject', async () => {
  const name = 'refs';
  const config = Buffer.from('{}');
  const layer = randomBytes(64);
  await pushMonolithic(name, config);
  await pushMonolithic(name, layer);
  const subject = imageManifest(config, [layer]);
  const sd = sha(subject);
  assert.equal((await req('PUT', `/v2/${name}/manifests/app`, { body: subject, headers: { 'Content-Type': OCI_MANIFEST } })).status, 201);
  const empty = await req('GET', `/v2/${name}/referrers/${sd}`);
  assert.equal(empty.status, 200);
  assert.deepEqual(empty.json(), { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] });

  const sig = imageManifest(config, [layer], { artifactType: 'application/vnd.example.sig', subject: { mediaType: OCI_MANIFEST, digest: sd, size: subject.length }, annotations: { who: 'me' } });
  const sbom = imageManifest(config, [layer], { artifactType: 'application/vnd.example.sbom', subject: { mediaType: OCI_MANIFEST, digest: sd, size: subject.length } });
  const put = await req('PUT', `/v2/${name}/manifests/${sha(sig)}`, { body: sig, headers: { 'Content-Type': OCI_MANIFEST } });
  assert.equal(put.status, 201);
  assert.equal(put.headers.get('oci-subject'), sd);
  await req('PUT', `/v2/${name}/manifests/${sha(sbom)}`, { body: sbom, headers: { 'Content-Type': OCI_MANIFEST } });

  const all = await req('GET', `/v2/${name}/referrers/${sd}`);
  assert.equal(all.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json');
  const ms = all.json().manifests as Array<Record<string, unknown>>;
  assert.equal(ms.length, 2);
  const sigDesc = ms.find((m) => m.digest === sha(sig));
  assert.deepEqual(sigDesc, { mediaType: OCI_MANIFEST, digest: sha(sig), size: sig.length, artifactType: 'application/vnd.example.sig', annotations: { who: 'me' } });
  const filtered = await req('GET', `/v2/${name}/referrers/${sd}?artifactType=application/vnd.example.sbom`);
  assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType');
  assert.deepEqual((filtered.json().manifests as Array<{ digest: string }>).map((m) => m.digest), [sha(sbom)]);
  // A deleted referrer disappears from the list.
  await req('DELETE', `/v2/${name}/manifests/${sha(sig)}`);
  assert.equal(((await req('GET', `/v2/${name}/referrers/${sd}`)).json().manifests as unknown[]).length, 1);
  assert.equal((await req('GET', `/v2/${name}/referrers/sha256:abc`)).status, 400);
});

test('bad repository names answer 400 NAME_INVALID', async () => {
  for (const p of ['/v2/UPPER/tags/list', '/v2/a..b/manifests/latest', '/v2/-x/blobs/' + sha('x'), '/v2/a//b/tags/list']) {
    const r = await req('GET', p);
    assert.equal(r.status, 400, p);
    assert.equal(errCode(r), 'NAME_INVALID', p);
  }
  const post = await req('POST', '/v2/Bad_Name/blobs/uploads/');
  assert.equal(errCode(post), 'NAME_INVALID');
});

test('gc frees blobs of deleted manifests and keeps live ones', async () => {
  const name = 'gc/repo';
  const config = Buffer.from('{"gc":true}');
  const keep = randomBytes(1000);
  const drop = randomBytes(2000);
  for (const b of [config, keep, drop]) await pushMonolithic(name, b);
  const live = imageManifest(config, [keep]);
  const dead = imageManifest(config, [drop]);
  await req('PUT', `/v2/${name}/manifests/live`, { body: live, headers: { 'Content-Type': OCI_MANIFEST } });
  await req('PUT', `/v2/${name}/manifests/dead`, { body: dead, headers: { 'Content-Type': OCI_MANIFEST } });
  assert.equal((await req('DELETE', `/v2/${name}/manifests/${sha(dead)}`)).status, 202);
  const dry = await collectGarbage(path.join(dir, 'root'), { dryRun: true });
  assert.ok(dry.deleted.some((b) => b.digest === sha(drop)));
  assert.equal((await req('HEAD', `/v2/${name}/blobs/${sha(drop)}`)).status, 200);
  const r = await collectGarbage(path.join(dir, 'root'));
  const freed = r.deleted.map((b) => b.digest);
  assert.ok(freed.includes(sha(drop)) && freed.includes(sha(dead)));
  assert.ok(!freed.includes(sha(keep)) && !freed.includes(sha(config)) && !freed.includes(sha(live)));
  assert.equal((await req('HEAD', `/v2/${name}/blobs/${sha(drop)}`)).status, 404);
  assert.equal((await req('HEAD', `/v2/${name}/blobs/${sha(keep)}`)).status, 200);
  assert.equal((await req('GET', `/v2/${name}/manifests/live`)).status, 200);
  // A second run has nothing left to do.
  assert.equal((await collectGarbage(path.join(dir, 'root'))).deleted.length, 0);
});

test('htpasswd: 401 with the Basic challenge, then the right password passes', async () => {
  const pw = path.join(dir, 'htpasswd');
  fs.writeFileSync(pw, `alice:${bcrypt.hashSync('s3cret', 5).replace(/^\$2b\$/, '$2y$')}\n`);
  const srv = await startRegistry({ root: path.join(dir, 'root-auth'), addr: '127.0.0.1:0', htpasswd: pw, logRequests: false });
  try {
    const none = await fetch(`${srv.url}/v2/`);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Basic realm="berth-registry"');
    assert.equal(((await none.json()) as { errors: Array<{ code: string }> }).errors[0].code, 'UNAUTHORIZED');
    const basic = (u: string, p: string) => ({ Authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
    assert.equal((await fetch(`${srv.url}/v2/`, { headers: basic('alice', 'wrong') })).status, 401);
    assert.equal((await fetch(`${srv.url}/v2/`, { headers: basic('bob', 's3cret') })).status, 401);
    assert.equal((await fetch(`${srv.url}/v2/`, { headers: basic('alice', 's3cret') })).status, 200);
    assert.equal((await fetch(`${srv.url}/v2/_catalog`, { headers: basic('alice', 's3cret') })).status, 200);
  } finally {
    await srv.close();
  }
});

test('read-only: reads work, every write answers 405 UNSUPPORTED', async () => {
  const root = path.join(dir, 'root');
  const srv = await startRegistry({ root, addr: '127.0.0.1:0', readOnly: true, logRequests: false });
  try {
    assert.equal((await fetch(`${srv.url}/v2/gc/repo/manifests/live`)).status, 200);
    for (const [method, p] of [
      ['POST', '/v2/ro/blobs/uploads/'],
      ['PUT', '/v2/gc/repo/manifests/x'],
      ['DELETE', '/v2/gc/repo/manifests/live'],
      ['DELETE', `/v2/gc/repo/blobs/${sha('x')}`],
    ]) {
      const r = await fetch(srv.url + p, { method, body: method === 'PUT' ? '{}' : undefined });
      assert.equal(r.status, 405, `${method} ${p}`);
      assert.equal(((await r.json()) as { errors: Array<{ code: string }> }).errors[0].code, 'UNSUPPORTED');
    }
    assert.equal((await fetch(`${srv.url}/v2/gc/repo/manifests/live`)).status, 200);
  } finally {
    await srv.close();
  }
});

test('an upload survives a restart of the server: the session resumes from its bytes on disk', async () => {
  const root = path.join(dir, 'root-restart');
  const blob = randomBytes(70_000);
  let srv = await startRegistry({ root, addr: '127.0.0.1:0', logRequests: false });
  const start = await fetch(`${srv.url}/v2/resume/blobs/uploads/`, { method: 'POST' });
  const loc = start.headers.get('location')!;
  const c1 = await fetch(srv.url + loc, { method: 'PATCH', body: new Uint8Array(blob.subarray(0, 30_000)), headers: { 'Content-Range': '0-29999' } });
  assert.equal(c1.status, 202);
  await srv.close();
  srv = await startRegistry({ root, addr: '127.0.0.1:0', logRequests: false });
  try {
    const st = await fetch(srv.url + loc);
    assert.equal(st.headers.get('range'), '0-29999');
    const c2 = await fetch(srv.url + loc, { method: 'PATCH', body: new Uint8Array(blob.subarray(30_000)), headers: { 'Content-Range': '30000-69999' } });
    assert.equal(c2.status, 202);
    const put = await fetch(`${srv.url}${loc}?digest=${sha(blob)}`, { method: 'PUT' });
    assert.equal(put.status, 201);
    const got = Buffer.from(await (await fetch(`${srv.url}/v2/resume/blobs/${sha(blob)}`)).arrayBuffer());
    assert.deepEqual(got, blob);
  } finally {
    await srv.close();
  }
});

test('TLS: with a certificate and key the registry answers over https', async () => {
  const key = path.join(dir, 'tls.key');
  const cert = path.join(dir, 'tls.crt');
  const { execFileSync } = await import('node:child_process');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const srv = await startRegistry({ root: path.join(dir, 'root-tls'), addr: '127.0.0.1:0', tlsCert: cert, tlsKey: key, logRequests: false });
  try {
    assert.match(srv.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const https = await import('node:https');
    const status = await new Promise<number>((resolve, reject) => {
      https.get(`${srv.url}/v2/`, { ca: fs.readFileSync(cert) }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject);
    });
    assert.equal(status, 200);
  } finally {
    await srv.close();
  }
});

test('a truncated upload (client gone mid-body) stores nothing and leaves the session at its old size', async () => {
  const net = await import('node:net');
  const blob = randomBytes(1000);
  const send = (head: string, body: Buffer) =>
    new Promise<void>((resolve) => {
      const u = new URL(base);
      const s = net.connect(Number(u.port), u.hostname, () => {
        s.write(head);
        s.write(body.subarray(0, 400));
        setTimeout(() => {
          s.destroy();
          resolve();
        }, 50);
      });
    });
  await send(`POST /v2/trunc/blobs/uploads/?digest=${sha(blob)} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n`, blob);
  const start = await req('POST', '/v2/trunc/blobs/uploads/');
  const loc = start.headers.get('location')!;
  await send(`PATCH ${loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nContent-Range: 0-999\r\n\r\n`, blob);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await req('HEAD', `/v2/trunc/blobs/${sha(blob)}`)).status, 404);
  assert.equal((await req('GET', loc)).headers.get('range'), '0-0');
  const uploads = fs.readdirSync(path.join(dir, 'root', 'uploads'));
  assert.ok(uploads.includes(loc.split('/').pop()!));
  assert.deepEqual(uploads.filter((f) => f.startsWith('.')), [], 'no temp dir of the monolithic upload is left');
  // The client retries the chunk whole and finishes.
  assert.equal((await req('PATCH', loc, { body: blob, headers: { 'Content-Range': '0-999' } })).status, 202);
  assert.equal((await req('PUT', `${loc}?digest=${sha(blob)}`)).status, 201);
  assert.equal((await req('HEAD', `/v2/trunc/blobs/${sha(blob)}`)).status, 200);
});
