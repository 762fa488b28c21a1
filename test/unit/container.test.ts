/** container/'s pieces that need no runtime: the lock, the start seam's rollback, the HostConfig edge. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import BetterSqlite3 from 'better-sqlite3';
import { KeyedLock } from '../../src/container/lock.js';
import { ContainerStore } from '../../src/container/store.js';
import { setupAll, teardownAll, type Provider, type StartContext } from '../../src/container/providers/index.js';
import { normalizeHostConfig, checkConfig } from '../../src/container/hostconfig.js';
import { InvalidParameter } from '../../src/errors.js';
import type { Container } from '../../src/container/types.js';

const tick = () => new Promise((r) => setImmediate(r));

test('the lock runs one verb per container at a time, in arrival order; other containers do not wait', { timeout: 10_000 }, async () => {
  const lock = new KeyedLock();
  const seen: string[] = [];
  const slow = (key: string, name: string) => lock.run(key, async () => {
    seen.push(`${name}+`);
    await tick();
    await tick();
    seen.push(`${name}-`);
  });
  await Promise.all([slow('a', 'a1'), slow('a', 'a2'), slow('b', 'b1'), slow('a', 'a3')]);
  const a = seen.filter((s) => s.startsWith('a'));
  assert.deepEqual(a, ['a1+', 'a1-', 'a2+', 'a2-', 'a3+', 'a3-']);
  assert.ok(seen.indexOf('b1+') < seen.indexOf('a1-'), 'b waited for a');
  // A failing holder releases the lock.
  await assert.rejects(lock.run('a', async () => { throw new Error('boom'); }), /boom/);
  assert.equal(await lock.run('a', async () => 7), 7);
});

function provider(name: string, log: string[], fail = false): Provider {
  return {
    name,
    async setup() {
      if (fail) throw new Error(`${name} failed`);
      log.push(`setup ${name}`);
      return { mounts: [{ destination: `/${name}`, source: name, type: 'bind', options: [] }], env: [`${name.toUpperCase()}=1`] };
    },
    async teardown() {
      log.push(`teardown ${name}`);
    },
  };
}

const ctx = { container: { id: 'x' } as Container, dir: '/nonexistent', rootfs: '/nonexistent/rootfs' } as StartContext;

test('the start seam sets up in order, merges contributions, and rolls back in reverse when a step fails', { timeout: 10_000 }, async () => {
  const log: string[] = [];
  const out = await setupAll([provider('a', log), provider('b', log)], ctx);
  assert.deepEqual(log, ['setup a', 'setup b']);
  assert.deepEqual(out.mounts.map((m) => m.destination), ['/a', '/b']);
  assert.deepEqual(out.env, ['A=1', 'B=1']);
  assert.deepEqual(out.network, { mode: 'none' });

  log.length = 0;
  await assert.rejects(setupAll([provider('a', log), provider('b', log), provider('c', log, true), provider('d', log)], ctx), /c failed/);
  assert.deepEqual(log, ['setup a', 'setup b', 'teardown b', 'teardown a']);

  log.length = 0;
  const failing: Provider = { name: 'f', async setup() {}, async teardown() { throw new Error('teardown fails'); } };
  await teardownAll([provider('a', log), failing, provider('b', log)], ctx);
  assert.deepEqual(log, ['teardown b', 'teardown a'], 'one failing teardown does not stop the others');
});

test('HostConfig: implemented fields are kept typed, others refused by name, defaults accepted', () => {
  const h = normalizeHostConfig({ Memory: 64 << 20, ShmSize: 1 << 20, MemorySwappiness: -1, Dns: [], Tmpfs: {}, MaskedPaths: null, Isolation: '' });
  assert.equal(h.Memory, 64 << 20);
  assert.equal(h.ShmSize, 1 << 20);
  assert.equal(h.NetworkMode, 'bridge');
  assert.deepEqual(h.Dns, []);
  const refused = (raw: Record<string, unknown>, re: RegExp) => assert.throws(() => normalizeHostConfig(raw), (e) => e instanceof InvalidParameter && re.test(e.message));
  refused({ Sysctls: { 'net.ipv4.ip_forward': '1' } }, /^--sysctl is not supported yet$/);
  assert.deepEqual(normalizeHostConfig({ MaskedPaths: [] }).MaskedPaths, []); // systempaths=unconfined
  refused({ Ulimits: [{ Name: 'nofiles', Soft: 1, Hard: 1 }] }, /^invalid ulimit type: nofiles$/);
  refused({ SecurityOpt: ['seccomp={'] }, /^Decoding seccomp profile failed/);
  refused({ MemorySwappiness: 0 }, /--memory-swappiness/);
  refused({ LogConfig: { Type: 'json-file', Config: { 'max-size': '1m' } } }, /--log-opt/);
  refused({ NewFieldFromTheFuture: true }, /HostConfig\.NewFieldFromTheFuture is not supported yet/);
  refused({ NanoCpus: 1e9, CpuPeriod: 1000 }, /Conflicting options/);
  refused({ AutoRemove: true, RestartPolicy: { Name: 'always' } }, /AutoRemove/);
  // Which networks exist is the network service's to check at create; here only the shape.
  assert.equal(normalizeHostConfig({ NetworkMode: 'mynet' }).NetworkMode, 'mynet');
  assert.throws(() => normalizeHostConfig({ NetworkMode: 'container:' }), InvalidParameter);
  assert.deepEqual(normalizeHostConfig({ PortBindings: { '80/tcp': [{ HostIp: '', HostPort: '8080' }] } }).PortBindings, { '80/tcp': [{ HostIp: '', HostPort: '8080' }] });
  checkConfig({ Healthcheck: { Test: ['NONE'] }, Volumes: {}, NetworkingConfig: { EndpointsConfig: { default: { IPAMConfig: null, Aliases: null, IPAddress: '' } } } });
  checkConfig({ Healthcheck: { Test: ['CMD', 'true'] } });
  checkConfig({ NetworkingConfig: { EndpointsConfig: { default: { Aliases: ['web'] } } } });
});

test('container records: each driver lists its own; a record without a driver takes the one holding its snapshot', () => {
  const db = new BetterSqlite3(':memory:');
  const rec = (id: string, name: string, driver?: string): Container => ({ id, name, created: id, driver } as unknown as Container);
  const old = new ContainerStore(db);
  old.insert(rec('aaaa', 'from-before'));
  old.insert(rec('bbbb', 'also-before'));
  const holds: Record<string, string[]> = { aaaa: ['vfs'], bbbb: [] };
  const vfs = new ContainerStore(db, 'vfs', (id) => holds[id] ?? []);
  vfs.insert(rec('cccc', 'on-vfs'));
  assert.deepEqual(vfs.list().map((c) => c.id).sort(), ['aaaa', 'bbbb', 'cccc'], 'the unowned one goes to the current driver');
  const overlay = new ContainerStore(db, 'overlay2', () => ['overlay2']);
  assert.deepEqual(overlay.list(), []);
  assert.equal(overlay.find('on-vfs'), undefined);
  assert.equal(overlay.findAnyById('cccc')?.driver, 'vfs');
  assert.throws(() => overlay.checkName('on-vfs'), /"\/on-vfs" is already in use by container "cccc" of storage driver vfs, hidden while berthd runs overlay2/);
  overlay.insert(rec('dddd', 'on-overlay'));
  assert.deepEqual(new ContainerStore(db, 'vfs').list().map((c) => c.id).sort(), ['aaaa', 'bbbb', 'cccc']);
  assert.deepEqual(new ContainerStore(db, 'overlay2').list().map((c) => c.id), ['dddd']);
  db.close();
});
