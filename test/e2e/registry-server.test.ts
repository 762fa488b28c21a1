/**
 * `berth registry serve` against the real clients: skopeo copies an OCI image in and out
 * by tag and by digest, the same image in Debian's docker-registry (distribution 2.8)
 * inspects the same, deleting manifests and running `berth registry gc` frees the blobs,
 * and basic auth refuses a wrong password.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { paths, repoRoot, run } from '../harness.js';
import { freePort, initLayout, layoutBlob, writeIndex, writeManifest } from '../registry-fixtures.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let tmp: string;
let layout: string;
let manifestDigest: string;
let layerDigest: string;
let configDigest: string;
const procs: ChildProcess[] = [];

async function waitReady(url: string, proc: ChildProcess, logFile: string): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if (proc.exitCode !== null) throw new Error(`registry exited ${proc.exitCode}: ${fs.readFileSync(logFile, 'utf8')}`);
    try {
      const r = await fetch(url);
      if (r.status === 200 || r.status === 401) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`registry at ${url} never answered: ${fs.readFileSync(logFile, 'utf8')}`);
}

interface Served {
  port: number;
  root: string;
  host: string;
  proc: ChildProcess;
  log: string;
}

async function startBerth(name: string, extra: string[] = []): Promise<Served> {
  const port = await freePort();
  const root = path.join(tmp, name);
  const log = path.join(tmp, `${name}.log`);
  const fd = fs.openSync(log, 'a');
  const proc = spawn(paths.berth, ['registry', 'serve', '--root', root, '--addr', `127.0.0.1:${port}`, ...extra], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  procs.push(proc);
  await waitReady(`http://127.0.0.1:${port}/v2/`, proc, log);
  return { port, root, host: `127.0.0.1:${port}`, proc, log };
}

async function startDistribution(): Promise<Served> {
  const port = await freePort();
  const root = path.join(tmp, 'distribution');
  const log = path.join(tmp, 'distribution.log');
  const cfg = path.join(tmp, 'distribution.yml');
  fs.writeFileSync(cfg, `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  const fd = fs.openSync(log, 'a');
  const proc = spawn('/usr/bin/docker-registry', ['serve', cfg], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  procs.push(proc);
  await waitReady(`http://127.0.0.1:${port}/v2/`, proc, log);
  return { port, root, host: `127.0.0.1:${port}`, proc, log };
}

async function stop(s: Served): Promise<void> {
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) return;
  const done = new Promise<void>((r) => s.proc.once('exit', () => r()));
  s.proc.kill('SIGTERM');
  const t = setTimeout(() => s.proc.kill('SIGKILL'), 10_000);
  await done;
  clearTimeout(t);
}

async function skopeo(args: string[]): Promise<string> {
  const r = await run('skopeo', args, { timeoutMs: 120_000 });
  assert.equal(r.code, 0, `skopeo ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** An OCI image layout holding one busybox image: one gzip layer, config, manifest, index.json, oci-layout. */
async function buildLayout(dir: string): Promise<void> {
  const tar = path.join(tmp, 'rootfs.tar');
  const mk = await run('sh', [path.join(repoRoot, 'scripts', 'mkimage-busybox.sh'), tar]);
  assert.equal(mk.code, 0, mk.stderr);
  const gz = await run('gzip', ['-n', '-k', '-f', tar]);
  assert.equal(gz.code, 0, gz.stderr);
  initLayout(dir);
  const tarBytes = fs.readFileSync(tar);
  const gzBytes = fs.readFileSync(`${tar}.gz`);
  const layer = { digest: layoutBlob(dir, gzBytes), size: gzBytes.length, diffId: sha(tarBytes), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };
  const built = writeManifest(dir, [layer], { config: { Cmd: ['sh'] }, history: [{ created_by: 'mkimage-busybox.sh' }] });
  writeIndex(dir, 'latest', { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: built.manifestDigest, size: built.manifest.length });
  const manifest = { digest: built.manifestDigest };
  const config = { digest: built.configDigest };
  manifestDigest = manifest.digest;
  layerDigest = layer.digest;
  configDigest = config.digest;
}

const blobFile = (root: string, d: string) => path.join(root, 'blobs', 'sha256', d.slice(7, 9), d.slice(7));

let berth: Served;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-reg-e2e-'));
  layout = path.join(tmp, 'layout');
  await buildLayout(layout);
  berth = await startBerth('berth');
});

after(async () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await new Promise((r) => setTimeout(r, 100));
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('skopeo copies an OCI image into berth registry and out of it, by tag and by digest', async () => {
  await skopeo(['copy', '--dest-tls-verify=false', `oci:${layout}:latest`, `docker://${berth.host}/lib/busybox:latest`]);
  // Into a second repository by digest: the blobs are mounted or uploaded again, the manifest is stored under its digest.
  await skopeo(['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${berth.host}/lib/busybox:latest`, `docker://${berth.host}/other/bb@${manifestDigest}`]);
  const info = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${berth.host}/lib/busybox:latest`])) as Record<string, unknown>;
  assert.equal(info.Digest, manifestDigest);
  assert.deepEqual(info.Layers, [layerDigest]);
  assert.deepEqual(info.RepoTags, ['latest']);
  assert.equal(info.Architecture, 'amd64');

  for (const ref of [`lib/busybox:latest`, `other/bb@${manifestDigest}`]) {
    const out = path.join(tmp, `out-${ref.replace(/[/:@]/g, '_')}`);
    await skopeo(['copy', '--src-tls-verify=false', `docker://${berth.host}/${ref}`, `oci:${out}:x`]);
    const idx = JSON.parse(fs.readFileSync(path.join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    assert.equal(idx.manifests[0].digest, manifestDigest, ref);
    for (const d of [layerDigest, configDigest, manifestDigest]) {
      assert.deepEqual(fs.readFileSync(path.join(out, 'blobs', 'sha256', d.slice(7))), fs.readFileSync(path.join(layout, 'blobs', 'sha256', d.slice(7))), `${ref} ${d}`);
    }
  }
  const cat = (await (await fetch(`http://${berth.host}/v2/_catalog`)).json()) as { repositories: string[] };
  assert.deepEqual(cat.repositories, ['lib/busybox', 'other/bb']);
  // One line per request in the server's log.
  assert.match(fs.readFileSync(berth.log, 'utf8'), /method="PUT" path="\/v2\/lib\/busybox\/manifests\/latest" status=201 ms=/);
});

test('berth registry and docker-registry (distribution 2.8) describe the same image the same way', async () => {
  const dist = await startDistribution();
  try {
    await skopeo(['copy', '--dest-tls-verify=false', `oci:${layout}:latest`, `docker://${dist.host}/lib/busybox:latest`]);
    const ofBerth = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${berth.host}/lib/busybox:latest`])) as Record<string, unknown>;
    const ofDist = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${dist.host}/lib/busybox:latest`])) as Record<string, unknown>;
    delete ofBerth.Name;
    delete ofDist.Name;
    assert.deepEqual(ofBerth, ofDist);
    const rawBerth = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${berth.host}/lib/busybox:latest`]);
    const rawDist = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${dist.host}/lib/busybox:latest`]);
    assert.equal(rawBerth, rawDist);
    const cfgBerth = await skopeo(['inspect', '--config', '--raw', '--tls-verify=false', `docker://${berth.host}/lib/busybox:latest`]);
    const cfgDist = await skopeo(['inspect', '--config', '--raw', '--tls-verify=false', `docker://${dist.host}/lib/busybox:latest`]);
    assert.equal(cfgBerth, cfgDist);
  } finally {
    await stop(dist);
  }
});

test('deleting the manifests and running berth registry gc frees their blobs', async () => {
  for (const d of [layerDigest, configDigest, manifestDigest]) assert.ok(fs.existsSync(blobFile(berth.root, d)), d);
  await skopeo(['delete', '--tls-verify=false', `docker://${berth.host}/lib/busybox:latest`]);
  // Still referenced from other/bb: gc keeps everything.
  let gc = await run(paths.berth, ['registry', 'gc', '--root', berth.root]);
  assert.equal(gc.code, 0, gc.stderr);
  assert.match(gc.stdout, /deleted 0 blobs/);
  assert.ok(fs.existsSync(blobFile(berth.root, layerDigest)));
  await skopeo(['delete', '--tls-verify=false', `docker://${berth.host}/other/bb@${manifestDigest}`]);
  const dry = await run(paths.berth, ['registry', 'gc', '--dry-run', '--root', berth.root]);
  assert.match(dry.stdout, new RegExp(`would delete ${layerDigest}`));
  assert.ok(fs.existsSync(blobFile(berth.root, layerDigest)));
  gc = await run(paths.berth, ['registry', 'gc', '--root', berth.root]);
  assert.equal(gc.code, 0, gc.stderr);
  for (const d of [layerDigest, configDigest, manifestDigest]) {
    assert.match(gc.stdout, new RegExp(`deleted ${d}`));
    assert.ok(!fs.existsSync(blobFile(berth.root, d)), d);
  }
  assert.match(gc.stdout, /deleted 3 blobs, .* freed/);
  const head = await fetch(`http://${berth.host}/v2/other/bb/blobs/${layerDigest}`, { method: 'HEAD' });
  assert.equal(head.status, 404);
  const inspect = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${berth.host}/other/bb@${manifestDigest}`]);
  assert.notEqual(inspect.code, 0);
});

test('with --htpasswd a wrong password is refused with 401 and the Basic challenge; the right one pushes', async () => {
  const pw = path.join(tmp, 'htpasswd');
  fs.writeFileSync(pw, `alice:${bcrypt.hashSync('s3cret', 6)}\n`);
  const cfg = path.join(tmp, 'auth.yaml');
  fs.writeFileSync(cfg, `htpasswd: ${pw}\n`);
  const reg = await startBerth('auth', ['--config', cfg]);
  try {
    const r = await fetch(`http://${reg.host}/v2/`, { headers: { Authorization: `Basic ${Buffer.from('alice:nope').toString('base64')}` } });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Basic realm="berth-registry"');
    const bad = await run('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', 'alice:nope', `oci:${layout}:latest`, `docker://${reg.host}/sec/bb:1`], { timeoutMs: 60_000 });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /401|unauthorized|authentication required/i);
    await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', 'alice:s3cret', `oci:${layout}:latest`, `docker://${reg.host}/sec/bb:1`]);
    const info = JSON.parse(await skopeo(['inspect', '--tls-verify=false', '--creds', 'alice:s3cret', `docker://${reg.host}/sec/bb:1`])) as { Digest: string };
    assert.equal(info.Digest, manifestDigest);
  } finally {
    await stop(reg);
  }
});

test('SIGTERM stops berth registry serve cleanly', async () => {
  await stop(berth);
  assert.equal(berth.proc.exitCode, 0);
  assert.match(fs.readFileSync(berth.log, 'utf8'), /SIGTERM, stopping/);
});
