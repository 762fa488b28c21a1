/**
 * system df (layer sharing), image prune (-a, until, label), container prune filters, system prune.
 * berth's tables are checked against the docker CLI's, which renders the same API answer itself.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDaemon, loadTestImages, printLogTail, run, type Daemon } from '../harness.js';

let d: Daemon;
let tmp: string;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-housekeeping-'));
});

after(async () => {
  await d?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function ok(tool: 'berth' | 'docker', args: string[], input?: string): Promise<string> {
  const r = await d[tool](args, { input, timeoutMs: 120_000 });
  if (r.code !== 0) printLogTail(d, `${tool} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `${tool} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const berth = (args: string[], input?: string) => ok('berth', args, input);
const docker = (args: string[]) => ok('docker', args);
const tags = async () => (await berth(['images', '--format', '{{.Repository}}:{{.Tag}}'])).trim().split('\n').sort();

/** Two more images on busybox's very layer (other configs), loaded from a tar this test writes. */
async function loadSharing(): Promise<void> {
  const saved = path.join(tmp, 'bb.tar');
  await berth(['save', '-o', saved, 'busybox']);
  const x = path.join(tmp, 'bb');
  fs.mkdirSync(x);
  assert.equal((await run('tar', ['-xf', saved, '-C', x])).code, 0);
  const manifest = JSON.parse(fs.readFileSync(path.join(x, 'manifest.json'), 'utf8'));
  const config = JSON.parse(fs.readFileSync(path.join(x, manifest[0].Config), 'utf8'));
  const entries = [];
  for (const [tag, label] of [['share:a', 'a'], ['share:b', 'b']]) {
    const c = Buffer.from(JSON.stringify({ ...config, config: { ...config.config, Labels: { which: label } } }));
    const hex = crypto.createHash('sha256').update(c).digest('hex');
    fs.writeFileSync(path.join(x, 'blobs/sha256', hex), c);
    entries.push({ Config: `blobs/sha256/${hex}`, RepoTags: [tag], Layers: manifest[0].Layers });
  }
  fs.writeFileSync(path.join(x, 'manifest.json'), JSON.stringify(entries));
  fs.rmSync(path.join(x, 'index.json'));
  const file = path.join(tmp, 'share.tar');
  assert.equal((await run('tar', ['-cf', file, '-C', x, '.'])).code, 0);
  await berth(['load', '-i', file]);
}

test('system df counts a shared layer once, and berth prints what the docker CLI prints', async () => {
  await loadSharing();
  await berth(['run', '--name', 'writer', 'share:a', 'sh', '-c', 'head -c 5000 /dev/zero > /blob']);
  const df = (await d.api('GET', '/system/df')).body;
  const byTag = (t: string) => df.Images.find((i: { RepoTags: string[] }) => i.RepoTags.includes(t));
  const layer = byTag('busybox:latest').Size;
  const hello = byTag('hello-world:latest').Size;
  assert.ok(layer > 1_000_000, 'busybox is a real layer');
  assert.equal(df.LayersSize, layer + hello, 'three images on one busybox layer: counted once');
  for (const t of ['busybox:latest', 'share:a', 'share:b']) assert.equal(byTag(t).SharedSize, layer, t);
  assert.equal(byTag('hello-world:latest').SharedSize, 0);
  assert.equal(byTag('share:a').Containers, 1);
  const writer = df.Containers.find((c: { Names: string[] }) => c.Names[0] === '/writer');
  assert.ok(writer.SizeRw >= 5000 && writer.SizeRw < 20000, String(writer.SizeRw));
  assert.equal((await d.api('GET', '/system/df?type=container')).body.Images, undefined);

  const summary = await berth(['system', 'df']);
  assert.equal(summary, await docker(['system', 'df']));
  const rows = summary.trim().split('\n').map((l) => l.split(/\s{2,}/));
  assert.deepEqual(rows[1]!.slice(0, 3), ['Images', '4', '1']);
  assert.deepEqual(rows[2]!.slice(0, 3), ['Containers', '1', '0']);
  assert.equal(await berth(['system', 'df', '--format', '{{.Type}}={{.TotalCount}}']), 'Images=4\nContainers=1\nLocal Volumes=0\nBuild Cache=0\n');
  const verbose = await berth(['system', 'df', '-v']);
  assert.match(verbose, /^share\s+a\s+[0-9a-f]{12}\s+.+\s+1\.98MB\s+1\.98\d?MB\s+0B\s+1$/m);
  // The two CLIs ask a moment apart: "5 seconds ago" may be "6 seconds ago" (and widen its column).
  const timeless = (t: string) => t.replace(/(\d+|About a|Less than a) (second|minute|hour)s? ago/g, 'AGO').replace(/ {2,}/g, '\t');
  assert.equal(timeless(verbose), timeless(await docker(['system', 'df', '-v'])));
  await berth(['rm', 'writer']);
});

test('image prune: dangling by default, -a for every unused image, until and label filters', async () => {
  // A dangling image: share:b's tag moved away.
  await berth(['tag', 'busybox', 'share:b']);
  const dangling = await berth(['image', 'prune', '-f']);
  assert.match(dangling, /^Deleted Images:\ndeleted: sha256:[0-9a-f]{64}\n\nTotal reclaimed space: 0B\n$/, 'its layer is busybox\'s: nothing reclaimed');
  await berth(['rmi', 'share:b']);
  // until: everything here was made seconds ago, so an hour's cut-off keeps all.
  assert.equal(await berth(['image', 'prune', '-a', '-f', '--filter', 'until=1h']), 'Total reclaimed space: 0B\n');
  const labelled = await berth(['image', 'prune', '-a', '-f', '--filter', 'label=which=a']);
  assert.match(labelled, /untagged: share:a\ndeleted: sha256:/);
  assert.deepEqual(await tags(), ['busybox:latest', 'hello-world:latest']);
  // -a removes what no container uses and reclaims its layers; busybox, in use by a stopped container, stays.
  await berth(['create', '--name', 'keeper', 'busybox', 'true']);
  const all = await berth(['image', 'prune', '-a', '-f']);
  assert.match(all, /untagged: hello-world:latest\ndeleted: sha256:[0-9a-f]{64}\ndeleted: sha256:[0-9a-f]{64}\n\nTotal reclaimed space: 1\.\d+kB\n$/);
  assert.deepEqual(await tags(), ['busybox:latest']);
  await berth(['rm', 'keeper']);
  const bad = await d.berth(['image', 'prune', '-f', '--filter', 'until=soon']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /failed to parse value as time or duration: "soon"/);
});

test('container prune honours label and until filters', async () => {
  await berth(['create', '--name', 'p1', '--label', 'tier=x', 'busybox', 'true']);
  await berth(['create', '--name', 'p2', '--label', 'tier=y', 'busybox', 'true']);
  await berth(['run', '-d', '--name', 'p3', '--label', 'tier=x', 'busybox', 'sleep', '60']);
  const out = await berth(['container', 'prune', '-f', '--filter', 'label=tier=x']);
  const p1 = (await d.api('GET', '/containers/json?all=1')).body.map((c: { Names: string[] }) => c.Names[0]).sort();
  assert.deepEqual(p1, ['/p2', '/p3'], 'only the stopped tier=x one went');
  assert.match(out, /^Deleted Containers:\n[0-9a-f]{64}\n\nTotal reclaimed space: 0B\n$/);
  assert.equal(await berth(['container', 'prune', '-f', '--filter', 'until=1h']), 'Total reclaimed space: 0B\n');
  assert.equal(await berth(['container', 'prune', '-f', '--filter', 'label!=tier=y']), 'Total reclaimed space: 0B\n');
  await berth(['rm', '-f', 'p2', 'p3']);
});

test('system prune removes stopped containers, unused volumes and images; answering no prunes nothing', async () => {
  await berth(['create', '--name', 'gone', '-v', '/scratch', 'busybox', 'true']);
  const anon = (await d.api('GET', '/containers/gone/json')).body.Mounts[0].Name as string;
  const v = await d.berth(['system', 'prune', '-f', '--volumes']);
  assert.equal(v.code, 0, v.stderr);
  assert.equal((await d.api('GET', '/containers/gone/json')).status, 404);
  assert.equal((await d.api('GET', `/volumes/${anon}`)).status, 404, 'the stopped container\'s anonymous volume stayed');
  await berth(['create', '--name', 'old', 'busybox', 'true']);
  assert.match(await berth(['system', 'prune'], 'n\n'), /WARNING! This will remove:\n {2}- all stopped containers\n/);
  assert.equal((await d.api('GET', '/containers/old/json')).status, 200, 'answering no prunes nothing');
  const out = await berth(['system', 'prune', '-f', '-a']);
  assert.match(out, /^Deleted Containers:\n[0-9a-f]{64}\n\nDeleted Images:\nuntagged: busybox:latest\ndeleted: sha256:/);
  assert.match(out, /Total reclaimed space: 1\.98\d?MB\n$/);
  assert.deepEqual((await d.api('GET', '/images/json')).body, []);
});
