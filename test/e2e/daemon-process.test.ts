/**
 * The daemon's process as ps, top and pgrep see it: named berthd, with its arguments, and still
 * recognised by its pidfile check.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startDaemon, run, loadTestImages, daemonBridges, cgroupMounts, type Daemon } from '../harness.js';

let d: Daemon;

before(async () => {
  d = await startDaemon();
});

after(async () => {
  await d?.stop();
});

test('pgrep -x berthd finds the daemon, and ps shows its arguments', { timeout: 30_000 }, async () => {
  const pgrep = await run('pgrep', ['-x', 'berthd'], { timeoutMs: 10_000 });
  assert.equal(pgrep.code, 0, pgrep.stderr);
  assert.ok(pgrep.stdout.split('\n').includes(String(d.pid)), `pgrep -x berthd: ${pgrep.stdout}`);
  assert.equal(fs.readFileSync(`/proc/${d.pid}/comm`, 'utf8'), 'berthd\n');
  const ps = await run('ps', ['-o', 'args=', '-p', String(d.pid)], { timeoutMs: 10_000 });
  assert.match(ps.stdout.trim(), new RegExp(`^berthd --data-root ${d.dataRoot} --exec-root ${d.execRoot} `));
});

test('a second berthd on the same pidfile refuses to start while the first runs', { timeout: 30_000 }, async () => {
  // The harness gives each daemon the pidfile <exec-root>/berthd.pid; a later --pidfile wins.
  const pidfile = path.join(d.execRoot, 'berthd.pid');
  assert.equal(fs.readFileSync(pidfile, 'utf8').trim(), String(d.pid));
  await assert.rejects(startDaemon({ extraArgs: ['--pidfile', pidfile] }), /pid file found, ensure berthd is not running/);
  const ping = await d.api('GET', '/_ping');
  assert.equal(ping.status, 200);
});

test('a berthd stopped with SIGTERM and no containers left takes its bridges and its cgroup parent with it', { timeout: 120_000 }, async () => {
  const own = await startDaemon();
  try {
    await loadTestImages(own);
    const net = await own.docker(['network', 'create', 'stopnet']);
    assert.equal(net.code, 0, net.stderr);
    const r = await own.docker(['run', '--rm', '--network', 'stopnet', 'busybox', 'true']);
    assert.equal(r.code, 0, r.stderr);
    const bridges = daemonBridges(own.bridge!, own.dataRoot);
    assert.ok(bridges.length >= 2 && bridges.every((b) => fs.existsSync(`/sys/class/net/${b}`)), `bridges up: ${bridges.join(' ')}`);
    process.kill(own.pid, 'SIGTERM');
    for (let i = 0; i < 100 && fs.existsSync(`/proc/${own.pid}`); i++) await new Promise((res) => setTimeout(res, 100));
    assert.deepEqual(bridges.filter((b) => fs.existsSync(`/sys/class/net/${b}`)), [], 'bridges left after a clean stop');
    const cgroups = cgroupMounts().map((m) => path.join(m.path, own.cgroupParent)).filter((p) => fs.existsSync(p));
    assert.deepEqual(cgroups, [], 'cgroup parent left after a clean stop');
  } finally {
    await own.stop();
  }
});
