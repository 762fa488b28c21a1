/**
 * cp and the archive API, diff, export: through the berth CLI and the real docker CLI, on running
 * and stopped containers, with paths that try to leave the container's root.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startDaemon, leftovers, loadTestImages, paths, printLogTail, run, type Daemon } from '../harness.js';
import { makeTar } from '../tar-fixtures.js';

let d: Daemon;
let tmp: string;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-fs-cp-'));
});

after(async () => {
  await d?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function ok(tool: 'berth' | 'docker', args: string[], input?: string | Buffer): Promise<string> {
  const r = await d[tool](args, { input });
  if (r.code !== 0) printLogTail(d, `${tool} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `${tool} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const berth = (args: string[], input?: string | Buffer) => ok('berth', args, input);
const docker = (args: string[], input?: string | Buffer) => ok('docker', args, input);

/** A tree with a directory mode, owners, an executable, a hard link pair and two kinds of symlink. */
function makeTree(root: string): void {
  fs.mkdirSync(path.join(root, 'sub/deep'), { recursive: true });
  fs.writeFileSync(path.join(root, 'a.txt'), 'alpha\n');
  fs.linkSync(path.join(root, 'a.txt'), path.join(root, 'hard.txt'));
  fs.symlinkSync('a.txt', path.join(root, 'rel-link'));
  fs.symlinkSync('/etc/passwd', path.join(root, 'abs-link'));
  fs.writeFileSync(path.join(root, 'sub/deep/run.sh'), '#!/bin/sh\necho run\n');
  fs.chmodSync(path.join(root, 'sub/deep/run.sh'), 0o755);
  fs.chmodSync(path.join(root, 'a.txt'), 0o640);
  fs.chmodSync(path.join(root, 'sub'), 0o750);
  fs.chownSync(path.join(root, 'a.txt'), 1000, 1000);
  fs.lchownSync(path.join(root, 'rel-link'), 1000, 1001);
  fs.chownSync(path.join(root, 'sub/deep'), 1234, 5678);
}

/** What `cp` must keep of each path: type, mode, owner, link count or target, content. */
function describeTree(root: string): string[] {
  const out: string[] = [];
  const visit = (rel: string) => {
    const full = path.join(root, rel);
    const st = fs.lstatSync(full);
    const kind = st.isDirectory() ? 'd' : st.isSymbolicLink() ? `l->${fs.readlinkSync(full)}` : `f:${st.nlink}:${fs.readFileSync(full, 'utf8')}`;
    out.push(`${rel || '.'} ${kind} ${st.isSymbolicLink() ? '' : (st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`);
    if (st.isDirectory()) for (const e of fs.readdirSync(full).sort()) visit(rel ? `${rel}/${e}` : e);
  };
  visit('');
  return out;
}

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

function put(pathAndQuery: string, body: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: d.socket, method: 'PUT', path: pathAndQuery, headers: { 'Content-Type': 'application/x-tar' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.setTimeout(30_000, () => req.destroy(new Error('PUT timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

test('cp -a round-trips a tree (symlinks, hard links, modes, owners) into a stopped container and back out of a running one', async () => {
  const src = path.join(tmp, 'tree');
  fs.mkdirSync(src);
  makeTree(src);
  const id = (await berth(['create', '--name', 'rt', 'busybox', 'sh', '-c', 'cd /tmp/tree && stat -c "%n %a %u:%g %h" a.txt hard.txt sub sub/deep sub/deep/run.sh && readlink rel-link && readlink abs-link && sub/deep/run.sh && sleep 60'])).trim();
  await berth(['cp', '-a', src, 'rt:/tmp']);
  await berth(['start', 'rt']);
  let logs = '';
  for (let i = 0; i < 50 && !(logs = await berth(['logs', 'rt'])).includes('run\n'); i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(logs, [
    'a.txt 640 1000:1000 2', 'hard.txt 640 1000:1000 2', 'sub 750 0:0 3', 'sub/deep 755 1234:5678 2', 'sub/deep/run.sh 755 0:0 1',
    'a.txt', '/etc/passwd', 'run', '',
  ].join('\n'));
  const back = path.join(tmp, 'back');
  await berth(['cp', '-a', `${id}:/tmp/tree`, back]);
  assert.deepEqual(describeTree(back), describeTree(src));
  await berth(['rm', '-f', 'rt']);
});

test('cp without -a: into the container everything is owned by root, out of it by the caller', async () => {
  const src = path.join(tmp, 'owned');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'f'), 'x');
  fs.chownSync(path.join(src, 'f'), 1000, 1000);
  await berth(['create', '--name', 'own', 'busybox', 'sh', '-c', 'stat -c "%u:%g" /tmp/owned/f; chown 1000:1000 /tmp/owned/f']);
  await berth(['cp', src, 'own:/tmp']);
  // -L sends what a local symlink points at, under the link's name; without it, the link itself.
  fs.symlinkSync(path.join(src, 'f'), path.join(tmp, 'f-link'));
  await berth(['cp', '-L', path.join(tmp, 'f-link'), 'own:/tmp/followed']);
  await berth(['cp', path.join(tmp, 'f-link'), 'own:/tmp/kept']);
  const followed = await d.api('HEAD', '/containers/own/archive?path=/tmp/followed');
  const kept = await d.api('HEAD', '/containers/own/archive?path=/tmp/kept');
  const statOf = (r: { headers: Record<string, unknown> }) => JSON.parse(Buffer.from(String(r.headers['x-docker-container-path-stat']), 'base64').toString());
  assert.equal(statOf(followed).size, 1);
  assert.equal(statOf(followed).linkTarget, '');
  assert.equal(statOf(kept).linkTarget, '/' + path.relative('/', path.join(src, 'f')), 'a link kept as a link, resolved inside the container');
  assert.equal(await berth(['start', '-a', 'own']), '0:0\n');
  const out = path.join(tmp, 'owned-out');
  await berth(['cp', 'own:/tmp/owned', out]);
  const st = fs.statSync(path.join(out, 'f'));
  assert.equal(`${st.uid}:${st.gid}`, `${process.getuid!()}:${process.getgid!()}`);
  await berth(['rm', 'own']);
});

test('symlinks to / and above the root resolve inside the container, both ways', async () => {
  await berth(['run', '--name', 'esc', 'busybox', 'sh', '-c', 'ln -s / /escape && ln -s ../../../../etc /up && echo inside > /x']);
  const hostPasswd = sha('/etc/passwd');
  // Out: /up/passwd is the container's /etc/passwd (busybox's, with its user berth), not the host's.
  const p = path.join(tmp, 'passwd');
  await berth(['cp', 'esc:/up/passwd', p]);
  assert.match(fs.readFileSync(p, 'utf8'), /^berth:x:1000:1000:/m);
  assert.notEqual(sha(p), hostPasswd);
  await docker(['cp', 'esc:/escape/x', path.join(tmp, 'x')]);
  assert.equal(fs.readFileSync(path.join(tmp, 'x'), 'utf8'), 'inside\n');
  // -L copies what the link points at, under the link's name.
  await berth(['cp', '-L', 'esc:/up', path.join(tmp, 'up')]);
  assert.ok(fs.statSync(path.join(tmp, 'up')).isDirectory());
  assert.equal(sha(path.join(tmp, 'up/passwd')), sha(p));

  // In: writing /up/passwd and /escape/new changes the container's files only.
  const mine = path.join(tmp, 'mine');
  fs.writeFileSync(mine, 'mine:x:0:0::/:/bin/sh\n');
  await berth(['cp', mine, 'esc:/up/passwd']);
  await docker(['cp', mine, 'esc:/escape/new-at-root']);
  assert.equal(sha('/etc/passwd'), hostPasswd, 'the host /etc/passwd is untouched');
  assert.ok(!fs.existsSync('/new-at-root'), 'nothing was written at the host root');
  await berth(['cp', 'esc:/etc/passwd', path.join(tmp, 'passwd2')]);
  assert.equal(fs.readFileSync(path.join(tmp, 'passwd2'), 'utf8'), 'mine:x:0:0::/:/bin/sh\n');
  await berth(['cp', 'esc:/new-at-root', path.join(tmp, 'nar')]);
  assert.equal(fs.readFileSync(path.join(tmp, 'nar'), 'utf8'), 'mine:x:0:0::/:/bin/sh\n');
  await berth(['rm', 'esc']);
});

test('cp - streams a tar: out to stdout, in from stdin', async () => {
  await berth(['run', '--name', 'tarred', 'busybox', 'sh', '-c', 'mkdir -p /d/e && echo one > /d/e/one']);
  const tarFile = path.join(tmp, 'out.tar');
  const out = await run('sh', ['-c', '"$1" cp tarred:/d - > "$2"', 'sh', paths.berth, tarFile], { env: d.env });
  assert.equal(out.code, 0, out.stderr);
  const listing = await run('tar', ['-tf', tarFile]);
  assert.deepEqual(listing.stdout.trim().split('\n'), ['d/', 'd/e/', 'd/e/one']);
  // Back in, under /tmp, from stdin.
  await berth(['cp', '-', 'tarred:/tmp'], fs.readFileSync(tarFile));
  await berth(['cp', 'tarred:/tmp/d/e/one', path.join(tmp, 'one')]);
  assert.equal(fs.readFileSync(path.join(tmp, 'one'), 'utf8'), 'one\n');
  const notDir = await d.berth(['cp', '-', 'tarred:/d/e/one'], { input: fs.readFileSync(tarFile) });
  assert.equal(notDir.code, 1);
  assert.match(notDir.stderr, /destination "tarred:\/d\/e\/one" must be a directory/);
  await berth(['rm', 'tarred']);
});

test('bad input: missing paths, missing parents, ../ members and truncated tars change nothing', async () => {
  await berth(['create', '--name', 'bad', 'busybox', 'true']);
  const missing = await d.docker(['cp', 'bad:/nonexistent', tmp]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /Could not find the file \/nonexistent in container bad/);
  const noParent = await d.berth(['cp', path.join(tmp, 'mine'), 'bad:/no/such/dir']);
  assert.equal(noParent.code, 1);
  assert.match(noParent.stderr, /Could not find the file \/no\/such in container bad/);
  const noContainer = await d.berth(['cp', path.join(tmp, 'mine'), 'nosuch:/tmp']);
  assert.equal(noContainer.code, 1);
  assert.match(noContainer.stderr, /No such container: nosuch/);

  const evil = await makeTar([
    { name: 'first-ok.txt', body: 'ok' },
    { name: '../../../../../../tmp/berth-evil', body: 'evil' },
  ]);
  const r = await put('/v1.50/containers/bad/archive?path=/tmp', evil);
  assert.equal(r.status, 400, r.body);
  assert.match(JSON.parse(r.body).message, /berth-evil.*outside/);
  const link = await makeTar([{ name: 'l', type: 'link', linkname: '../../etc/shadow' }]);
  assert.equal((await put('/v1.50/containers/bad/archive?path=/tmp', link)).status, 400);
  const good = await makeTar([{ name: 'later.txt', body: 'x'.repeat(4096) }]);
  const truncated = await put('/v1.50/containers/bad/archive?path=/tmp', good.subarray(0, 1024));
  assert.equal(truncated.status, 400, truncated.body);
  assert.ok(!fs.existsSync('/tmp/berth-evil'));
  assert.equal(await berth(['diff', 'bad']), '', 'the container layer is unchanged');
  const notDir = await put('/v1.50/containers/bad/archive?path=/etc/passwd', good);
  assert.equal(notDir.status, 400);
  assert.match(JSON.parse(notDir.body).message, /extraction point is not a directory/);
  await berth(['rm', 'bad']);
});

test('diff lists added, changed and deleted paths, opaque directories included', async () => {
  await berth(['run', '--name', 'df', 'busybox', 'sh', '-c', 'echo hi > /etc/motd; rm /bin/vi; echo >> /etc/group; rm -rf /home && mkdir /home && touch /home/new']);
  const want = ['C /bin', 'D /bin/vi', 'C /etc', 'C /etc/group', 'A /etc/motd', 'C /home', 'D /home/berth', 'A /home/new', ''].join('\n');
  assert.equal(await berth(['diff', 'df']), want);
  assert.equal(await docker(['diff', 'df']), want);
  const api = await d.api('GET', '/containers/df/changes');
  assert.deepEqual(api.body.slice(0, 2), [{ Path: '/bin', Kind: 0 }, { Path: '/bin/vi', Kind: 2 }]);
  await berth(['rm', 'df']);
  const fresh = await berth(['create', 'busybox', 'true']);
  assert.equal(await berth(['diff', fresh.trim()]), '');
  await berth(['rm', fresh.trim()]);
});

test('export | import round-trips a filesystem, from a running container too', async () => {
  // Every cp, the export and their events happen after this second.
  const since = Math.floor(Date.now() / 1000) - 1;
  await berth(['run', '-d', '--name', 'ex', 'busybox', 'sh', '-c', 'mkdir /data && echo kept > /data/f && rm /bin/vi && sleep 60']);
  for (let i = 0; i < 50; i++) {
    if ((await d.berth(['cp', 'ex:/data/f', '-'])).code === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  // cp into the running container: its process sees the file at once.
  fs.writeFileSync(path.join(tmp, 'live.txt'), 'live\n');
  await berth(['cp', path.join(tmp, 'live.txt'), 'ex:/data/']);
  assert.equal(await berth(['exec', 'ex', 'cat', '/data/live.txt']), 'live\n');
  // The copy froze the container for its duration only; a paused one stays paused.
  assert.equal((await berth(['inspect', '-f', '{{.State.Status}}', 'ex'])).trim(), 'running');
  await berth(['pause', 'ex']);
  await berth(['cp', 'ex:/data/live.txt', path.join(tmp, 'from-paused.txt')]);
  assert.equal(fs.readFileSync(path.join(tmp, 'from-paused.txt'), 'utf8'), 'live\n');
  assert.equal((await berth(['inspect', '-f', '{{.State.Status}}', 'ex'])).trim(), 'paused');
  await berth(['unpause', 'ex']);
  const head = await d.api('HEAD', '/containers/ex/archive?path=/data/f');
  assert.equal(head.status, 200);
  const stat = JSON.parse(Buffer.from(String(head.headers['x-docker-container-path-stat']), 'base64').toString());
  assert.deepEqual({ ...stat, mtime: typeof stat.mtime }, { name: 'f', size: 5, mode: 0o644, mtime: 'string', linkTarget: '' });
  const dirStat = await d.api('HEAD', '/containers/ex/archive?path=/data');
  const dirMode = JSON.parse(Buffer.from(String(dirStat.headers['x-docker-container-path-stat']), 'base64').toString()).mode;
  assert.equal(dirMode, 2 ** 31 + 0o755, 'Go\'s os.ModeDir bit and the permissions');
  assert.equal((await d.api('HEAD', '/containers/ex/archive?path=/nope')).status, 404);
  const file = path.join(tmp, 'ex.tar');
  await berth(['export', '-o', file, 'ex']);
  const events = await docker(['events', '--since', String(since), '--until', String(Math.floor(Date.now() / 1000) + 1), '--filter', 'container=ex', '--format', '{{.Action}}']);
  for (const a of ['extract-to-dir', 'archive-path', 'export']) assert.ok(events.split('\n').includes(a), `${a} in ${events}`);
  const names = (await run('tar', ['-tf', file])).stdout.split('\n');
  assert.ok(names.includes('data/f'));
  assert.ok(names.includes('data/live.txt'));
  assert.ok(names.includes('bin/busybox'));
  assert.ok(!names.includes('bin/vi'));
  await berth(['import', '-c', 'CMD ["cat", "/data/f"]', '-m', 'from export', file, 'exported:1']);
  assert.equal(await berth(['run', '--rm', 'exported:1']), 'kept\n');
  assert.equal(await berth(['run', '--rm', 'exported:1', 'sh', '-c', 'test -e /bin/vi || echo gone']), 'gone\n');
  // docker export to stdout, imported from stdin.
  const viaDocker = await run('sh', ['-c', '"$1" export ex | "$1" import - exported:2', 'sh', paths.docker], { env: d.env, timeoutMs: 60_000 });
  assert.equal(viaDocker.code, 0, viaDocker.stderr);
  assert.equal(await berth(['run', '--rm', 'exported:2', 'cat', '/data/f']), 'kept\n');
  await berth(['rm', '-f', 'ex']);
  await berth(['rmi', 'exported:1', 'exported:2']);
});

test('after all this, no mount is left behind', async () => {
  const l = leftovers(d);
  assert.deepEqual(l.mounts, []);
});

test('a container a killed daemon left frozen mid-copy is thawed by the next one', async () => {
  const id = (await berth(['run', '-d', '--name', 'frozen', 'busybox', 'sleep', '300'])).trim();
  const runc = (args: string[]) => run('runc', ['--root', path.join(d.execRoot, 'runc'), ...args, id]);
  const runcState = async () => JSON.parse((await runc(['state'])).stdout).status;
  try {
    // What a copy does before its work: the marker, then the freeze; then the daemon dies.
    fs.writeFileSync(path.join(d.dataRoot, 'tmp', `frozen-${id}`), '');
    assert.equal((await runc(['pause'])).code, 0);
    assert.equal(await runcState(), 'paused');
    await d.restart();
    assert.equal(await runcState(), 'running');
    assert.equal((await berth(['inspect', '-f', '{{.State.Status}}', 'frozen'])).trim(), 'running');
    assert.equal(await berth(['exec', 'frozen', 'echo', 'alive']), 'alive\n');
    assert.ok(!fs.existsSync(path.join(d.dataRoot, 'tmp', `frozen-${id}`)));
  } finally {
    // A frozen process cannot be killed: thaw it whatever happened, so clean-up can remove it.
    await runc(['resume']);
    await d.berth(['rm', '-f', 'frozen']);
  }
});
