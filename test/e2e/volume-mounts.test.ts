/**
 * Volumes, binds and tmpfs mounts through the real docker CLI: named volumes that outlive their
 * container, an image VOLUME whose content pre-populates a new volume, --volumes-from, read-only
 * mounts, binds (-v makes a missing source, --mount refuses), tmpfs options, and docker's errors for
 * bad input, which leave nothing behind.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { extendTar } from '../tar-fixtures.js';
import { startDaemon, loadTestImages, leftovers, printLogTail, testImages, type Daemon } from '../harness.js';

let d: Daemon;
let tmp: string;

/** busybox's rootfs plus /data with content (an owner, a mode, a symlink, a hard link), imported with VOLUME /data. */
async function volumeImageTar(out: string): Promise<void> {
  const busybox = (await testImages()).find((i) => i.ref === 'busybox:latest')!.tar;
  await extendTar(busybox, out, [
    { name: 'data/', type: 'directory', mode: 0o750, uid: 1000, gid: 1000 },
    { name: 'data/hello.txt', mode: 0o640, uid: 1000, gid: 100, body: 'hello from the image\n' },
    { name: 'data/sub/', type: 'directory', mode: 0o755 },
    { name: 'data/sub/link', type: 'symlink', linkname: '../hello.txt' },
    { name: 'data/hard', type: 'link', linkname: 'data/hello.txt' },
  ]);
}

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-vol-test-'));
  const tar = path.join(tmp, 'volimg.tar');
  await volumeImageTar(tar);
  const r = await d.docker(['import', '-c', 'VOLUME /data', '-c', 'CMD ["sh"]', tar, 'volimg:latest']);
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await d?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function docker(args: string[], input?: string) {
  const r = await d.docker(args, { input });
  if (r.code !== 0) printLogTail(d, `docker ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function volumeNames(): Promise<string[]> {
  return (await docker(['volume', 'ls', '-q'])).split('\n').filter(Boolean).sort();
}

/** Removes every container and volume, so each test starts from nothing. */
async function reset(): Promise<void> {
  const ids = (await docker(['ps', '-aq'])).split('\n').filter(Boolean);
  if (ids.length) await docker(['rm', '-f', ...ids]);
  const vols = await volumeNames();
  if (vols.length) await docker(['volume', 'rm', ...vols]);
}

test('data in a named volume survives rm and is seen by the next container', { timeout: 120_000 }, async () => {
  await reset();
  await docker(['run', '--name', 'writer', '-v', 'keep:/data', 'busybox', 'sh', '-c', 'echo kept > /data/f']);
  assert.deepEqual(await volumeNames(), ['keep'], 'the named volume was made on first use');
  await docker(['rm', '-v', 'writer']);
  assert.deepEqual(await volumeNames(), ['keep'], 'rm -v leaves a named volume');
  assert.equal(await docker(['run', '--rm', '-v', 'keep:/data', 'busybox', 'cat', '/data/f']), 'kept\n');
  // Through --mount as well, on another path.
  assert.equal(await docker(['run', '--rm', '--mount', 'source=keep,target=/other', 'busybox', 'cat', '/other/f']), 'kept\n');
  const mp = JSON.parse(await docker(['volume', 'inspect', 'keep']))[0].Mountpoint as string;
  assert.equal(fs.readFileSync(path.join(mp, 'f'), 'utf8'), 'kept\n', 'the data lives under the volume\'s Mountpoint');
});

test('an image VOLUME gets an anonymous volume pre-populated with the image\'s content; rm -v and --rm remove it', { timeout: 120_000 }, async () => {
  await reset();
  const out = await docker(['run', '--name', 'pop', 'volimg', 'sh', '-c', 'cat /data/hello.txt; cat /data/sub/link; stat -c "%a %u:%g %h" /data /data/hello.txt; echo more >> /data/hello.txt; cat /data/hard']);
  assert.equal(out, 'hello from the image\nhello from the image\n750 1000:1000 3\n640 1000:100 2\nhello from the image\nmore\n');
  const vols = await volumeNames();
  assert.equal(vols.length, 1);
  assert.match(vols[0], /^[0-9a-f]{64}$/);
  const v = JSON.parse(await docker(['volume', 'inspect', vols[0]]))[0];
  assert.deepEqual(v.Labels, { 'com.docker.volume.anonymous': '' });
  const mounts = JSON.parse(await docker(['inspect', '-f', '{{json .Mounts}}', 'pop']));
  assert.deepEqual(mounts, [{ Type: 'volume', Name: vols[0], Source: v.Mountpoint, Destination: '/data', Driver: 'local', Mode: '', RW: true, Propagation: '' }]);
  // A restart keeps the volume and its changes (copy only into an empty volume).
  await docker(['start', '-a', 'pop']);
  assert.equal(fs.readFileSync(path.join(v.Mountpoint, 'hello.txt'), 'utf8'), 'hello from the image\nmore\nmore\n');
  await docker(['rm', 'pop']);
  assert.deepEqual(await volumeNames(), vols, 'rm without -v keeps the anonymous volume');
  await docker(['volume', 'rm', vols[0]]);

  await docker(['run', '--name', 'pop2', 'volimg', 'true']);
  assert.equal((await volumeNames()).length, 1);
  await docker(['rm', '-v', 'pop2']);
  assert.deepEqual(await volumeNames(), [], 'rm -v removes the anonymous volume');
  await docker(['run', '--rm', '-v', '/scratch', 'volimg', 'sh', '-c', 'test -f /data/hello.txt && touch /scratch/x']);
  assert.deepEqual(await volumeNames(), [], '--rm removes the anonymous volumes (image VOLUME and -v /path)');

  // A new named volume is populated too; nocopy leaves it empty.
  assert.equal(await docker(['run', '--rm', '-v', 'filled:/data', 'volimg', 'cat', '/data/hello.txt']), 'hello from the image\n');
  assert.equal(await docker(['run', '--rm', '-v', 'bare:/data:nocopy', 'volimg', 'ls', '-A', '/data']), '');
  assert.equal(await docker(['run', '--rm', '--mount', 'type=volume,src=bare2,dst=/data,volume-nocopy', 'volimg', 'ls', '-A', '/data']), '');
  // A named volume that already has data is not overwritten.
  await docker(['run', '--rm', '-v', 'mine:/x', 'busybox', 'sh', '-c', 'echo mine > /x/own']);
  assert.equal(await docker(['run', '--rm', '-v', 'mine:/data', 'volimg', 'ls', '/data']), 'own\n');
});

test('--volumes-from shares a container\'s volumes and binds, :ro makes them read-only', { timeout: 120_000 }, async () => {
  await reset();
  const hostDir = fs.mkdtempSync(path.join(tmp, 'share-'));
  fs.writeFileSync(path.join(hostDir, 'h'), 'host\n');
  await docker(['create', '--name', 'store', '-v', 'shared:/s', '-v', `${hostDir}:/h`, 'volimg']);
  await docker(['run', '--rm', '--volumes-from', 'store', 'busybox', 'sh', '-c', 'echo from-a > /s/a; echo img-write >> /data/hello.txt']);
  const out = await docker(['run', '--rm', '--volumes-from', 'store', 'busybox', 'sh', '-c', 'cat /s/a /h/h /data/hello.txt']);
  assert.equal(out, 'from-a\nhost\nhello from the image\nimg-write\n');
  const ro = await d.docker(['run', '--rm', '--volumes-from', 'store:ro', 'busybox', 'sh', '-c', 'cat /s/a && touch /s/b']);
  assert.notEqual(ro.code, 0);
  assert.match(ro.stdout, /from-a/);
  assert.match(ro.stderr, /Read-only file system/);
  // A 404, as dockerd answers (the docker CLI then tries a pull, so this is checked on the API).
  const missing = await d.api('POST', '/containers/create', { Image: 'busybox', HostConfig: { VolumesFrom: ['nosuch'] } });
  assert.equal(missing.status, 404);
  assert.equal(missing.body.message, 'No such container: nosuch');
  // The volumes are in use by `store`: refused with docker's 409 message.
  const inUse = await d.docker(['volume', 'rm', 'shared']);
  assert.equal(inUse.code, 1);
  const storeId = (await docker(['inspect', '-f', '{{.Id}}', 'store'])).trim();
  assert.equal(inUse.stderr.trim(), `Error response from daemon: remove shared: volume is in use - [${storeId}]`);
  const api = await d.api('DELETE', '/volumes/shared');
  assert.equal(api.status, 409);
  await docker(['rm', '-v', 'store']);
  assert.deepEqual(await volumeNames(), ['shared'], 'rm -v removed the anonymous /data volume, not the named one');
});

test('ro mounts refuse writes with EROFS: -v :ro, --mount readonly, binds', { timeout: 120_000 }, async () => {
  await reset();
  const hostDir = fs.mkdtempSync(path.join(tmp, 'ro-'));
  for (const args of [['-v', 'rovol:/d:ro'], ['--mount', 'source=rovol,target=/d,readonly'], ['-v', `${hostDir}:/d:ro`], ['--mount', `type=bind,src=${hostDir},dst=/d,ro=true`]]) {
    const r = await d.docker(['run', '--rm', ...args, 'busybox', 'sh', '-c', 'touch /d/x']);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /Read-only file system/, args.join(' '));
  }
  assert.deepEqual(fs.readdirSync(hostDir), []);
  // Read-only is recursive (docker ≥ 25): a mount below the bind source is read-only too, unless bind-recursive=writable.
  const sub = path.join(hostDir, 'sub');
  fs.mkdirSync(sub);
  execFileSync('mount', ['-t', 'tmpfs', 'berth-ro-sub', sub]);
  try {
    const deep = await d.docker(['run', '--rm', '-v', `${hostDir}:/d:ro`, 'busybox', 'touch', '/d/sub/x']);
    assert.equal(deep.code, 1);
    assert.match(deep.stderr, /Read-only file system/);
    await docker(['run', '--rm', '--mount', `type=bind,src=${hostDir},dst=/d,readonly,bind-recursive=writable`, 'busybox', 'touch', '/d/sub/x']);
    assert.ok(fs.existsSync(path.join(sub, 'x')));
  } finally {
    execFileSync('umount', ['-l', sub]);
  }
  fs.rmdirSync(sub);
  const mounts = JSON.parse(await docker(['inspect', '-f', '{{json .Mounts}}', (await docker(['create', '-v', 'rovol:/d:ro', '-v', `${hostDir}:/b:ro,rslave`, 'busybox'])).trim()]));
  const mp = JSON.parse(await docker(['volume', 'inspect', 'rovol']))[0].Mountpoint;
  assert.deepEqual(mounts, [
    { Type: 'bind', Source: hostDir, Destination: '/b', Mode: 'ro,rslave', RW: false, Propagation: 'rslave' },
    { Type: 'volume', Name: 'rovol', Source: mp, Destination: '/d', Driver: 'local', Mode: 'ro', RW: false, Propagation: '' },
  ]);
});

test('binds: -v makes a missing source dir, --mount refuses it with docker\'s error and leaves nothing', { timeout: 120_000 }, async () => {
  await reset();
  const made = path.join(tmp, 'made', 'by', 'v');
  assert.equal(await docker(['run', '--rm', '-v', `${made}:/m`, 'busybox', 'sh', '-c', 'echo in > /m/f; cat /m/f']), 'in\n');
  assert.equal(fs.readFileSync(path.join(made, 'f'), 'utf8'), 'in\n', 'what the container wrote is on the host');
  const missing = path.join(tmp, 'not-there');
  const r = await d.docker(['run', '--rm', '--mount', `type=bind,source=${missing},target=/m`, 'busybox', 'true']);
  assert.equal(r.code, 125);
  assert.match(r.stderr, new RegExp(`invalid mount config for type "bind": bind source path does not exist: ${missing}`));
  assert.equal(fs.existsSync(missing), false);
  // SELinux labels are accepted (and ignored: SELinux is off here); z/Z show as the mode.
  assert.equal(await docker(['run', '--rm', '-v', `${made}:/m:z`, 'busybox', 'cat', '/m/f']), 'in\n');
  const mounts = JSON.parse(await docker(['inspect', '-f', '{{json .Mounts}}', (await docker(['create', '--mount', `type=bind,src=${made},dst=/m`, '-v', `${made}:/z:Z`, 'busybox'])).trim()]));
  assert.deepEqual(mounts, [
    { Type: 'bind', Source: made, Destination: '/m', Mode: '', RW: true, Propagation: 'rprivate' },
    { Type: 'bind', Source: made, Destination: '/z', Mode: 'Z', RW: true, Propagation: 'rprivate' },
  ]);
});

test('bind propagation: rslave sees what the host mounts later; shared and slave need a shared source, as docker says', { timeout: 120_000 }, async () => {
  await reset();
  const src = fs.mkdtempSync(path.join(tmp, 'prop-'));
  // A plain directory of this host's (private) root cannot be shared into a container.
  const refused = await d.docker(['run', '--rm', '-v', `${src}:/m:rshared`, 'busybox', 'true']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, new RegExp(`path ${src} is mounted on \\S+ but it is not a shared mount`));
  // A shared mount of the test's own, unmounted again whatever happens.
  execFileSync('mount', ['-t', 'tmpfs', 'berth-prop', src]);
  try {
    execFileSync('mount', ['--make-shared', src]);
    const id = (await docker(['run', '-d', '-v', `${src}:/m:rslave`, 'busybox', 'sh', '-c', 'i=0; while [ ! -f /m/sub/flag ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; cat /m/sub/flag'])).trim();
    fs.mkdirSync(path.join(src, 'sub'));
    execFileSync('mount', ['-t', 'tmpfs', 'berth-prop-sub', path.join(src, 'sub')]);
    fs.writeFileSync(path.join(src, 'sub', 'flag'), 'propagated\n');
    assert.equal((await docker(['wait', id])).trim(), '0');
    assert.equal(await docker(['logs', id]), 'propagated\n', 'the host\'s later mount reached the container');
    await docker(['rm', id]);
  } finally {
    execFileSync('umount', ['-R', '-l', src]);
  }
});

test('--tmpfs and --mount type=tmpfs: size, mode and options', { timeout: 120_000 }, async () => {
  await reset();
  const out = await docker(['run', '--rm', '--tmpfs', '/t:size=1m,exec', '--mount', 'type=tmpfs,dst=/u,tmpfs-size=2097152,tmpfs-mode=1770', 'busybox', 'sh', '-c',
    'df -k /t /u | tail -2 | awk \'{print $2}\'; stat -c %a /u; grep -E " /(t|u) " /proc/mounts | cut -d" " -f2,3,4']);
  const lines = out.trim().split('\n');
  assert.deepEqual(lines.slice(0, 3), ['1024', '2048', '1770']);
  const mounts = lines.slice(3).sort();
  assert.match(mounts[0], /^\/t tmpfs rw,nosuid,nodev,relatime,size=1024k$/, 'exec overrides the default noexec');
  assert.match(mounts[1], /^\/u tmpfs rw,nosuid,nodev,noexec,relatime,size=2048k,mode=1770$/);
  // Only --mount tmpfs shows in Mounts, as with docker.
  const id = (await docker(['create', '--tmpfs', '/t', '--mount', 'type=tmpfs,dst=/u', 'busybox'])).trim();
  assert.deepEqual(JSON.parse(await docker(['inspect', '-f', '{{json .Mounts}}', id])), [{ Type: 'tmpfs', Source: '', Destination: '/u', Mode: '', RW: true, Propagation: '' }]);
  assert.deepEqual(JSON.parse(await docker(['inspect', '-f', '{{json .HostConfig.Tmpfs}}', id])), { '/t': '' });
  // An image VOLUME under a --tmpfs gets no volume.
  await docker(['run', '--rm', '--tmpfs', '/data', 'volimg', 'true']);
  assert.deepEqual(await volumeNames(), []);
});

test('volume-subpath mounts a directory of a volume', { timeout: 120_000 }, async () => {
  await reset();
  await docker(['run', '--rm', '-v', 'tree:/v', 'busybox', 'sh', '-c', 'mkdir -p /v/a/b && echo deep > /v/a/b/f']);
  assert.equal(await docker(['run', '--rm', '--mount', 'src=tree,dst=/s,volume-subpath=a/b', 'busybox', 'cat', '/s/f']), 'deep\n');
  const bad = await d.docker(['run', '--rm', '--mount', 'src=tree,dst=/s,volume-subpath=../x', 'busybox', 'true']);
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /subpath must be a relative path within the volume/);
  const absent = await d.docker(['run', '--rm', '--mount', 'src=tree,dst=/s,volume-subpath=nope', 'busybox', 'true']);
  assert.notEqual(absent.code, 0);
  assert.match(absent.stderr, /nope: no such file or directory/);
});

test('bad mount specs get docker\'s errors and leave no container, volume or mount', { timeout: 120_000 }, async () => {
  await reset();
  const cases: [string[], RegExp][] = [
    [['-v', 'a:/b:c:d'], /invalid volume specification: 'a:\/b:c:d'/],
    [['-v', 'x:/y:bogus'], /invalid mode: bogus/],
    [['-v', 'x:rel'], /invalid mount path: 'x:rel' mount path must be absolute/],
    [['-v', 'bad$name:/y'], /"bad\$name" includes invalid characters for a local volume name/],
    [['-v', 'one:/same', '-v', 'two:/same'], /Duplicate mount point: \/same/],
    [['--mount', 'type=volume,dst=/a,readonly'], /must not set ReadOnly mode when using anonymous volumes/],
    [['--mount', 'type=tmpfs,src=x,dst=/a'], /invalid mount config for type "tmpfs": field Source must not be specified/],
    [['--tmpfs', '/t:bogus=1'], /Invalid tmpfs option/],
  ];
  for (const [args, re] of cases) {
    const r = await d.docker(['run', '--rm', ...args, 'busybox', 'true']);
    assert.equal(r.code, 125, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
  }
  // dockerd answers these with a 404 (which makes the docker CLI try a pull): checked on the API.
  const notFound: [Record<string, unknown>, string][] = [
    [{ VolumeDriver: 'nosuch', Binds: ['v:/v'] }, 'error looking up volume plugin nosuch: plugin "nosuch" not found'],
    [{ Binds: ['fine:/ok'], VolumesFrom: ['nosuch'] }, 'No such container: nosuch'],
    [{ Mounts: [{ Type: 'volume', Source: 'pv', Target: '/p', VolumeOptions: { DriverConfig: { Name: 'nosuch' } } }] }, 'error looking up volume plugin nosuch: plugin "nosuch" not found'],
  ];
  for (const [hostConfig, message] of notFound) {
    const r = await d.api('POST', '/containers/create', { Image: 'busybox', Cmd: ['true'], HostConfig: hostConfig });
    assert.equal(r.status, 404, JSON.stringify(r.body));
    assert.equal(r.body.message, message);
  }
  const overFile = await d.docker(['run', '--rm', '-v', '/bin/sh', 'busybox', 'true']);
  assert.equal(overFile.code, 125);
  assert.match(overFile.stderr, /cannot mount volume over existing file, file exists \/bin\/sh/);
  assert.equal((await docker(['ps', '-aq'])).trim(), '');
  assert.deepEqual(await volumeNames(), [], 'a refused create made no volume');
  // A create that fails after its volumes were made (no such image is checked first; a bad command is not) still leaves none.
  const late = await d.api('POST', '/containers/create', { Image: 'busybox', Cmd: ['true'], HostConfig: { Binds: ['late:/l'], Mounts: [{ Type: 'bind', Source: '/nonexistent-berth', Target: '/n' }] } });
  assert.equal(late.status, 400);
  assert.deepEqual(await volumeNames(), []);
  assert.deepEqual(leftovers(d), { mounts: [], cgroups: [], processes: [], files: [] });
});
