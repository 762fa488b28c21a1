/**
 * The daemon's process as ps, top and pgrep see it: named berthd, with its arguments, and still
 * recognised by its pidfile check.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startDaemon, run, type Daemon } from '../harness.js';

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
