/**
 * save and load: berth's own tars (docker 25+ layout), the docker CLI as client, the dockerd 20.10
 * layout, skopeo's docker-archive and oci-archive, and broken tars that must change nothing.
 *
 * No dockerd runs here (installing docker.io is for benchmarks only), so the 20.10 layout is built
 * by this test from a saved image, member for member as dockerd 20.10 writes it:
 * <v1 id>/{VERSION,json,layer.tar}, <config hex>.json, manifest.json, repositories, and a second
 * image whose identical layer is a symlink to the first one's layer.tar.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDaemon, loadTestImages, paths, printLogTail, run, type Daemon } from '../harness.js';
import { makeTar } from '../tar-fixtures.js';
import { pushBusybox, startDistribution } from '../registry-fixtures.js';
import { startDockerd, which } from '../../bench/common.js';

let d: Daemon;
let tmp: string;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-save-load-'));
});

after(async () => {
  await d?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function ok(tool: 'berth' | 'docker', args: string[]): Promise<string> {
  const r = await d[tool](args, { timeoutMs: 120_000 });
  if (r.code !== 0) printLogTail(d, `${tool} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `${tool} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const berth = (args: string[]) => ok('berth', args);
const docker = (args: string[]) => ok('docker', args);
const sha256 = (b: Buffer) => 'sha256:' + crypto.createHash('sha256').update(b).digest('hex');

async function untar(file: string, dir: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const r = await run('tar', ['-xf', file, '-C', dir]);
  assert.equal(r.code, 0, r.stderr);
}

async function imageIds(): Promise<string> {
  return (await berth(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}'])).split('\n').sort().join('\n');
}

test('save writes docker\'s layout: manifest.json, repositories, OCI index.json and oci-layout, blobs by digest', async () => {
  const file = path.join(tmp, 'both.tar');
  await berth(['save', '-o', file, 'busybox', 'hello-world:latest']);
  const x = path.join(tmp, 'both');
  await untar(file, x);
  const manifest = JSON.parse(fs.readFileSync(path.join(x, 'manifest.json'), 'utf8'));
  assert.deepEqual(manifest.map((m: { RepoTags: string[] }) => m.RepoTags), [['busybox:latest'], ['hello-world:latest']]);
  const busyboxId = (await berth(['inspect', '-f', '{{.Id}}', 'busybox'])).trim();
  assert.equal(manifest[0].Config, `blobs/sha256/${busyboxId.slice(7)}`);
  const diffIds = JSON.parse(fs.readFileSync(path.join(x, manifest[0].Config), 'utf8')).rootfs.diff_ids;
  assert.deepEqual(manifest[0].Layers, diffIds.map((id: string) => `blobs/sha256/${id.slice(7)}`));
  // Every blob is what its name says.
  for (const f of fs.readdirSync(path.join(x, 'blobs/sha256'))) {
    assert.equal(sha256(fs.readFileSync(path.join(x, 'blobs/sha256', f))), `sha256:${f}`);
  }
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(x, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
  const index = JSON.parse(fs.readFileSync(path.join(x, 'index.json'), 'utf8'));
  assert.deepEqual(index.manifests.map((m: { annotations: Record<string, string> }) => m.annotations['io.containerd.image.name']), ['docker.io/library/busybox:latest', 'docker.io/library/hello-world:latest']);
  const ociManifest = JSON.parse(fs.readFileSync(path.join(x, 'blobs/sha256', index.manifests[0].digest.slice(7)), 'utf8'));
  assert.equal(ociManifest.config.digest, busyboxId);
  assert.deepEqual(Object.keys(JSON.parse(fs.readFileSync(path.join(x, 'repositories'), 'utf8'))), ['busybox', 'hello-world']);
  // skopeo reads it as an OCI layout too (ref.name is the tag, as docker writes it).
  const inspected = await run('skopeo', ['inspect', '--raw', `oci:${x}:latest`]);
  assert.equal(inspected.code, 0, inspected.stderr);
  assert.equal(JSON.parse(inspected.stdout).config.digest, busyboxId);
});

test('save, rmi, load, run: two images in one tar, tags restored, through berth and the docker CLI', async () => {
  const before = await imageIds();
  const file = path.join(tmp, 'round.tar');
  await berth(['save', '-o', file, 'busybox', 'hello-world']);
  await berth(['rmi', 'busybox', 'hello-world']);
  assert.equal(await berth(['load', '-i', file]), 'Loaded image: busybox:latest\nLoaded image: hello-world:latest\n');
  assert.equal(await imageIds(), before);
  assert.equal(await berth(['run', '--rm', 'busybox', 'echo', 'ran']), 'ran\n');
  assert.match(await berth(['run', '--rm', 'hello-world']), /Hello/);

  // docker save to stdout, docker load from stdin.
  const viaDocker = await run('sh', ['-c', '"$1" save busybox > "$2" && "$1" rmi busybox >/dev/null && "$1" load < "$2"', 'sh', paths.docker, path.join(tmp, 'd.tar')], { env: d.env, timeoutMs: 120_000 });
  assert.equal(viaDocker.code, 0, viaDocker.stderr);
  assert.equal(viaDocker.stdout, 'Loaded image: busybox:latest\n');
  assert.equal(await docker(['run', '--rm', 'busybox', 'echo', 'docker ran']), 'docker ran\n');
});

test('an image saved by ID loads untagged; a tag that moves says so', async () => {
  const id = (await berth(['inspect', '-f', '{{.Id}}', 'hello-world'])).trim();
  const file = path.join(tmp, 'byid.tar');
  await berth(['save', '-o', file, id]);
  await berth(['rmi', 'hello-world']);
  assert.equal(await berth(['load', '-i', file]), `Loaded image ID: ${id}\n`);
  assert.equal((await berth(['inspect', '-f', '{{.RepoTags}}', id])).trim(), '[]');
  await berth(['tag', id, 'hello-world:latest']);
  // busybox saved as "hello-world:latest" moves that tag off the hello-world image.
  await berth(['tag', 'busybox', 'moved:1']);
  const movedFile = path.join(tmp, 'moved.tar');
  await berth(['save', '-o', movedFile, 'moved:1']);
  await berth(['tag', 'hello-world', 'moved:1']);
  const out = await berth(['load', '-i', movedFile]);
  assert.equal(out, `The image moved:1 already exists, renaming the old one with ID ${id} to empty string\nLoaded image: moved:1\n`);
  assert.equal((await berth(['inspect', '-f', '{{.Id}}', 'moved:1'])).trim(), (await berth(['inspect', '-f', '{{.Id}}', 'busybox'])).trim());
  await berth(['rmi', 'moved:1']);
});

test('save of a repository name takes all its tags; a tag or ID only itself', async () => {
  await berth(['tag', 'busybox', 'multi:a']);
  await berth(['tag', 'busybox', 'multi:b']);
  await berth(['tag', 'hello-world', 'multi:c']);
  const file = path.join(tmp, 'multi.tar');
  await berth(['save', '-o', file, 'multi']);
  const x = path.join(tmp, 'multi');
  await untar(file, x);
  const tagsOf = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')).map((m: { RepoTags: string[] | null }) => m.RepoTags);
  assert.deepEqual(tagsOf(x).map((t: string[]) => [...t].sort()).sort(), [['multi:a', 'multi:b'], ['multi:c']]);
  const one = path.join(tmp, 'multi-one.tar');
  await berth(['save', '-o', one, 'multi:b']);
  const y = path.join(tmp, 'multi-one');
  await untar(one, y);
  assert.deepEqual(tagsOf(y), [['multi:b']]);
  await berth(['rmi', 'multi:a', 'multi:b', 'multi:c']);
});

test('the dockerd 20.10 layout loads: <id>/layer.tar, <id>.json, a shared layer as a symlink', async () => {
  const src = path.join(tmp, 'both');
  const manifest = JSON.parse(fs.readFileSync(path.join(src, 'manifest.json'), 'utf8'));
  const busybox = manifest[0];
  const legacy = path.join(tmp, 'legacy');
  fs.mkdirSync(legacy);
  const config = fs.readFileSync(path.join(src, busybox.Config));
  const configHex = busybox.Config.split('/').pop();
  fs.writeFileSync(path.join(legacy, `${configHex}.json`), config);
  const v1 = crypto.createHash('sha256').update('v1 ' + configHex).digest('hex');
  fs.mkdirSync(path.join(legacy, v1));
  fs.writeFileSync(path.join(legacy, v1, 'VERSION'), '1.0');
  fs.writeFileSync(path.join(legacy, v1, 'json'), JSON.stringify({ id: v1, created: '1970-01-01T00:00:00Z' }));
  fs.copyFileSync(path.join(src, busybox.Layers[0]), path.join(legacy, v1, 'layer.tar'));
  // A second image on the same layer, as 20.10 writes it: its own v1 dir, layer.tar a symlink.
  const cfg2 = JSON.parse(config.toString());
  cfg2.config = { ...cfg2.config, Cmd: ['echo', 'legacy two'] };
  const config2 = Buffer.from(JSON.stringify(cfg2));
  const config2Hex = sha256(config2).slice(7);
  fs.writeFileSync(path.join(legacy, `${config2Hex}.json`), config2);
  const v1b = crypto.createHash('sha256').update('v1 ' + config2Hex).digest('hex');
  fs.mkdirSync(path.join(legacy, v1b));
  fs.symlinkSync(`../${v1}/layer.tar`, path.join(legacy, v1b, 'layer.tar'));
  fs.writeFileSync(path.join(legacy, 'manifest.json'), JSON.stringify([
    { Config: `${configHex}.json`, RepoTags: ['legacy:one'], Layers: [`${v1}/layer.tar`] },
    { Config: `${config2Hex}.json`, RepoTags: ['legacy:two'], Layers: [`${v1b}/layer.tar`] },
  ]));
  fs.writeFileSync(path.join(legacy, 'repositories'), JSON.stringify({ legacy: { one: v1, two: v1b } }));
  const file = path.join(tmp, 'legacy.tar');
  assert.equal((await run('tar', ['-cf', file, '-C', legacy, '.'])).code, 0);
  assert.equal(await berth(['load', '-i', file]), 'Loaded image: legacy:one\nLoaded image: legacy:two\n');
  assert.equal(await berth(['run', '--rm', 'legacy:one', 'echo', 'legacy one']), 'legacy one\n');
  assert.equal(await berth(['run', '--rm', 'legacy:two']), 'legacy two\n');
  assert.equal((await berth(['inspect', '-f', '{{.Id}}', 'legacy:two'])).trim(), `sha256:${config2Hex}`);
  await berth(['rmi', 'legacy:one', 'legacy:two']);
});

test('skopeo docker-archive and oci-archive tars load and run', async () => {
  const src = path.join(tmp, 'both.tar');
  const dockerArchive = path.join(tmp, 'skopeo-docker.tar');
  const ociArchive = path.join(tmp, 'skopeo-oci.tar');
  for (const dest of [`docker-archive:${dockerArchive}:skopeo/docker:1`, `oci-archive:${ociArchive}:skopeo/oci:1`]) {
    const r = await run('skopeo', ['copy', '--quiet', `docker-archive:${src}:busybox:latest`, dest], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
  }
  assert.equal(await berth(['load', '-i', dockerArchive]), 'Loaded image: skopeo/docker:1\n');
  assert.equal(await berth(['load', '-q', '-i', ociArchive]), 'Loaded image: skopeo/oci:1\n');
  assert.equal(await berth(['run', '--rm', 'skopeo/docker:1', 'echo', 'from docker-archive']), 'from docker-archive\n');
  assert.equal(await berth(['run', '--rm', 'skopeo/oci:1', 'echo', 'from oci-archive']), 'from oci-archive\n');
  await berth(['rmi', 'skopeo/docker:1', 'skopeo/oci:1']);
});

test('load shows docker\'s progress unless quiet', async () => {
  const file = path.join(tmp, 'round.tar');
  const bd = d as Daemon & { apiUpload(p: string, file: string): Promise<{ status: number; body: unknown }> };
  // Layers already here are not loaded again (and show no progress), as in dockerd.
  await berth(['rmi', 'busybox', 'hello-world']);
  const loud = await bd.apiUpload('/v1.50/images/load', file);
  const lines = String(loud.body).trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(lines.some((l) => l.status === 'Loading layer' && l.progressDetail.total > 0 && /\[=*>? *\]/.test(l.progress)), String(loud.body));
  const quiet = await bd.apiUpload('/v1.50/images/load?quiet=1', file);
  assert.deepEqual(String(quiet.body).trim().split('\n').map((l) => JSON.parse(l)), [{ stream: 'Loaded image: busybox:latest\n' }, { stream: 'Loaded image: hello-world:latest\n' }]);
});

test('bad tars (cut short, ../ members, not an archive, a missing layer) are refused and change nothing', async () => {
  const before = await imageIds();
  const content = fs.readdirSync(path.join(d.dataRoot, 'content/blobs/sha256')).sort();
  const good = fs.readFileSync(path.join(tmp, 'round.tar'));
  const cut = path.join(tmp, 'cut.tar');
  fs.writeFileSync(cut, good.subarray(0, Math.floor(good.length / 2)));
  const r1 = await d.berth(['load', '-i', cut]);
  assert.equal(r1.code, 1);
  assert.match(r1.stderr, /invalid archive: Unexpected end of data/);
  const evil = path.join(tmp, 'evil.tar');
  fs.writeFileSync(evil, await makeTar([{ name: 'manifest.json', body: '[]' }, { name: '../../../tmp/berth-load-evil', body: 'x' }]));
  const r2 = await d.berth(['load', '-i', evil]);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /invalid tar member "..\/..\/..\/tmp\/berth-load-evil": it points outside of the archive/);
  assert.ok(!fs.existsSync('/tmp/berth-load-evil'));
  const junk = path.join(tmp, 'junk.tar');
  fs.writeFileSync(junk, await makeTar([{ name: 'hello.txt', body: 'hi' }]));
  const r3 = await d.berth(['load', '-i', junk]);
  assert.equal(r3.code, 1);
  assert.match(r3.stderr, /neither manifest.json nor index.json/);
  const x = path.join(tmp, 'both');
  const manifest = JSON.parse(fs.readFileSync(path.join(x, 'manifest.json'), 'utf8'));
  const partial = path.join(tmp, 'partial.tar');
  fs.writeFileSync(partial, await makeTar([
    { name: 'manifest.json', body: JSON.stringify([{ ...manifest[0], RepoTags: ['partial:1'] }]) },
    { name: manifest[0].Config, body: fs.readFileSync(path.join(x, manifest[0].Config), 'utf8') },
  ]));
  const r4 = await d.berth(['load', '-i', partial]);
  assert.equal(r4.code, 1);
  assert.match(r4.stderr, /invalid archive: blobs\/sha256\/[a-f0-9]+ is missing/);
  assert.equal(await imageIds(), before);
  assert.deepEqual(fs.readdirSync(path.join(d.dataRoot, 'content/blobs/sha256')).sort(), content);
  const missing = await d.berth(['save', '-o', path.join(tmp, 'none.tar'), 'busybox', 'no-such-image']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /No such image: no-such-image/);
  assert.ok(!fs.existsSync(path.join(tmp, 'none.tar')));
});

test('a pulled image (gzip and zstd layers) saves with its layers uncompressed, and loads back', async () => {
  const reg = await startDistribution();
  try {
    await pushBusybox(reg.host, 'pulled:gz', { extra: 'gzip layer' });
    await pushBusybox(reg.host, 'pulled:zst', { extra: 'zstd layer', compression: 'zstd' });
    for (const tag of ['gz', 'zst']) await berth(['pull', '-q', `${reg.host}/pulled:${tag}`]);
    const file = path.join(tmp, 'pulled.tar');
    await berth(['save', '-o', file, `${reg.host}/pulled:gz`, `${reg.host}/pulled:zst`]);
    const x = path.join(tmp, 'pulled');
    await untar(file, x);
    const manifest = JSON.parse(fs.readFileSync(path.join(x, 'manifest.json'), 'utf8'));
    for (const m of manifest) {
      const diffIds = JSON.parse(fs.readFileSync(path.join(x, m.Config), 'utf8')).rootfs.diff_ids;
      assert.deepEqual(m.Layers.map((l: string) => sha256(fs.readFileSync(path.join(x, l)))), diffIds);
    }
    await berth(['rmi', `${reg.host}/pulled:gz`, `${reg.host}/pulled:zst`]);
    assert.equal(await berth(['load', '-i', file]), `Loaded image: ${reg.host}/pulled:gz\nLoaded image: ${reg.host}/pulled:zst\n`);
    assert.equal(await berth(['run', '--rm', `${reg.host}/pulled:zst`, 'cat', '/etc/berth-hello']), 'zstd layer\n');
    await berth(['rmi', `${reg.host}/pulled:gz`, `${reg.host}/pulled:zst`]);
  } finally {
    await reg.stop();
  }
});

test('berth and dockerd load each other\'s saves and run them', async (t) => {
  const bin = which('dockerd');
  // dockerd 20.10 is a peer from Debian's docker.io, which npm test installs (scripts/test.sh).
  if (!bin) return t.skip('dockerd is not installed on this machine: nothing to cross-load with');
  const engine = await startDockerd(bin);
  try {
    const ours = path.join(tmp, 'for-dockerd.tar');
    await berth(['save', '-o', ours, 'busybox']);
    const loaded = await engine.docker(['load', '-i', ours]);
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.match(loaded.stdout, /Loaded image: busybox:latest/);
    const ran = await engine.docker(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'in dockerd']);
    assert.equal(ran.stdout, 'in dockerd\n', ran.stderr);
    await engine.docker(['tag', 'busybox', 'from-dockerd:1']);
    const theirs = path.join(tmp, 'from-dockerd.tar');
    const saved = await engine.docker(['save', '-o', theirs, 'from-dockerd:1']);
    assert.equal(saved.code, 0, saved.stderr);
    assert.equal(await berth(['load', '-i', theirs]), 'Loaded image: from-dockerd:1\n');
    assert.equal(await berth(['run', '--rm', 'from-dockerd:1', 'echo', 'in berth']), 'in berth\n');
    await berth(['rmi', 'from-dockerd:1']);
  } finally {
    await engine.stop();
  }
});
