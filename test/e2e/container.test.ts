/**
 * Inside a container, through the berth CLI: isolation, copy-on-write, limits,
 * and what survives a SIGKILL of the daemon.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startDaemon, loadTestImages, printLogTail, type Daemon } from '../harness.js';

let d: Daemon;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
});

after(async () => {
  await d?.stop();
});

async function berth(args: string[], input?: string) {
  const r = await d.berth(args, { input });
  if (r.code !== 0) printLogTail(d, `berth ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `berth ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('ps in a container shows only its own processes, with the command as PID 1', async () => {
  // The trailing `true` keeps busybox sh from exec'ing ps, so sh stays PID 1.
  const out = await berth(['run', '--rm', 'busybox', 'sh', '-c', 'sleep 5 & ps -o pid,args; true']);
  const rows = out.trim().split('\n').slice(1).map((l) => l.trim());
  assert.match(rows[0], /^1 sh -c sleep 5 & ps -o pid,args; true$/);
  // sh, the background sleep (maybe not yet exec'd, so still named sh) and ps itself: nothing of the host.
  assert.equal(rows.length, 3, out);
});

test('the hostname is the container\'s: its short ID, or -h', async () => {
  const id = (await berth(['create', 'busybox', 'hostname'])).trim();
  await berth(['start', id]);
  assert.equal((await berth(['wait', id])).trim(), '0');
  assert.equal(await berth(['logs', id]), `${id.slice(0, 12)}\n`);
  await berth(['rm', id]);
  assert.equal(await berth(['run', '--rm', '-h', 'box1', 'busybox', 'hostname']), 'box1\n');
});

test('the root is an overlay; writes land in the upper layer and the image layers stay untouched', async () => {
  const id = (await berth(['run', '-d', 'busybox', 'sh', '-c', 'echo changed > /etc/motd; rm /bin/vi; mount | head -1; sleep 30'])).trim();
  for (let i = 0; i < 50 && !(await berth(['logs', id])).includes('overlay'); i++) await new Promise((r) => setTimeout(r, 100));
  assert.match(await berth(['logs', id]), /^overlay on \/ type overlay \(rw,/);
  const merged = (await berth(['inspect', '-f', '{{.GraphDriver.Data.MergedDir}}', id])).trim();
  assert.equal(fs.readFileSync(path.join(merged, 'etc/motd'), 'utf8'), 'changed\n');
  // The upper dir of the container holds the change and the whiteout; every image layer still has /bin/vi and no motd.
  const overlayRoot = path.join(d.dataRoot, 'overlay2');
  const diffs = fs.readdirSync(overlayRoot).filter((e) => e !== 'l').map((e) => path.join(overlayRoot, e, 'diff')).filter((p) => fs.existsSync(p));
  const uppers = diffs.filter((p) => fs.existsSync(path.join(p, 'etc/motd')));
  assert.equal(uppers.length, 1);
  const whiteout = fs.lstatSync(path.join(uppers[0], 'bin/vi'));
  assert.ok(whiteout.isCharacterDevice() && whiteout.rdev === 0, 'deletion is a whiteout in the upper dir');
  assert.ok(diffs.some((p) => fs.existsSync(path.join(p, 'bin/busybox')) && fs.lstatSync(path.join(p, 'bin/vi')).isSymbolicLink()));
  await berth(['rm', '-f', id]);
  // A new container from the same image sees the pristine image.
  assert.equal(await berth(['run', '--rm', 'busybox', 'sh', '-c', 'test -e /etc/motd || echo pristine; test -L /bin/vi && echo vi']), 'pristine\nvi\n');
});

test('a fork bomb stops at the pids limit', async () => {
  // Builtins only (echo, test, arithmetic): each loop forks exactly one sleep.
  const r = await d.berth(['run', '--rm', '--pids-limit', '20', 'busybox', 'sh', '-c', 'i=0; while [ $i -lt 100 ]; do echo $i; sleep 10 & i=$((i+1)); done']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /can't fork: Resource temporarily unavailable/);
  const forks = r.stdout.trim().split('\n');
  assert.equal(forks[forks.length - 1], '19', 'PID 1 and 19 sleeps fill the limit of 20');
});

test('an allocation past -m is OOM-killed and inspect says OOMKilled', async () => {
  const r = await d.berth(['run', '--name', 'oomer', '-m', '16m', 'busybox', 'sh', '-c', 'x=$(head -c 64000000 /dev/zero | tr "\\0" a); echo survived']);
  assert.equal(r.code, 137, r.stderr);
  assert.doesNotMatch(r.stdout, /survived/);
  assert.equal(await berth(['inspect', '-f', '{{.State.OOMKilled}} {{.State.ExitCode}}', 'oomer']), 'true 137\n');
  await berth(['rm', 'oomer']);
});

test('containers keep running when berthd is killed with SIGKILL, and a new berthd adopts them', async () => {
  await berth(['run', '-d', '--name', 'survivor', 'busybox', 'sh', '-c', 'trap "exit 7" TERM; echo before; while true; do sleep 0.2; done']);
  await berth(['run', '-d', '--name', 'quitter', 'busybox', 'sh', '-c', 'sleep 1; echo bye; exit 4']);
  const pid = Number((await berth(['inspect', '-f', '{{.State.Pid}}', 'survivor'])).trim());
  await d.kill9();
  process.kill(pid, 0); // still alive without the daemon
  await new Promise((r) => setTimeout(r, 1500)); // quitter exits while no daemon runs
  await d.restart();
  const ps = await berth(['ps', '--format', '{{.Names}} {{.Status}}']);
  assert.match(ps, /^survivor Up /m);
  assert.doesNotMatch(ps, /quitter/);
  assert.equal(await berth(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'quitter']), 'exited 4\n');
  assert.equal(await berth(['logs', 'quitter']), 'bye\n');
  assert.equal(await berth(['logs', 'survivor']), 'before\n');
  const waiter = d.berth(['wait', 'survivor']);
  await berth(['stop', 'survivor']);
  assert.equal((await waiter).stdout, '7\n');
  await berth(['rm', 'survivor', 'quitter']);
});

test('logs: --tail, -t, --since and -f, which follows until the container exits', async () => {
  const id = (await berth(['run', '-d', 'busybox', 'sh', '-c', 'for i in 1 2 3; do echo line$i; done; echo oops >&2; sleep 1; echo late; exit 2'])).trim();
  const follow = d.berth(['logs', '-f', id]);
  const all = await follow;
  assert.equal(all.code, 0);
  assert.equal(all.stdout, 'line1\nline2\nline3\nlate\n');
  assert.equal(all.stderr, 'oops\n');
  assert.equal(await berth(['logs', '--tail', '2', id]), 'late\n', 'the last two lines are oops (stderr) and late');
  const stamped = (await berth(['logs', '-t', id])).trim().split('\n');
  assert.match(stamped[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line1$/);
  assert.equal(await berth(['logs', '--since', String(Math.floor(Date.now() / 1000) + 60), id]), '');
  assert.equal((await berth(['wait', id])).trim(), '2');
  // start -a attaches to a fresh run and returns its exit code.
  const again = await d.berth(['start', '-a', id]);
  assert.equal(again.code, 2);
  assert.equal(again.stdout, 'line1\nline2\nline3\nlate\n');
  await berth(['rm', id]);
});

test('restart policies: on-failure retries up to its count, always restarts until stopped', async () => {
  const id = (await berth(['run', '-d', '--restart', 'on-failure:2', 'busybox', 'sh', '-c', 'echo run; exit 3'])).trim();
  let state = '';
  for (let i = 0; i < 50 && state !== 'exited 2 3'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    state = (await berth(['inspect', '-f', '{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}', id])).trim();
  }
  assert.equal(state, 'exited 2 3', 'one run and two retries, then it stays down');
  assert.equal(await berth(['logs', id]), 'run\nrun\nrun\n');
  await berth(['rm', id]);

  const always = (await berth(['run', '-d', '--restart', 'always', 'busybox', 'sh', '-c', 'sleep 0.2; exit 1'])).trim();
  let count = 0;
  for (let i = 0; i < 50 && count < 2; i++) {
    await new Promise((r) => setTimeout(r, 100));
    count = Number(await berth(['inspect', '-f', '{{.RestartCount}}', always]));
  }
  assert.ok(count >= 2, `restarted ${count} times`);
  await berth(['stop', always]);
  const after = await berth(['inspect', '-f', '{{.State.Status}} {{.RestartCount}}', always]);
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(await berth(['inspect', '-f', '{{.State.Status}} {{.RestartCount}}', always]), after, 'a stopped container stays stopped');
  assert.match(after, /^exited /);
  await berth(['rm', always]);

  const bad = await d.berth(['run', '--rm', '--restart', 'always', 'busybox', 'true']);
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /conflicting options: cannot specify both --restart and --rm|AutoRemove/);
});
