/**
 * Bad input gets Docker's error shape and loses nothing; many short runs leave
 * nothing behind on the host.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDaemon, loadTestImages, leftovers, run, paths, type Daemon } from '../harness.js';

let d: Daemon;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
});

after(async () => {
  await d?.stop();
});

function assertClean() {
  const left = leftovers(d);
  assert.deepEqual(left, { mounts: [], cgroups: [], processes: [], files: [] });
}

test('API errors have Docker\'s status codes and {"message"} bodies', async () => {
  const missing = await d.api('POST', '/v1.50/containers/create', { Image: 'nosuch' });
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.body, { message: 'No such image: nosuch:latest' });

  const badRef = await d.api('POST', '/v1.50/containers/create', { Image: 'Bad//Ref' });
  assert.equal(badRef.status, 400);
  assert.match(badRef.body.message, /invalid reference format/);

  const badJson = await d.api('POST', '/v1.50/containers/create', '{"Image": "busybox"', { headers: { 'Content-Type': 'application/json' } });
  assert.equal(badJson.status, 400);
  assert.match(badJson.body.message, /invalid JSON/);

  const noContainer = await d.api('GET', '/v1.50/containers/nope/json');
  assert.equal(noContainer.status, 404);
  assert.deepEqual(noContainer.body, { message: 'No such container: nope' });

  const tooNew = await d.api('GET', '/v1.99/version');
  assert.equal(tooNew.status, 400);
  assert.match(tooNew.body.message, /client version 1\.99 is too new\. Maximum supported API version is 1\.50/);

  const old = await d.api('GET', '/v1.24/version');
  assert.equal(old.status, 200);
  assert.equal(old.headers['api-version'], '1.50');
  const bare = await d.api('GET', '/_ping');
  assert.equal(bare.body, 'OK');

  const net = await d.docker(['run', '--rm', '--network', 'nosuch', 'busybox', 'true']);
  assert.equal(net.code, 125);
  assert.match(net.stderr, /network nosuch not found/);

  const running = await d.api('POST', '/containers/create', { Image: 'busybox', Cmd: ['sleep', '30'] });
  assert.equal(running.status, 201);
  assert.equal((await d.api('POST', `/containers/${running.body.Id}/start`)).status, 204);
  const rm = await d.api('DELETE', `/containers/${running.body.Id}`);
  assert.equal(rm.status, 409);
  assert.match(rm.body.message, /container is running: stop the container before removing or force remove/);
  const img = await d.api('DELETE', '/images/busybox');
  assert.equal(img.status, 409);
  assert.match(img.body.message, /image is being used by running container|must force/);
  assert.equal((await d.api('DELETE', `/containers/${running.body.Id}?force=1`)).status, 204);
  assertClean();
});

test('a failed start leaves no mount, cgroup, monitor or state behind', async () => {
  const r = await d.berth(['run', '--name', 'failed', 'busybox', '/no/such/binary']);
  assert.equal(r.code, 127);
  assert.match(r.stderr, /no such file or directory/);
  const state = await d.berth(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'failed']);
  assert.equal(state.stdout, 'created 127\n');
  assertClean();
  assert.equal((await d.berth(['rm', 'failed'])).code, 0);
});

test('200 run --rm cycles leave nothing behind', async () => {
  for (let i = 0; i < 200; i++) {
    const r = await d.berth(['run', '--rm', 'busybox', 'true']);
    assert.equal(r.code, 0, `cycle ${i}: ${r.stderr}`);
  }
  assert.equal((await d.berth(['ps', '-aq'])).stdout, '');
  assertClean();
  const containersDir = path.join(d.dataRoot, 'containers');
  assert.deepEqual(fs.readdirSync(containersDir), []);
});

test('berthd refuses an unknown daemon.json key and a bad value, like dockerd', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cfg-'));
  try {
    const file = path.join(dir, 'daemon.json');
    fs.writeFileSync(file, JSON.stringify({ 'data-rooot': '/tmp/x' }));
    const r = await run(paths.berthd, ['--config-file', file, '--exec-root', path.join(dir, 'exec')], { timeoutMs: 10_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the following directives don't match any configuration option: data-rooot/);
    fs.writeFileSync(file, JSON.stringify({ debug: 'yes' }));
    const r2 = await run(paths.berthd, ['--config-file', file, '--exec-root', path.join(dir, 'exec')], { timeoutMs: 10_000 });
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /"debug" has a value of the wrong type/);
    assert.equal(fs.existsSync(path.join(dir, 'exec')), false, 'nothing is created before the config is valid');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
