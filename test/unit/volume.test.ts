/** volume/: mount spec parsing with docker's messages, tmpfs option merging, and the volume store's rules. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { killMidway } from '../kill9.js';
import { Conflict, InvalidParameter, NotFound } from '../../src/errors.js';
import { EventBus } from '../../src/events/index.js';
import { VolumeService, ANONYMOUS_LABEL, copyIntoEmpty } from '../../src/volume/index.js';
import { parseMountFlag } from '../../src/cli/commands/volume.js';
import { VolumeMounts } from '../../src/container/providers/volumes.js';
import type { Container } from '../../src/container/types.js';
import { checkVolumeHostConfig, parseBind, parseMountSpec, parseVolumesFrom, tmpfsOptions } from '../../src/volume/spec.js';

test('-v specs: binds, named volumes, modes, and docker\'s errors', { timeout: 10_000 }, () => {
  assert.deepEqual(parseBind('/h:/c:ro,rslave'), { Type: 'bind', Source: '/h', Destination: '/c', Mode: 'ro,rslave', RW: false, Propagation: 'rslave', CreateSource: true });
  const v = parseBind('data:/d/');
  assert.equal(v.Type, 'volume');
  assert.equal(v.Name, 'data');
  assert.equal(v.Destination, '/d');
  assert.equal(v.Mode, 'z');
  assert.equal(v.CopyData, true);
  assert.equal(parseBind('data:/d:nocopy').CopyData, false);
  const bad = (raw: string, message: string) => assert.throws(() => parseBind(raw), (e) => e instanceof InvalidParameter && e.message === message);
  bad('a:b:c:d', "invalid volume specification: 'a:b:c:d'");
  bad('/x:rw', "invalid volume specification: '/x:rw'");
  bad('v:/d:ro,rw', 'invalid mode: ro,rw');
  bad('v:/', "invalid volume specification: 'v:/': invalid mount config for type \"volume\": invalid specification: destination can't be '/'");
  bad('/h:rel', "invalid volume specification: '/h:rel': invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute");
});

test('--mount specs: each type\'s checks, tmpfs size with docker\'s unit', { timeout: 10_000 }, () => {
  const t = parseMountSpec({ Type: 'tmpfs', Target: '/t', TmpfsOptions: { SizeBytes: 3 << 20, Mode: 0o1777 } });
  assert.equal(t.TmpfsData, 'mode=1777,size=3m');
  assert.equal(parseMountSpec({ Type: 'tmpfs', Target: '/t', TmpfsOptions: { SizeBytes: 1000 } }).TmpfsData, 'size=1000');
  const bad = (m: Parameters<typeof parseMountSpec>[0], re: RegExp) => assert.throws(() => parseMountSpec(m), (e) => e instanceof InvalidParameter && re.test(e.message));
  bad({ Type: 'bind', Target: '/t' }, /^invalid mount config for type "bind": field Source must not be empty$/);
  bad({ Type: 'bind', Source: '/nonexistent-berth-unit', Target: '/t' }, /bind source path does not exist: \/nonexistent-berth-unit$/);
  bad({ Type: 'bind', Source: '/tmp', Target: '/t', BindOptions: { Propagation: 'sideways' } }, /invalid propagation mode: sideways/);
  bad({ Type: 'volume', Target: '/t', BindOptions: {} }, /field BindOptions must not be specified/);
  bad({ Type: 'volume', Target: '/t', VolumeOptions: { Subpath: 'x' } }, /must not set Subpath when using anonymous volumes/);
  bad({ Type: 'volume', Source: 'v', Target: '/t', VolumeOptions: { Subpath: '../x' } }, /subpath must be a relative path within the volume/);
  bad({ Type: 'npipe', Target: '/t' }, /^invalid mount config for type "npipe": mount type unknown$/);
  bad({ Type: 'volume' }, /field Target must not be empty/);
  assert.equal(parseMountSpec({ Type: 'bind', Source: '/nonexistent-berth-unit', Target: '/t', BindOptions: { CreateMountpoint: true } }).CreateSource, true);
});

test('tmpfs options: docker\'s defaults, later options override earlier ones', { timeout: 10_000 }, () => {
  assert.deepEqual(tmpfsOptions(''), ['noexec', 'nosuid', 'nodev', 'rprivate']);
  assert.deepEqual(tmpfsOptions('exec,size=1m,size=2m,rshared'), ['nosuid', 'nodev', 'exec', 'size=2m', 'rshared']);
  assert.throws(() => checkVolumeHostConfig({ Tmpfs: { '/t': 'bogus' } }), /Invalid tmpfs option \["bogus"\]/);
  assert.throws(() => checkVolumeHostConfig({ Tmpfs: { rel: '' } }), /mount path must be absolute/);
  assert.throws(() => checkVolumeHostConfig({ Binds: ['a:/x'], Tmpfs: { '/x': '' } }), /Duplicate mount point: \/x/);
  assert.deepEqual(parseVolumesFrom('c:ro'), { container: 'c', rw: false });
  assert.throws(() => parseVolumesFrom('c:rshared'), /invalid mode: rshared/);
});

test('VolumeService: records survive a reopen, removal refused while referenced, recover removes orphans', { timeout: 10_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-unit-vol-'));
  try {
    const dbFile = path.join(dir, 'db');
    const root = path.join(dir, 'volumes');
    const events = new EventBus();
    let db = new Database(dbFile);
    let vs = new VolumeService(db, root, events);
    const users = new Map<string, string[]>();
    vs.setUsers((n) => (users.get(n) ?? []).map((id) => ({ id, running: false })));
    assert.equal(vs.create('v1', { labels: { a: 'b' } }).created, true);
    assert.equal(vs.create('v1').created, false);
    const anon = vs.create(undefined, { labels: { [ANONYMOUS_LABEL]: '' } }).volume.Name;
    assert.equal(vs.isAnonymous(anon), true);
    fs.writeFileSync(path.join(vs.mountpointOf('v1'), 'f'), 'x');
    users.set('v1', ['c1']);
    await assert.rejects(vs.remove('v1'), (e) => e instanceof Conflict && e.message === 'remove v1: volume is in use - [c1]');
    vs.reserve(anon, 'creating');
    await assert.rejects(vs.remove(anon), Conflict);
    vs.unreserve(anon, 'creating');
    await assert.rejects(vs.remove('nosuch'), (e) => e instanceof NotFound && e.message === 'get nosuch: no such volume');
    assert.throws(() => vs.create('v1', { driver: 'other' }), NotFound);
    assert.throws(() => vs.create('x2', { driverOpts: { type: 'tmpfs' } }), /create x2: missing required option: "device"/);
    assert.equal(fs.existsSync(path.join(root, 'x2')), false, 'a refused create leaves no directory');
    db.close();

    fs.mkdirSync(path.join(root, 'orphan', '_data'), { recursive: true });
    db = new Database(dbFile);
    vs = new VolumeService(db, root, events);
    await vs.recover();
    assert.deepEqual(vs.list().map((v) => v.Name).sort(), [anon, 'v1'].sort());
    assert.deepEqual(vs.get('v1').Labels, { a: 'b' });
    assert.equal(fs.readFileSync(path.join(vs.mountpointOf('v1'), 'f'), 'utf8'), 'x');
    assert.equal(fs.existsSync(path.join(root, 'orphan')), false);
    await vs.remove('v1');
    assert.deepEqual(fs.readdirSync(root), [anon]);
    const pruned = await vs.prune(() => true, false);
    assert.deepEqual(pruned.VolumesDeleted, [anon]);
    db.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('VolumeMounts.mountFor: the deepest mount that holds a container path, and the host directory behind it', { timeout: 10_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-unit-mfor-'));
  const db = new Database(':memory:');
  try {
    const vs = new VolumeService(db, path.join(dir, 'volumes'), new EventBus());
    const c = {
      id: 'c1',
      hostConfig: { Tmpfs: { '/run/t': '' } },
      mounts: [
        { Type: 'volume', Name: 'data', Source: vs.mountpointOf('data'), Destination: '/data', Driver: 'local', Mode: 'z', RW: true, Propagation: '' },
        { Type: 'volume', Name: 'data', Source: vs.mountpointOf('data'), Destination: '/sub', Driver: 'local', Mode: 'z', RW: true, Propagation: '', Subpath: 'a/b' },
        { Type: 'bind', Source: '/srv/host', Destination: '/data/inner', Mode: 'ro', RW: false, Propagation: 'rprivate' },
      ],
    } as unknown as Container;
    const vm = new VolumeMounts(vs, { find: () => undefined }, new EventBus());
    const at = (p: string) => {
      const r = vm.mountFor(c, p);
      return r && { hostRoot: r.hostRoot, rel: r.rel, readOnly: r.readOnly, dest: r.mount.Destination };
    };
    assert.deepEqual(at('/data/x/y'), { hostRoot: vs.mountpointOf('data'), rel: 'x/y', readOnly: false, dest: '/data' });
    assert.deepEqual(at('/data'), { hostRoot: vs.mountpointOf('data'), rel: '', readOnly: false, dest: '/data' });
    assert.deepEqual(at('/data/inner/f'), { hostRoot: '/srv/host', rel: 'f', readOnly: true, dest: '/data/inner' });
    assert.deepEqual(at('sub/../sub/f'), { hostRoot: path.join(vs.mountpointOf('data'), 'a/b'), rel: 'f', readOnly: false, dest: '/sub' });
    assert.deepEqual(at('/run/t/x'), { hostRoot: null, rel: 'x', readOnly: false, dest: '/run/t' });
    assert.equal(at('/database'), null, 'a sibling with a common prefix is not under /data');
    assert.equal(at('/etc/passwd'), null);
  } finally {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('kill -9 in the middle of volume creates and removes leaves every record with its directory, and recover() the rest', { timeout: 30_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-unit-vol9-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const dbFile = path.join(dir, 'db');
  const root = path.join(dir, 'volumes');
  const child = path.join(dir, 'child.mts');
  fs.writeFileSync(child, `
    import fs from 'node:fs';
    import path from 'node:path';
    import Database from ${JSON.stringify(createRequire(import.meta.url).resolve('better-sqlite3'))};
    import { EventBus } from ${JSON.stringify(path.join(repo, 'src/events/index.ts'))};
    import { VolumeService } from ${JSON.stringify(path.join(repo, 'src/volume/index.ts'))};
    const db = new Database(${JSON.stringify(dbFile)});
    db.pragma('journal_mode = WAL');
    const vs = new VolumeService(db, ${JSON.stringify(root)}, new EventBus());
    process.stdout.write('ready\\n');
    for (let i = 0; ; i++) {
      const { volume } = vs.create('v' + (i % 13));
      for (let j = 0; j < 20; j++) fs.writeFileSync(path.join(volume.Mountpoint, 'f' + j), 'x'.repeat(4096));
      if (i % 3) await vs.remove('v' + ((i + 5) % 13)).catch((e) => { if (e.name !== 'NotFound') throw e; });
    }
  `);
  await killMidway(t, child, repo, { min: 400, spread: 400 });
  const db = new Database(dbFile);
  try {
    const vs = new VolumeService(db, root, new EventBus());
    await vs.recover();
    const names = vs.list().map((v) => v.Name).sort();
    assert.ok(names.length > 0, 'the child got some work done');
    for (const n of names) assert.ok(fs.statSync(vs.mountpointOf(n)).isDirectory(), `${n} has its directory`);
    assert.deepEqual(fs.readdirSync(root).sort(), names, 'no directory without a record is left');
  } finally {
    db.close();
  }
});

test('--mount CSV as the docker CLI reads it', { timeout: 10_000 }, () => {
  assert.deepEqual(parseMountFlag('type=bind,src=/a,dst=/b,readonly,bind-propagation=rslave'), { Type: 'bind', Source: '/a', Target: '/b', ReadOnly: true, BindOptions: { Propagation: 'rslave' } });
  assert.deepEqual(parseMountFlag('source=v,target=/d,volume-nocopy,volume-label=a=b,volume-opt=type=tmpfs,volume-subpath=x'), {
    Type: 'volume', Source: 'v', Target: '/d', VolumeOptions: { NoCopy: true, Labels: { a: 'b' }, DriverConfig: { Options: { type: 'tmpfs' } }, Subpath: 'x' },
  });
  assert.deepEqual(parseMountFlag('type=tmpfs,destination=/t,tmpfs-size=64m,tmpfs-mode=1770,ro=false'), { Type: 'tmpfs', Target: '/t', ReadOnly: false, TmpfsOptions: { SizeBytes: 64 << 20, Mode: 0o1770 } });
  assert.throws(() => parseMountFlag('type=bind,src=/a'), /^Error: target is required$/);
  assert.throws(() => parseMountFlag('dst=/a,colour=red'), /unexpected key 'colour' in 'colour=red'/);
  assert.throws(() => parseMountFlag('dst=/a,src'), /invalid field 'src' must be a key=value pair/);
  assert.throws(() => parseMountFlag('type=tmpfs,dst=/a,volume-nocopy'), /cannot mix 'volume-\*' options with mount type 'tmpfs'/);
  assert.throws(() => parseMountFlag('type=tmpfs,dst=/a,tmpfs-mode=999'), /invalid value for tmpfs-mode: 999/);
});

test('copyIntoEmpty keeps modes, owners, times, symlinks, hard links and fifos, many at once', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-unit-copy-'));
  try {
    const src = path.join(dir, 'src');
    const dst = path.join(dir, 'dst');
    fs.mkdirSync(path.join(src, 'deep/er'), { recursive: true });
    fs.mkdirSync(dst);
    for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(src, 'deep', `f${i}`), `file ${i}\n`);
    fs.writeFileSync(path.join(src, 'deep/er/secret'), 'secret\n', { mode: 0o600 });
    fs.chownSync(path.join(src, 'deep/er/secret'), 1234, 5678);
    fs.utimesSync(path.join(src, 'deep/er/secret'), new Date(1_500_000_000_000), new Date(1_500_000_000_000));
    for (let i = 0; i < 20; i++) fs.linkSync(path.join(src, 'deep/f0'), path.join(src, `hard${i}`));
    fs.symlinkSync('../deep/f1', path.join(src, 'deep/er/link'));
    execFileSync('mkfifo', ['-m', '0640', path.join(src, 'pipe')]);
    fs.chmodSync(src, 0o710);
    await copyIntoEmpty(src, dst);
    const sec = fs.statSync(path.join(dst, 'deep/er/secret'));
    assert.deepEqual([sec.mode & 0o7777, sec.uid, sec.gid, sec.mtimeMs], [0o600, 1234, 5678, 1_500_000_000_000]);
    assert.equal(fs.readFileSync(path.join(dst, 'deep/f299'), 'utf8'), 'file 299\n');
    assert.equal(fs.readlinkSync(path.join(dst, 'deep/er/link')), '../deep/f1');
    const ino = fs.statSync(path.join(dst, 'deep/f0')).ino;
    for (let i = 0; i < 20; i++) assert.equal(fs.statSync(path.join(dst, `hard${i}`)).ino, ino, 'hard links stay one inode');
    assert.equal(fs.statSync(path.join(dst, 'deep/f0')).nlink, 21);
    assert.ok(fs.lstatSync(path.join(dst, 'pipe')).isFIFO());
    assert.equal(fs.statSync(dst).mode & 0o7777, 0o710, 'the volume root takes the image directory\'s mode');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
