/**
 * The locked lifecycle: verbs on one container sent at once never interleave, so every outcome is a
 * state a user could have reached one verb at a time, and nothing is left behind.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startDaemon, loadTestImages, leftovers, type Daemon } from '../harness.js';

let d: Daemon;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
});

after(async () => {
  await d?.stop();
});

const ROUNDS = 100;

test(`${ROUNDS} rounds of start and rm -f sent at once leave a running or a removed container, and nothing else`, { timeout: 600_000 }, async () => {
  let startedFirst = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const created = await d.api('POST', '/containers/create', { Image: 'busybox', Cmd: ['sleep', '1000'] });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id: string = created.body.Id;
    // Both orders of arrival: the lock must make either one safe.
    const start = () => d.api('POST', `/containers/${id}/start`);
    const rm = () => d.api('DELETE', `/containers/${id}?force=1`);
    const [a, b] = await Promise.all(i % 2 ? [start(), rm()] : [rm(), start()]);
    const [started, removed] = i % 2 ? [a, b] : [b, a];
    assert.equal(removed.status, 204, JSON.stringify(removed.body));
    // A start that came second finds no container; one that came first ran.
    assert.ok(started.status === 204 || started.status === 404, `start: ${started.status} ${JSON.stringify(started.body)}`);

    // Whichever came first, the removal wins in the end: the record and the files go together.
    const inspect = await d.api('GET', `/containers/${id}/json`);
    assert.equal(inspect.status, 404, JSON.stringify(inspect.body));
    assert.equal(fs.existsSync(path.join(d.dataRoot, 'containers', id)), false, 'files without a record');
    if (started.status === 204) startedFirst++;
  }
  // Both orders happened (the lock serialises them; it does not hide one).
  assert.ok(startedFirst > 0, 'no start ran before its removal');
  const list = await d.api('GET', '/containers/json?all=1');
  assert.deepEqual(list.body, []);
  assert.deepEqual(fs.readdirSync(path.join(d.dataRoot, 'containers')), []);
  assert.deepEqual(leftovers(d), { mounts: [], cgroups: [], processes: [], files: [] });
});

test('stop, kill and restart sent at once to a running container end in one consistent state', { timeout: 120_000 }, async () => {
  const created = await d.api('POST', '/containers/create', { Image: 'busybox', Cmd: ['sleep', '1000'] });
  const id: string = created.body.Id;
  assert.equal((await d.api('POST', `/containers/${id}/start`)).status, 204);
  const results = await Promise.all([
    d.api('POST', `/containers/${id}/stop?t=1`),
    d.api('POST', `/containers/${id}/restart?t=1`),
    d.api('POST', `/containers/${id}/kill`),
    d.api('POST', `/containers/${id}/start`),
  ]);
  for (const r of results) assert.ok([204, 304, 409].includes(r.status), `${r.status} ${JSON.stringify(r.body)}`);
  const inspect = await d.api('GET', `/containers/${id}/json`);
  const running: boolean = inspect.body.State.Running;
  assert.equal(inspect.body.State.Status, running ? 'running' : 'exited');
  assert.equal(inspect.body.State.Pid > 0, running);
  assert.equal((await d.api('DELETE', `/containers/${id}?force=1`)).status, 204);
  assert.deepEqual(leftovers(d), { mounts: [], cgroups: [], processes: [], files: [] });
});

test('a container whose init exits while its children run on (host pid namespace) goes with them, cgroups and all', { timeout: 120_000 }, async () => {
  // The exit's clean-up skips `runc delete` only when nothing of the container runs any more; here
  // a child outlives init in the host's pid namespace and must still be killed, as dockerd does.
  const marker = String(3000 + Math.floor(Math.random() * 900));
  const created = await d.api('POST', '/containers/create', {
    Image: 'busybox', Cmd: ['sh', '-c', `sleep ${marker} & exit 0`], HostConfig: { PidMode: 'host', AutoRemove: true },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id: string = created.body.Id;
  const waited = d.api('POST', `/containers/${id}/wait?condition=removed`);
  assert.equal((await d.api('POST', `/containers/${id}/start`)).status, 204);
  assert.equal((await waited).status, 200);
  const sleepers = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try { return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8') === `sleep\0${marker}\0`; } catch { return false; }
  });
  assert.deepEqual(sleepers, [], 'the child init left behind still runs');
  assert.deepEqual(leftovers(d), { mounts: [], cgroups: [], processes: [], files: [] });
});
