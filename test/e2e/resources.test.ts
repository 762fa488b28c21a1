/**
 * Resources through the docker CLI, checked where a user would look (the container's own /proc and
 * cgroup files): ulimits and the daemon's default-ulimits, cpuset, memory reservation, the OOM
 * killer and score, devices and device cgroup rules, --init, --stop-signal and --stop-timeout.
 * Bad values get Docker's error and create nothing.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startDaemon, loadTestImages, leftovers, type Daemon } from '../harness.js';

let d: Daemon;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
});

after(async () => {
  await d?.stop();
});

const bb = (args: string[], script: string, daemon: Daemon = d) => daemon.docker(['run', '--rm', ...args, 'busybox', 'sh', '-c', script]);

/** This process's limit for a /proc/self/limits line: [soft, hard] ('unlimited' as -1). */
function ownLimit(line: string): [number, number] {
  const m = new RegExp(`^${line}\\s+(\\S+)\\s+(\\S+)`, 'm').exec(fs.readFileSync('/proc/self/limits', 'utf8'))!;
  const n = (s: string) => (s === 'unlimited' ? -1 : Number(s));
  return [n(m[1]!), n(m[2]!)];
}

async function refused(args: string[], message: RegExp, daemon: Daemon = d) {
  const r = await daemon.docker(['run', '--rm', ...args, 'busybox', 'true']);
  assert.equal(r.code, 125, `${args.join(' ')}: exit ${r.code} ${r.stderr}`);
  assert.match(r.stderr, message, args.join(' '));
}

async function nothingLeft(daemon: Daemon = d) {
  assert.deepEqual((await daemon.api('GET', '/containers/json?all=1')).body, []);
  assert.deepEqual(leftovers(daemon), { mounts: [], cgroups: [], processes: [], files: [] });
}

test('--ulimit sets soft and hard limits; above the host\'s hard limit is refused with a clear error', { timeout: 60_000 }, async () => {
  const r = await bb(['--ulimit', 'nofile=512:1024', '--ulimit', 'memlock=65536'], 'ulimit -n; ulimit -Hn; grep "Max locked memory" /proc/self/limits');
  assert.equal(r.code, 0, r.stderr);
  const [soft, hard, memlock] = r.stdout.trim().split('\n');
  assert.equal(soft, '512');
  assert.equal(hard, '1024');
  assert.match(memlock!, /Max locked memory\s+65536\s+65536\s/);
  const [, hostHard] = ownLimit('Max open files');
  await refused(['--ulimit', `nofile=${hostHard + 1}:${hostHard + 1}`], new RegExp(`above the host's hard limit for nofile \\(${hostHard}\\)`));
  const api = await d.api('POST', '/containers/create', { Image: 'busybox', HostConfig: { Ulimits: [{ Name: 'nofiles', Soft: 1, Hard: 1 }] } });
  assert.equal(api.status, 400);
  assert.equal(api.body.message, 'invalid ulimit type: nofiles');
  const order = await d.api('POST', '/containers/create', { Image: 'busybox', HostConfig: { Ulimits: [{ Name: 'nofile', Soft: 10, Hard: 5 }] } });
  assert.equal(order.status, 400);
  assert.equal(order.body.message, 'ulimit soft limit must be less than or equal to hard limit: 10 > 5');
  await nothingLeft();
});

test('daemon default-ulimits apply to every container, --ulimit wins, and a default above the host is clamped', { timeout: 90_000 }, async () => {
  const [, hostHard] = ownLimit('Max open files');
  const d2 = await startDaemon({ config: { 'default-ulimits': {
    nofile: { Name: 'nofile', Soft: hostHard * 10, Hard: hostHard * 10 },
    memlock: { Name: 'memlock', Soft: 32768, Hard: 65536 },
  } } });
  try {
    await loadTestImages(d2);
    const r = await bb([], 'ulimit -n; ulimit -Hn; grep "Max locked memory" /proc/self/limits', d2);
    assert.equal(r.code, 0, r.stderr);
    const [soft, hard, memlock] = r.stdout.trim().split('\n');
    assert.equal(Number(soft), hostHard, 'default nofile was not clamped to the host hard limit');
    assert.equal(Number(hard), hostHard);
    assert.match(memlock!, /Max locked memory\s+32768\s+65536\s/);
    const own = await bb(['--ulimit', 'memlock=4096:8192'], 'grep "Max locked memory" /proc/self/limits', d2);
    assert.match(own.stdout, /Max locked memory\s+4096\s+8192\s/);
    await nothingLeft(d2);
  } finally {
    await d2.stop();
  }
});

test('--cpuset-cpus/--cpuset-mems pin the container; ranges outside the host are refused', { timeout: 60_000 }, async () => {
  const r = await bb(['--cpuset-cpus', '0', '--cpuset-mems', '0'], 'grep -E "^(Cpus|Mems)_allowed_list" /proc/self/status');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Cpus_allowed_list:\s+0\n/);
  assert.match(r.stdout, /Mems_allowed_list:\s+0\n/);
  const online = fs.readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
  await refused(['--cpuset-cpus', '64'], new RegExp(`Requested CPUs are not available - requested 64, available: ${online}`));
  await refused(['--cpuset-mems', '9'], /Requested memory nodes are not available - requested 9, available: /);
  await refused(['--cpuset-cpus', '1-0'], /Invalid value 1-0 for cpuset cpus/);
  await nothingLeft();
});

test('--memory-reservation, --oom-kill-disable and --oom-score-adj reach the cgroup and the process', { timeout: 60_000 }, async () => {
  const r = await bb(['-m', '64m', '--memory-reservation', '32m', '--oom-kill-disable', '--oom-score-adj', '500'],
    'cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes; grep oom_kill_disable /sys/fs/cgroup/memory/memory.oom_control; cat /proc/self/oom_score_adj');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), [String(32 << 20), 'oom_kill_disable 1', '500']);
  const c = (await d.docker(['create', '--memory-reservation', '32m', '--oom-score-adj', '-5', 'busybox', 'true'])).stdout.trim();
  const h = (await d.api('GET', `/containers/${c}/json`)).body.HostConfig;
  assert.equal(h.MemoryReservation, 32 << 20);
  assert.equal(h.OomScoreAdj, -5);
  await d.docker(['rm', c]);
  await refused(['-m', '32m', '--memory-reservation', '64m'], /Minimum memory limit can not be less than memory reservation limit, see usage/);
  const adj = await d.api('POST', '/containers/create', { Image: 'busybox', HostConfig: { OomScoreAdj: 1001 } });
  assert.equal(adj.status, 400);
  assert.equal(adj.body.message, 'Invalid value 1001, range for oom score adj is [-1000, 1000]');
  const neg = await d.api('POST', '/containers/create', { Image: 'busybox', HostConfig: { Memory: -1 } });
  assert.equal(neg.status, 400, 'negative memory was accepted');
  assert.equal(neg.body.message, 'Minimum memory limit allowed is 6MB');
  await nothingLeft();
});

test('docker update changes cpuset and memory reservation of a running container; bad values change nothing', { timeout: 60_000 }, async () => {
  const id = (await d.docker(['run', '-d', '-m', '64m', 'busybox', 'sleep', '60'])).stdout.trim();
  try {
    assert.equal((await d.docker(['update', '--cpuset-cpus', '0', '--memory-reservation', '16m', id])).code, 0);
    const r = await d.docker(['exec', id, 'sh', '-c', 'grep Cpus_allowed_list /proc/self/status; cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes']);
    assert.match(r.stdout, /Cpus_allowed_list:\s+0\n/);
    assert.match(r.stdout, new RegExp(`^${16 << 20}$`, 'm'));
    const h = (await d.api('GET', `/containers/${id}/json`)).body.HostConfig;
    assert.equal(h.CpusetCpus, '0');
    assert.equal(h.MemoryReservation, 16 << 20);
    const bad = await d.docker(['update', '--cpuset-cpus', '64', id]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Requested CPUs are not available/);
    const over = await d.docker(['update', '--memory-reservation', '128m', id]);
    assert.match(over.stderr, /Minimum memory limit can not be less than memory reservation limit/);
    const after = (await d.api('GET', `/containers/${id}/json`)).body.HostConfig;
    assert.equal(after.CpusetCpus, '0');
    assert.equal(after.MemoryReservation, 16 << 20);
  } finally {
    await d.docker(['rm', '-f', id]);
  }
});

test('--device adds the node and allows it; --device-cgroup-rule opens a device class', { timeout: 60_000 }, async () => {
  const r = await bb(['--device', '/dev/null:/dev/mynull:rw'], 'ls -l /dev/mynull && echo x > /dev/mynull');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^crw.*\s1,\s+3\s.*\/dev\/mynull$/m);
  // /dev/kmsg (1:11) is outside Docker's default device set; opening it write-only needs no syslog right.
  const kmsg = 'mknod /tmp/kmsg c 1 11 && : > /tmp/kmsg';
  const plain = await bb([], kmsg);
  assert.notEqual(plain.code, 0);
  assert.match(plain.stderr, /not permitted/i);
  const ruled = await bb(['--device-cgroup-rule', 'c 1:11 w'], kmsg);
  assert.equal(ruled.code, 0, ruled.stderr);
  // (the docker CLI exits 127 for any daemon error that says "no such file or directory", as with dockerd)
  const missing = await d.docker(['run', '--rm', '--device', '/dev/nope-berth', 'busybox', 'true']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /error gathering device information while adding custom device "\/dev\/nope-berth": no such file or directory/);
  const rule = await d.api('POST', '/containers/create', { Image: 'busybox', HostConfig: { DeviceCgroupRules: ['x 1:3 rwm'] } });
  assert.equal(rule.status, 400);
  assert.equal(rule.body.message, "invalid device cgroup rule format: 'x 1:3 rwm'");
  await nothingLeft();
});

test('--init runs tini as PID 1: signals are forwarded and orphans reaped', { timeout: 90_000 }, async () => {
  const ps = await bb(['--init'], 'cat /proc/1/cmdline | tr "\\0" " "');
  assert.equal(ps.code, 0, ps.stderr);
  assert.match(ps.stdout, /^\/sbin\/docker-init -- sh -c /);
  // An orphan is re-parented to PID 1, which must reap it.
  const reap = await bb(['--init'], '(sleep 0.2 &) ; sleep 1; ps -o stat,comm | grep -c "^Z" || true');
  assert.equal(reap.stdout.trim(), '0', 'a zombie was left');
  // sleep as PID 1 ignores SIGTERM (the kernel gives PID 1 no default action); behind tini it gets it.
  const id = (await d.docker(['run', '-d', '--init', 'busybox', 'sleep', '100'])).stdout.trim();
  const t0 = Date.now();
  assert.equal((await d.docker(['stop', '-t', '20', id])).code, 0);
  assert.ok(Date.now() - t0 < 10_000, `stop waited ${Date.now() - t0} ms: SIGTERM was not forwarded`);
  assert.equal((await d.api('GET', `/containers/${id}/json`)).body.State.ExitCode, 143);
  await d.docker(['rm', id]);
  await nothingLeft();
});

test('--stop-signal and --stop-timeout are what docker stop uses; an unknown signal is refused', { timeout: 90_000 }, async () => {
  const id = (await d.docker(['run', '-d', '--stop-signal', 'usr1', 'busybox', 'sh', '-c',
    'trap "echo got-usr1; exit 7" USR1; echo ready; while true; do sleep 0.1; done'])).stdout.trim();
  for (let i = 0; i < 50 && !(await d.docker(['logs', id])).stdout.includes('ready'); i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal((await d.docker(['stop', id])).code, 0);
  assert.match((await d.docker(['logs', id])).stdout, /got-usr1/);
  assert.equal((await d.api('GET', `/containers/${id}/json`)).body.State.ExitCode, 7);
  await d.docker(['rm', id]);

  const slow = (await d.docker(['run', '-d', '--stop-timeout', '1', 'busybox', 'sleep', '100'])).stdout.trim();
  const t0 = Date.now();
  assert.equal((await d.docker(['stop', slow])).code, 0);
  const took = Date.now() - t0;
  assert.ok(took >= 900 && took < 8_000, `stop took ${took} ms with --stop-timeout 1`);
  assert.equal((await d.api('GET', `/containers/${slow}/json`)).body.State.ExitCode, 137);
  await d.docker(['rm', slow]);

  const bad = await d.api('POST', '/containers/create', { Image: 'busybox', StopSignal: 'SIGNOPE' });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.message, 'Invalid signal: SIGNOPE');
  await refused(['--stop-signal', 'NOPE'], /Invalid signal: NOPE/);
  await nothingLeft();
});
