/** container/'s pieces that need no runtime: the lock, the start seam's rollback, the HostConfig edge. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyedLock } from '../../src/container/lock.js';
import { setupAll, teardownAll, type Provider, type StartContext } from '../../src/container/providers/index.js';
import { normalizeHostConfig, checkConfig } from '../../src/container/hostconfig.js';
import { InvalidParameter, NotFound } from '../../src/errors.js';
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
  assert.equal('Dns' in h, false);
  const refused = (raw: Record<string, unknown>, re: RegExp) => assert.throws(() => normalizeHostConfig(raw), (e) => e instanceof InvalidParameter && re.test(e.message));
  refused({ Tmpfs: { '/t': '' } }, /^--tmpfs is not supported yet$/);
  refused({ MaskedPaths: [] }, /systempaths=unconfined/);
  refused({ MemorySwappiness: 0 }, /--memory-swappiness/);
  refused({ LogConfig: { Type: 'json-file', Config: { 'max-size': '1m' } } }, /--log-opt/);
  refused({ NewFieldFromTheFuture: true }, /HostConfig\.NewFieldFromTheFuture is not supported yet/);
  refused({ NanoCpus: 1e9, CpuPeriod: 1000 }, /Conflicting options/);
  refused({ AutoRemove: true, RestartPolicy: { Name: 'always' } }, /AutoRemove/);
  assert.throws(() => normalizeHostConfig({ NetworkMode: 'nosuch' }), (e) => e instanceof NotFound && /network nosuch not found/.test(e.message));
  checkConfig({ Healthcheck: { Test: ['NONE'] }, Volumes: {}, NetworkingConfig: { EndpointsConfig: { default: { IPAMConfig: null, Aliases: null, IPAddress: '' } } } });
  checkConfig({ Healthcheck: { Test: ['CMD', 'true'] } });
  assert.throws(() => checkConfig({ NetworkingConfig: { EndpointsConfig: { default: { Aliases: ['web'] } } } }), /network endpoint settings/);
});
