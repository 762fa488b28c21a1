/**
 * `volume create/ls/inspect/rm/prune` through the berth CLI, the docker CLI and the API: labels,
 * filters, the local driver's -o type=tmpfs and bind options, removal refused while in use, prune
 * rules, volume events, berth run's --mount/--volumes-from, and volumes across a daemon restart.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDaemon, loadTestImages, leftovers, printLogTail, type Daemon } from '../harness.js';

let d: Daemon;
let tmp: string;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-volcli-test-'));
});

after(async () => {
  await d?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function berth(args: string[], input?: string) {
  const r = await d.berth(args, { input });
  if (r.code !== 0) printLogTail(d, `berth ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `berth ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function docker(args: string[]) {
  const r = await d.docker(args);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const now = () => (Date.now() / 1000).toFixed(3);
const lines = (s: string) => s.split('\n').filter(Boolean);

async function reset(): Promise<void> {
  const ids = lines(await berth(['ps', '-aq']));
  if (ids.length) await berth(['rm', '-f', ...ids]);
  const vols = lines(await berth(['volume', 'ls', '-q']));
  if (vols.length) await berth(['volume', 'rm', ...vols]);
}

test('volume create, ls, inspect and rm, with labels and docker\'s shapes', { timeout: 60_000 }, async () => {
  await reset();
  assert.equal(await berth(['volume', 'create', '--label', 'team=a', '--label', 'tier', 'alpha']), 'alpha\n');
  assert.equal(await berth(['volume', 'create', 'beta']), 'beta\n');
  const anon = (await berth(['volume', 'create'])).trim();
  assert.match(anon, /^[0-9a-f]{64}$/);
  assert.equal(await berth(['volume', 'create', 'beta']), 'beta\n', 'create of an existing name returns it');
  assert.equal(await berth(['volume', 'ls']), `DRIVER    VOLUME NAME\n${[anon, 'alpha', 'beta'].sort().map((n) => `local     ${n}\n`).join('')}`, 'sorted by name');

  const [alpha] = JSON.parse(await berth(['volume', 'inspect', 'alpha']));
  assert.deepEqual(Object.keys(alpha).sort(), ['CreatedAt', 'Driver', 'Labels', 'Mountpoint', 'Name', 'Options', 'Scope']);
  assert.equal(alpha.Driver, 'local');
  assert.deepEqual(alpha.Labels, { team: 'a', tier: '' });
  assert.equal(alpha.Options, null);
  assert.equal(alpha.Scope, 'local');
  assert.equal(alpha.Mountpoint, path.join(d.dataRoot, 'volumes', 'alpha', '_data'));
  assert.ok(fs.statSync(alpha.Mountpoint).isDirectory());
  assert.match(alpha.CreatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  // The docker CLI reads the same thing.
  assert.deepEqual(JSON.parse(await docker(['volume', 'inspect', 'alpha'])), [alpha]);
  assert.equal(await docker(['volume', 'inspect', '-f', '{{.Name}} {{.Labels.team}}', 'alpha']), 'alpha a\n');

  // `inspect` finds volumes and networks too, in docker's order (container, image, network, volume).
  assert.deepEqual(JSON.parse(await berth(['inspect', 'alpha'])), [alpha]);
  assert.equal(await berth(['inspect', '--type', 'volume', '-f', '{{.Name}} {{.Driver}}', 'alpha']), 'alpha local\n');
  assert.equal(await berth(['inspect', '-f', '{{.Name}} {{.Driver}}', 'bridge']), 'bridge bridge\n');
  assert.equal(await docker(['inspect', '--type', 'volume', '-f', '{{.Mountpoint}}', 'alpha']), `${alpha.Mountpoint}\n`);
  const untyped = await d.berth(['inspect', '--type', 'network', 'alpha']);
  assert.equal(untyped.code, 1);
  assert.equal(untyped.stderr, 'Error response from daemon: network alpha not found\n');
  assert.equal((await d.berth(['network', 'inspect', 'nosuchnet'])).stderr, 'Error response from daemon: network nosuchnet not found\n');
  const nothing = await d.berth(['inspect', 'nosuch']);
  assert.equal(nothing.stderr, 'Error: No such object: nosuch\n');
  const missing = await d.berth(['volume', 'inspect', 'nosuch']);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, 'Error response from daemon: get nosuch: no such volume\n');
  const bad = await d.berth(['volume', 'create', 'bad/name']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /create bad\/name: "bad\/name" includes invalid characters for a local volume name/);
  const opt = await d.berth(['volume', 'create', '-o', 'bogus=1', 'x1']);
  assert.equal(opt.stderr, 'Error response from daemon: create x1: invalid option: "bogus"\n');
  const req = await d.docker(['volume', 'create', '-o', 'type=tmpfs', 'x2']);
  assert.match(req.stderr, /create x2: missing required option: "device"/);
  const driver = await d.api('POST', '/volumes/create', { Name: 'x3', Driver: 'nosuch' });
  assert.equal(driver.status, 404);

  assert.equal(await berth(['volume', 'rm', 'alpha', 'beta']), 'alpha\nbeta\n');
  const gone = await d.berth(['volume', 'rm', 'alpha']);
  assert.equal(gone.code, 1);
  assert.equal(gone.stderr, 'Error response from daemon: get alpha: no such volume\n');
  assert.equal((await d.berth(['volume', 'rm', '-f', 'alpha'])).code, 0, 'rm -f forgives a missing volume');
  assert.deepEqual(lines(await berth(['volume', 'ls', '-q'])), [anon]);
  assert.equal(fs.existsSync(alpha.Mountpoint), false, 'rm deletes the data');
});

test('volume ls filters: dangling, name, label, driver (CLI and API)', { timeout: 60_000 }, async () => {
  await reset();
  await berth(['volume', 'create', '--label', 'env=prod', 'used-prod']);
  await berth(['volume', 'create', '--label', 'env=dev', 'free-dev']);
  await berth(['create', '--name', 'holder', '-v', 'used-prod:/x', 'busybox']);
  const ls = async (...f: string[]) => lines(await berth(['volume', 'ls', '-q', ...f.flatMap((x) => ['--filter', x])]));
  assert.deepEqual(await ls('dangling=true'), ['free-dev']);
  // ps finds the containers of a volume, by name or by mount point, as docker's `volume` filter.
  const holder = (await berth(['inspect', '-f', '{{.Id}}', 'holder'])).trim();
  assert.deepEqual(lines(await docker(['ps', '-aq', '--no-trunc', '--filter', 'volume=used-prod'])), [holder]);
  assert.deepEqual(lines(await docker(['ps', '-aq', '--no-trunc', '--filter', 'volume=/x'])), [holder]);
  assert.deepEqual(lines(await docker(['ps', '-aq', '--filter', 'volume=free-dev'])), []);
  assert.deepEqual(await ls('dangling=false'), ['used-prod']);
  assert.deepEqual(await ls('name=prod'), ['used-prod']);
  assert.deepEqual(await ls('label=env=dev'), ['free-dev']);
  assert.deepEqual(await ls('label=env'), ['free-dev', 'used-prod']);
  assert.deepEqual(await ls('driver=local', 'name=free'), ['free-dev']);
  assert.deepEqual(lines(await docker(['volume', 'ls', '-q', '--filter', 'dangling=true'])), ['free-dev']);
  const api = await d.api('GET', `/volumes?filters=${encodeURIComponent(JSON.stringify({ label: ['env=prod'] }))}`);
  assert.equal(api.status, 200);
  assert.deepEqual(api.body.Volumes.map((v: { Name: string }) => v.Name), ['used-prod']);
  const badKey = await d.api('GET', `/volumes?filters=${encodeURIComponent(JSON.stringify({ colour: ['red'] }))}`);
  assert.equal(badKey.status, 400);
  const badBool = await d.api('GET', `/volumes?filters=${encodeURIComponent(JSON.stringify({ dangling: ['maybe'] }))}`);
  assert.equal(badBool.status, 400);
  assert.equal(await berth(['volume', 'ls', '--format', '{{.Name}}:{{.Labels}}', '--filter', 'name=free']), 'free-dev:env=dev\n');
});

test('removal is refused while a container refers to the volume, in any state; rm -v and --rm follow docker\'s rules', { timeout: 60_000 }, async () => {
  await reset();
  const id = (await berth(['run', '-d', '--name', 'user', '-v', 'busy:/b', '-v', '/anon', 'busybox', 'sleep', '30'])).trim();
  const refused = await d.berth(['volume', 'rm', 'busy']);
  assert.equal(refused.code, 1);
  assert.equal(refused.stderr, `Error response from daemon: remove busy: volume is in use - [${id}]\n`);
  const api = await d.api('DELETE', '/volumes/busy?force=1');
  assert.equal(api.status, 409, 'force does not remove a volume in use');
  assert.equal(api.body.message, `remove busy: volume is in use - [${id}]`);
  await berth(['stop', '-t', '0', 'user']);
  assert.equal((await d.berth(['volume', 'rm', 'busy'])).code, 1, 'a stopped container still refers to it');
  const anon = lines(await berth(['volume', 'ls', '-q'])).filter((n) => n !== 'busy');
  assert.equal(anon.length, 1);
  // Another container shares the anonymous volume: rm -v of the first leaves it to the second.
  await berth(['create', '--name', 'sharer', '--volumes-from', 'user', 'busybox']);
  await berth(['rm', '-v', 'user']);
  assert.deepEqual(lines(await berth(['volume', 'ls', '-q'])).sort(), [...anon, 'busy'].sort());
  await berth(['rm', '-v', 'sharer']);
  assert.deepEqual(lines(await berth(['volume', 'ls', '-q'])), ['busy'], 'the last rm -v removes the anonymous volume, never the named one');
  await berth(['run', '--rm', '-v', 'busy:/b', '-v', '/anon2', 'busybox', 'true']);
  assert.deepEqual(lines(await berth(['volume', 'ls', '-q'])), ['busy'], '--rm removes its anonymous volume');
  await berth(['volume', 'rm', 'busy']);
});

test('volume prune removes unused anonymous volumes; -a and --filter label widen or narrow it', { timeout: 60_000 }, async () => {
  await reset();
  await berth(['volume', 'create', 'named-free']);
  await berth(['volume', 'create', '--label', 'keep=yes', 'named-kept']);
  await berth(['create', '--name', 'anon-user', '-v', '/in-use', 'busybox']);
  const anonFree = (await d.api('POST', '/volumes/create', { Labels: { 'com.docker.volume.anonymous': '' } })).body.Name as string;
  fs.writeFileSync(path.join(d.dataRoot, 'volumes', anonFree, '_data', 'blob'), Buffer.alloc(3000));
  const pruned = await berth(['volume', 'prune', '-f']);
  assert.equal(pruned, `Deleted Volumes:\n${anonFree}\n\nTotal reclaimed space: 3kB\n`);
  assert.equal(lines(await berth(['volume', 'ls', '-q'])).length, 3, 'named and in-use volumes stay');
  assert.equal(await berth(['volume', 'prune', '-f', '-a', '--filter', 'label!=keep']), 'Deleted Volumes:\nnamed-free\n\nTotal reclaimed space: 0B\n');
  const declined = await berth(['volume', 'prune', '-a'], 'n\n');
  assert.match(declined, /WARNING! This will remove all local volumes not used by at least one container\./);
  assert.equal(lines(await berth(['volume', 'ls', '-q'])).length, 2);
  const api = await d.api('POST', `/volumes/prune?filters=${encodeURIComponent(JSON.stringify({ all: ['true'] }))}`);
  assert.deepEqual(api.body, { VolumesDeleted: ['named-kept'], SpaceReclaimed: 0 });
});

test('the local driver\'s -o: a tmpfs volume and a bind of a host directory, mounted while used', { timeout: 60_000 }, async () => {
  await reset();
  await berth(['volume', 'create', '-o', 'type=tmpfs', '-o', 'device=tmpfs', '-o', 'o=size=2m,uid=1000', 'ramvol']);
  const [v] = JSON.parse(await berth(['volume', 'inspect', 'ramvol']));
  assert.deepEqual(v.Options, { type: 'tmpfs', device: 'tmpfs', o: 'size=2m,uid=1000' });
  const out = await berth(['run', '--rm', '-v', 'ramvol:/r', 'busybox', 'sh', '-c', 'df -k /r | tail -1 | awk \'{print $2}\'; stat -c %u /r; grep " /r " /proc/mounts | cut -d" " -f3']);
  assert.equal(out, '2048\n1000\ntmpfs\n');
  assert.equal(fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(v.Mountpoint), false, 'unmounted once no container uses it');

  const hostDir = fs.mkdtempSync(path.join(tmp, 'bindvol-'));
  fs.writeFileSync(path.join(hostDir, 'from-host'), 'host\n');
  await berth(['volume', 'create', '-o', 'type=none', '-o', `device=${hostDir}`, '-o', 'o=bind', 'hostvol']);
  assert.equal(await berth(['run', '--rm', '-v', 'hostvol:/h', 'busybox', 'sh', '-c', 'cat /h/from-host; echo back > /h/from-box']), 'host\n');
  assert.equal(fs.readFileSync(path.join(hostDir, 'from-box'), 'utf8'), 'back\n');
  const mp = JSON.parse(await berth(['volume', 'inspect', 'hostvol']))[0].Mountpoint;
  assert.equal(fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(mp), false);
  await berth(['volume', 'rm', 'hostvol']);
  assert.ok(fs.existsSync(path.join(hostDir, 'from-host')), 'removing a bind volume leaves the host directory alone');

  await berth(['volume', 'create', '-o', 'type=none', '-o', `device=${path.join(tmp, 'absent')}`, '-o', 'o=bind', 'brokenvol']);
  const r = await d.berth(['run', '--rm', '-v', 'brokenvol:/b', 'busybox', 'true']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /error while mounting volume .*: failed to mount local volume: .*ENOENT/);
  assert.deepEqual(leftovers(d), { mounts: [], cgroups: [], processes: [], files: [] });
});

test('volume events: create, mount, unmount, destroy, prune', { timeout: 60_000 }, async () => {
  await reset();
  const t0 = now();
  await berth(['volume', 'create', 'evvol']);
  const id = (await berth(['run', '-d', '-v', 'evvol:/e:ro', 'busybox', 'true'])).trim();
  await berth(['wait', id]);
  await berth(['rm', id]);
  await berth(['volume', 'rm', 'evvol']);
  await berth(['volume', 'prune', '-f']);
  const t1 = now();
  const r = await docker(['events', '--since', t0, '--until', t1, '--filter', 'type=volume', '--format', '{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.driver}}']);
  assert.deepEqual(lines(r).map((l) => l.trim()), ['create evvol local', 'mount evvol local', 'unmount evvol local', 'destroy evvol local', 'prune  <no value>']);
  const mount = await docker(['events', '--since', t0, '--until', t1, '--filter', 'volume=evvol', '--filter', 'event=mount', '--format', '{{json .Actor.Attributes}}']);
  assert.deepEqual(JSON.parse(mount), { container: id, destination: '/e', driver: 'local', propagation: '', 'read/write': 'false' });
});

test('berth run takes --mount, --volumes-from and --volume-driver like docker', { timeout: 60_000 }, async () => {
  await reset();
  await berth(['run', '--name', 'src', '--mount', 'type=volume,source=mvol,target=/m,volume-label=made=by-mount', 'busybox', 'sh', '-c', 'echo m > /m/f']);
  assert.deepEqual(JSON.parse(await berth(['volume', 'inspect', 'mvol']))[0].Labels, { made: 'by-mount' });
  assert.equal(await berth(['run', '--rm', '--volumes-from', 'src:ro', '--volume-driver', 'local', 'busybox', 'cat', '/m/f']), 'm\n');
  assert.equal(await berth(['run', '--rm', '--mount', 'type=tmpfs,target=/t,tmpfs-size=1m', 'busybox', 'sh', '-c', 'df -k /t | tail -1 | awk \'{print $2}\'']), '1024\n');
  const rel = await d.berth(['run', '--rm', '--mount', 'type=bind,source=/x', 'busybox', 'true']);
  assert.equal(rel.code, 125);
  assert.match(rel.stderr, /invalid argument "type=bind,source=\/x" for "--mount" flag: target is required/);
  const mix = await d.berth(['run', '--rm', '--mount', 'type=bind,src=/tmp,dst=/x,volume-nocopy', 'busybox', 'true']);
  assert.match(mix.stderr, /cannot mix 'volume-\*' options with mount type 'bind'/);
  const [c] = JSON.parse(await berth(['inspect', 'src']));
  assert.deepEqual(c.HostConfig.Mounts, [{ Type: 'volume', Source: 'mvol', Target: '/m', VolumeOptions: { Labels: { made: 'by-mount' } } }]);
  assert.deepEqual(c.Mounts, [{ Type: 'volume', Name: 'mvol', Source: path.join(d.dataRoot, 'volumes', 'mvol', '_data'), Destination: '/m', Driver: 'local', Mode: 'z', RW: true, Propagation: '' }]);
});

test('volumes and their data survive a daemon restart; a directory a killed create left is removed', { timeout: 90_000 }, async () => {
  await reset();
  await berth(['run', '--rm', '-v', 'durable:/d', 'busybox', 'sh', '-c', 'echo still > /d/f']);
  await berth(['create', '--name', 'keeper', '-v', 'held:/h', 'busybox']);
  // What a create killed between mkdir and the record leaves: a directory no record owns.
  fs.mkdirSync(path.join(d.dataRoot, 'volumes', 'half-made', '_data'), { recursive: true });
  await d.kill9();
  await d.restart();
  assert.equal(fs.existsSync(path.join(d.dataRoot, 'volumes', 'half-made')), false);
  assert.deepEqual(lines(await berth(['volume', 'ls', '-q'])), ['durable', 'held']);
  assert.equal(await berth(['run', '--rm', '-v', 'durable:/d', 'busybox', 'cat', '/d/f']), 'still\n');
  assert.equal((await d.berth(['volume', 'rm', 'held'])).code, 1, 'still in use by keeper after the restart');
});
