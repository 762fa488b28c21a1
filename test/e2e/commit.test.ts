/**
 * docker commit against berthd, through the real docker CLI and berth's own: a container's changes
 * (added, changed and deleted files) become a new image whose containers see them.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDaemon, loadTestImages, printLogTail, run, type Daemon } from '../harness.js';

let d: Daemon;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
});

after(async () => {
  await d?.stop();
});

async function ok(tool: 'docker' | 'berth', args: string[]) {
  const r = await d[tool](args);
  if (r.code !== 0) printLogTail(d, `${tool} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `${tool} ${args.join(' ')}: ${r.stderr}`);
  return r;
}

test('commit then run: the new image has the added and changed files, and a deleted lower file stays deleted', { timeout: 120_000 }, async () => {
  // busybox's tree comes from the image's one layer: /bin/vi and /etc/passwd are in the lower layer.
  const base = await ok('docker', ['run', '--rm', 'busybox', 'sh', '-c', 'test -e /bin/vi && cat /etc/passwd | head -1']);
  assert.match(base.stdout, /^root:/);
  await ok('docker', ['run', '--name', 'c1', 'busybox', 'sh', '-c', 'mkdir -p /data/sub && echo hello > /data/sub/f && echo changed > /etc/passwd && rm /bin/vi']);
  const commit = await ok('docker', ['commit', '-m', 'my message', '-a', 'Jane <jane@example.com>', 'c1', 'committed:v1']);
  assert.match(commit.stdout.trim(), /^sha256:[a-f0-9]{64}$/);

  const r = await ok('docker', ['run', '--rm', 'committed:v1', 'sh', '-c', 'cat /data/sub/f; cat /etc/passwd; test -e /bin/vi && echo vi-present || echo vi-gone']);
  assert.equal(r.stdout, 'hello\nchanged\nvi-gone\n');

  const inspect = JSON.parse((await ok('docker', ['image', 'inspect', 'committed:v1'])).stdout)[0];
  assert.equal(inspect.Comment, 'my message');
  assert.equal(inspect.Author, 'Jane <jane@example.com>');
  assert.equal(inspect.RootFS.Layers.length, 2, 'one new layer on top of busybox');
  // The container's command is the image's new Cmd, as dockerd does.
  assert.deepEqual(inspect.Config.Cmd, ['sh', '-c', 'mkdir -p /data/sub && echo hello > /data/sub/f && echo changed > /etc/passwd && rm /bin/vi']);
  const baseId = JSON.parse((await ok('docker', ['image', 'inspect', 'busybox'])).stdout)[0].Id;
  assert.equal(inspect.Parent, baseId);

  const hist = await ok('docker', ['history', '--no-trunc', '--format', '{{.CreatedBy}}|{{.Comment}}', 'committed:v1']);
  assert.equal(hist.stdout.split('\n')[0], 'sh -c mkdir -p /data/sub && echo hello > /data/sub/f && echo changed > /etc/passwd && rm /bin/vi|my message');
  await ok('docker', ['rm', 'c1']);
});

test('commit -c applies Dockerfile changes; a commit without changes adds no layer', { timeout: 120_000 }, async () => {
  await ok('docker', ['create', '--name', 'c2', '-e', 'FROM_RUN=1', 'busybox', 'true']);
  await ok('docker', ['commit', '-c', 'ENV A=b', '-c', 'CMD ["echo", "from-cmd"]', '-c', 'WORKDIR /srv', '-c', 'LABEL k=v', '-c', 'EXPOSE 8080', 'c2', 'changed']);
  const inspect = JSON.parse((await ok('docker', ['image', 'inspect', 'changed'])).stdout)[0];
  assert.deepEqual(inspect.Config.Cmd, ['echo', 'from-cmd']);
  assert.ok(inspect.Config.Env.includes('A=b'));
  assert.ok(inspect.Config.Env.includes('FROM_RUN=1'), 'the container env is kept');
  assert.equal(inspect.Config.WorkingDir, '/srv');
  assert.deepEqual(inspect.Config.Labels, { k: 'v' });
  assert.deepEqual(inspect.Config.ExposedPorts, { '8080/tcp': {} });
  assert.equal(inspect.RootFS.Layers.length, 1, 'nothing changed: no layer added');
  const hist = (await d.api('GET', '/images/changed/history')).body;
  assert.equal(hist[0].Size, 0);
  const r = await ok('docker', ['run', '--rm', 'changed']);
  assert.equal(r.stdout, 'from-cmd\n');
  const bad = await d.docker(['commit', '-c', 'FROB x', 'c2']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /FROB is not a valid change command/);
  await ok('docker', ['rm', 'c2']);
});

test('commit of a running container pauses it meanwhile and leaves it running; berth commit works the same', { timeout: 120_000 }, async () => {
  await ok('docker', ['run', '-d', '--name', 'c3', 'busybox', 'sh', '-c', 'echo live > /live; sleep 300']);
  // Wait until the file is there.
  for (let i = 0; i < 50; i++) {
    const e = await d.docker(['exec', 'c3', 'cat', '/live']);
    if (e.code === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const out = await ok('berth', ['commit', 'c3', 'live:1']);
  assert.match(out.stdout.trim(), /^sha256:[a-f0-9]{64}$/);
  const state = (await ok('docker', ['inspect', '-f', '{{.State.Status}}', 'c3'])).stdout.trim();
  assert.equal(state, 'running');
  const r = await ok('docker', ['run', '--rm', 'live:1', 'cat', '/live']);
  assert.equal(r.stdout, 'live\n');
  const events = await ok('docker', ['events', '--since', '0', '--until', String(Math.floor(Date.now() / 1000) + 1), '--filter', 'event=commit', '--format', '{{.Actor.Attributes.imageRef}}']);
  assert.match(events.stdout, /live:1/);
  await ok('docker', ['rm', '-f', 'c3']);
});

/** "md5  name" lines of every file under /data in a new container of `image`. */
async function dataSums(image: string): Promise<string> {
  return (await ok('docker', ['run', '--rm', '--network', 'none', image, 'sh', '-c', 'cd /data && find . -type f | sort | xargs md5sum'])).stdout;
}

test('commit --pause=false while the container keeps writing: the image is its layer tar, and stays as committed', { timeout: 180_000 }, async () => {
  // Rewrites 40 files and appends to a log as fast as it can: commit reads files that change underneath.
  await ok('docker', ['run', '-d', '--name', 'writer', '--network', 'none', 'busybox', 'sh', '-c',
    'mkdir /data; i=0; while true; do echo "$i $i $i" > /data/f$((i % 40)); echo $i >> /data/log; i=$((i+1)); done']);
  try {
    for (let i = 0; i < 100; i++) {
      const e = await d.docker(['exec', 'writer', 'test', '-e', '/data/f39']);
      if (e.code === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await ok('docker', ['commit', '--pause=false', 'writer', 'written:1']);
    const first = await dataSums('written:1');
    assert.match(first, / \.\/f39\n/);
    assert.match(first, / \.\/log\n/);
    // The container goes on writing into its own layer, not the image's.
    const grew = (await ok('docker', ['exec', 'writer', 'wc', '-c', '/data/log'])).stdout;
    await new Promise((r) => setTimeout(r, 1000));
    assert.notEqual((await ok('docker', ['exec', 'writer', 'wc', '-c', '/data/log'])).stdout, grew);
    assert.equal(await dataSums('written:1'), first, 'the committed image did not change');

    // The layer berth would push holds exactly what containers of the image see, and is the diff ID.
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-commit-'));
    try {
      await ok('docker', ['save', '-o', path.join(tmp, 'img.tar'), 'written:1']);
      assert.equal((await run('tar', ['-xf', path.join(tmp, 'img.tar'), '-C', tmp])).code, 0);
      const manifest = JSON.parse(fs.readFileSync(path.join(tmp, 'manifest.json'), 'utf8'));
      const config = JSON.parse(fs.readFileSync(path.join(tmp, manifest[0].Config), 'utf8'));
      const top = fs.readFileSync(path.join(tmp, manifest[0].Layers.at(-1)));
      assert.equal(`sha256:${crypto.createHash('sha256').update(top).digest('hex')}`, config.rootfs.diff_ids.at(-1));
      const layer = path.join(tmp, 'layer');
      fs.mkdirSync(layer);
      fs.writeFileSync(path.join(tmp, 'top.tar'), top);
      assert.equal((await run('tar', ['-xf', path.join(tmp, 'top.tar'), '-C', layer])).code, 0);
      const names = fs.readdirSync(path.join(layer, 'data')).sort();
      const fromTar = names.map((n) => `${crypto.createHash('md5').update(fs.readFileSync(path.join(layer, 'data', n))).digest('hex')}  ./${n}\n`).join('');
      assert.equal(fromTar, first);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  } finally {
    await ok('docker', ['rm', '-f', 'writer']);
  }
});

test('kill -9 of the daemon during a commit of many files: after restart, no half layer, and the commit works', { timeout: 240_000 }, async () => {
  await ok('docker', ['run', '--name', 'many', '--network', 'none', 'busybox', 'sh', '-c',
    'mkdir /many && cd /many && i=0; while [ $i -lt 5000 ]; do echo $i > f$i; i=$((i+1)); done']);
  const id = (await ok('docker', ['inspect', '-f', '{{.Id}}', 'many'])).stdout.trim();
  const committing = d.api('POST', `/commit?container=${id}&repo=killed&tag=1`, undefined, { timeoutMs: 120_000 }).catch(() => null);
  await new Promise((r) => setTimeout(r, 100 + Math.random() * 600));
  await d.kill9();
  await committing;
  await d.restart();
  // The overlay drivers stage a layer in .tmp-<id> (the tree drivers in an extract- snapshot, which recovery removes the same way).
  for (const storage of ['overlay2', 'fuse-overlayfs'].map((n) => path.join(d.dataRoot, n)).filter((p) => fs.existsSync(p))) {
    assert.deepEqual(fs.readdirSync(storage).filter((n) => n.startsWith('.tmp-')), [], 'no staged layer left');
  }
  assert.deepEqual(fs.readdirSync(path.join(d.dataRoot, 'content', 'ingest')), [], 'no half-written blob left');
  // Whether the kill came before or after the commit point, what is there is whole.
  const listed = (await ok('docker', ['images', '-q', 'killed:1'])).stdout.trim();
  if (listed) assert.equal((await ok('docker', ['run', '--rm', 'killed:1', 'sh', '-c', 'ls /many | wc -l'])).stdout.trim(), '5000');
  await ok('docker', ['commit', 'many', 'killed:2']);
  assert.equal((await ok('docker', ['run', '--rm', 'killed:2', 'sh', '-c', 'ls /many | wc -l; cat /many/f4999'])).stdout, '5000\n4999\n');
  await ok('docker', ['rm', 'many']);
});

test('commit of a missing container fails like docker and makes no image', { timeout: 60_000 }, async () => {
  const before = (await ok('docker', ['images', '-q'])).stdout;
  const r = await d.docker(['commit', 'nosuch', 'x:y']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /No such container: nosuch/);
  assert.equal((await ok('docker', ['images', '-q'])).stdout, before);
});
