/**
 * Health checks against berthd with the real docker CLI (and berth's own): a check goes starting →
 * healthy, a failing one turns unhealthy after its retries, the last five runs are in inspect,
 * health_status and the probes' exec events are on the bus, ps shows "(healthy)" and filters by
 * health, an image's HEALTHCHECK applies unless --no-healthcheck, the status resets on each start,
 * monitors come back after the daemon is killed, and bad settings get dockerd's errors.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, loadTestImages, leftovers, printLogTail, testImages, type Daemon, type RunResult } from '../harness.js';

let d: Daemon;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
});

after(async () => {
  await d?.stop();
});

interface HealthLog { Start: string; End: string; ExitCode: number; Output: string }
interface Health { Status: string; FailingStreak: number; Log: HealthLog[] }
interface Inspect { State: { Status: string; Health?: Health }; Config: { Healthcheck?: Record<string, unknown> }; ExecIDs: string[] | null }

async function ok(args: string[], client: 'docker' | 'berth' = 'docker'): Promise<RunResult> {
  const r = client === 'docker' ? await d.docker(args) : await d.berth(args);
  if (r.code !== 0) printLogTail(d, `${client} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `${client} ${args.join(' ')}: ${r.stderr}`);
  return r;
}

async function inspect(name: string): Promise<Inspect> {
  const r = await d.api('GET', `/containers/${name}/json`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as Inspect;
}

/** Polls inspect until `pred` holds; fails with the last state seen. */
async function waitFor(name: string, what: string, pred: (c: Inspect) => boolean, timeoutMs = 20_000): Promise<Inspect> {
  const deadline = Date.now() + timeoutMs;
  let last = await inspect(name);
  while (!pred(last)) {
    if (Date.now() > deadline) assert.fail(`${name}: ${what} not reached in ${timeoutMs} ms; last State: ${JSON.stringify(last.State)}`);
    await new Promise((r) => setTimeout(r, 100));
    last = await inspect(name);
  }
  return last;
}

const now = () => (Date.now() / 1000).toFixed(3);
const lines = (s: string) => s.trim().split('\n').filter(Boolean).map((l) => l.trim());

async function events(name: string, since: string): Promise<string[]> {
  const r = await ok(['events', '--since', since, '--until', now(), '--filter', `container=${name}`, '--format', '{{.Action}}|{{index .Actor.Attributes "exitCode"}}']);
  return lines(r.stdout);
}

async function psStatus(name: string, client: 'docker' | 'berth' = 'docker'): Promise<string> {
  return (await ok(['ps', '-a', '--filter', `name=^${name}$`, '--format', '{{.Status}}'], client)).stdout.trim();
}

test('a check goes starting → healthy: ps status, the log in inspect, health_status and the probes\' exec events', { timeout: 90_000 }, async () => {
  const t0 = now();
  await ok(['run', '-d', '--name', 'hc-ok', '--health-cmd', 'cat /tmp/ready', '--health-interval', '300ms',
    '--health-start-period', '60s', '--health-start-interval', '300ms',
    'busybox', 'sh', '-c', 'sleep 2; echo ready > /tmp/ready; exec sleep 600']);
  assert.match(await psStatus('hc-ok'), /^Up .* \(health: starting\)$/);
  const first = await inspect('hc-ok');
  assert.equal(first.State.Health?.Status, 'starting');
  assert.deepEqual(first.Config.Healthcheck, { Test: ['CMD-SHELL', 'cat /tmp/ready'], Interval: 300e6, StartPeriod: 60e9, StartInterval: 300e6 });

  // Failures inside the start period are logged but do not count.
  const failing = await waitFor('hc-ok', 'a failed probe', (c) => (c.State.Health?.Log.length ?? 0) > 0);
  // The file appears 2 s after the start; the first probe runs at 300 ms.
  assert.equal(failing.State.Health!.Status, 'starting');
  assert.equal(failing.State.Health!.FailingStreak, 0);
  assert.equal(failing.State.Health!.Log[0]!.ExitCode, 1);
  assert.match(failing.State.Health!.Log[0]!.Output, /can't open '\/tmp\/ready'/);

  const healthy = await waitFor('hc-ok', 'healthy', (c) => c.State.Health?.Status === 'healthy');
  const log = healthy.State.Health!.Log;
  assert.ok(log.length <= 5, `at most 5 entries: ${log.length}`);
  const last = log[log.length - 1]!;
  assert.equal(last.ExitCode, 0);
  assert.equal(last.Output, 'ready\n');
  assert.equal(healthy.State.Health!.FailingStreak, 0);
  assert.ok(Date.parse(last.End) >= Date.parse(last.Start), `${last.Start} → ${last.End}`);
  assert.match(await psStatus('hc-ok'), /^Up .* \(healthy\)$/);
  // As in dockerd, ExecIDs lists execs that have not exited: finished probes do not pile up there.
  assert.ok((healthy.ExecIDs ?? []).length <= 1, `ExecIDs: ${JSON.stringify(healthy.ExecIDs)}`);

  const evs = await events('hc-ok', t0);
  assert.equal(evs.filter((e) => e.startsWith('health_status')).join(','), 'health_status: healthy|', 'one health_status event, on the change');
  assert.ok(evs.includes('exec_create: /bin/sh -c cat /tmp/ready|'), evs.join('\n'));
  assert.ok(evs.includes('exec_start: /bin/sh -c cat /tmp/ready|'), evs.join('\n'));
  assert.ok(evs.includes('exec_die|1') && evs.includes('exec_die|0'), evs.join('\n'));
  // Each probe: create, start, die, in that order; the health_status follows the successful probe's exit.
  const at = (e: string) => evs.indexOf(e);
  assert.ok(at('exec_create: /bin/sh -c cat /tmp/ready|') < at('exec_start: /bin/sh -c cat /tmp/ready|'));
  assert.ok(at('exec_start: /bin/sh -c cat /tmp/ready|') < at('exec_die|1'));
  assert.equal(evs[at('health_status: healthy|') - 1], 'exec_die|0');
});

test('a failing command turns unhealthy after Retries failures; the log keeps the last five runs', { timeout: 90_000 }, async () => {
  const t0 = now();
  await ok(['run', '-d', '--name', 'hc-bad', '--health-cmd', 'echo failing >&2; exit 3', '--health-interval', '200ms', '--health-retries', '3', 'busybox', 'sleep', '600']);
  await waitFor('hc-bad', 'unhealthy', (c) => c.State.Health?.Status === 'unhealthy');
  const evs = await events('hc-bad', t0);
  const turned = evs.indexOf('health_status: unhealthy|');
  assert.ok(turned > 0, evs.join('\n'));
  assert.equal(evs.slice(0, turned).filter((e) => e === 'exec_die|3').length, 3, `unhealthy at the third failure:\n${evs.join('\n')}`);
  assert.ok(!evs.some((e) => e === 'health_status: healthy|'));

  const later = await waitFor('hc-bad', '7 failures', (c) => (c.State.Health?.FailingStreak ?? 0) >= 7);
  assert.equal(later.State.Health!.Log.length, 5);
  for (const entry of later.State.Health!.Log) {
    assert.equal(entry.ExitCode, 3);
    assert.equal(entry.Output, 'failing\n');
  }
  assert.match(await psStatus('hc-bad'), /^Up .* \(unhealthy\)$/);
  const again = await events('hc-bad', t0);
  assert.equal(again.filter((e) => e.startsWith('health_status')).length, 1, 'no event while the status stays unhealthy');
  await ok(['rm', '-f', 'hc-bad']);
});

test('stop leaves the status unhealthy (as dockerd); each start resets it to starting with a zero streak', { timeout: 90_000 }, async () => {
  await ok(['run', '-d', '--name', 'hc-cycle', '--health-cmd', 'true', '--health-interval', '200ms', 'busybox', 'sleep', '600']);
  await waitFor('hc-cycle', 'healthy', (c) => c.State.Health?.Status === 'healthy');
  await ok(['stop', '-t', '0', 'hc-cycle']);
  const stopped = await inspect('hc-cycle');
  assert.equal(stopped.State.Status, 'exited');
  assert.equal(stopped.State.Health?.Status, 'unhealthy');
  const probes = stopped.State.Health!.Log.length;
  await new Promise((r) => setTimeout(r, 700));
  assert.equal((await inspect('hc-cycle')).State.Health!.Log.length, probes, 'no probe runs while stopped');
  assert.match(await psStatus('hc-cycle'), /^Exited \(137\)/);

  await ok(['start', 'hc-cycle']);
  const started = await inspect('hc-cycle');
  assert.equal(started.State.Health?.Status, 'starting');
  assert.equal(started.State.Health?.FailingStreak, 0);
  await waitFor('hc-cycle', 'healthy again', (c) => c.State.Health?.Status === 'healthy');

  await ok(['restart', '-t', '0', 'hc-cycle']);
  assert.equal((await inspect('hc-cycle')).State.Health?.Status, 'starting');
  await waitFor('hc-cycle', 'healthy after restart', (c) => c.State.Health?.Status === 'healthy');
  await ok(['rm', '-f', 'hc-cycle']);
});

test('a probe past its timeout is killed and logged as dockerd logs it; output is cut at 4096 bytes', { timeout: 90_000 }, async () => {
  const t0 = now();
  await ok(['run', '-d', '--name', 'hc-slow', '--health-cmd', 'sleep 5', '--health-timeout', '300ms', '--health-interval', '200ms', '--health-retries', '1', 'busybox', 'sleep', '600']);
  const slow = await waitFor('hc-slow', 'unhealthy', (c) => c.State.Health?.Status === 'unhealthy');
  const entry = slow.State.Health!.Log[0]!;
  assert.equal(entry.ExitCode, -1);
  assert.equal(entry.Output, 'Health check exceeded timeout (300ms)');
  assert.ok(Date.parse(entry.End) - Date.parse(entry.Start) < 3000, `killed, not waited for: ${entry.Start} → ${entry.End}`);
  assert.ok((await events('hc-slow', t0)).includes('exec_die|137'), 'the killed probe exits 137');
  const ps = (await ok(['exec', 'hc-slow', 'ps', '-o', 'args'])).stdout;
  assert.ok(lines(ps).filter((l) => l === 'sleep 5').length <= 1, `timed-out probes do not pile up:\n${ps}`);
  await ok(['rm', '-f', 'hc-slow']);

  await ok(['run', '-d', '--name', 'hc-loud', '--health-cmd', 'yes x | head -c 5000', '--health-interval', '200ms', 'busybox', 'sleep', '600']);
  const loud = await waitFor('hc-loud', 'healthy', (c) => c.State.Health?.Status === 'healthy');
  assert.equal(loud.State.Health!.Log[0]!.Output, `${'x\n'.repeat(2048)}...`);
  await ok(['rm', '-f', 'hc-loud']);
});

test('ps --filter health=starting|healthy|unhealthy|none, and dockerd\'s error for another value', { timeout: 90_000 }, async () => {
  await ok(['run', '-d', '--name', 'hf-healthy', '--health-cmd', 'true', '--health-interval', '200ms', 'busybox', 'sleep', '600']);
  await ok(['run', '-d', '--name', 'hf-unhealthy', '--health-cmd', 'false', '--health-interval', '200ms', '--health-retries', '1', 'busybox', 'sleep', '600']);
  await ok(['run', '-d', '--name', 'hf-starting', '--health-cmd', 'false', '--health-interval', '200ms', '--health-start-period', '10m', '--health-start-interval', '200ms', 'busybox', 'sleep', '600']);
  await ok(['run', '-d', '--name', 'hf-none', 'busybox', 'sleep', '600']);
  await waitFor('hf-healthy', 'healthy', (c) => c.State.Health?.Status === 'healthy');
  await waitFor('hf-unhealthy', 'unhealthy', (c) => c.State.Health?.Status === 'unhealthy');
  await waitFor('hf-starting', 'a failed probe', (c) => (c.State.Health?.Log.length ?? 0) >= 2);
  const names = async (value: string) => lines((await ok(['ps', '--filter', 'name=^hf-', '--filter', `health=${value}`, '--format', '{{.Names}}'])).stdout).sort();
  assert.deepEqual(await names('healthy'), ['hf-healthy']);
  assert.deepEqual(await names('unhealthy'), ['hf-unhealthy']);
  assert.deepEqual(await names('starting'), ['hf-starting']);
  assert.deepEqual(await names('none'), ['hf-none']);
  assert.match(await psStatus('hf-none'), /^Up [^(]*$/);
  assert.match(await psStatus('hf-starting'), /\(health: starting\)$/);
  const bad = await d.docker(['ps', '--filter', 'health=bogus']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /Unrecognised filter value for health: bogus/);
  await ok(['rm', '-f', 'hf-healthy', 'hf-unhealthy', 'hf-starting', 'hf-none']);
});

test("an image's HEALTHCHECK runs; --no-healthcheck turns it off; --health-* settings override it field by field", { timeout: 90_000 }, async () => {
  const busybox = (await testImages()).find((i) => i.ref === 'busybox:latest')!;
  await ok(['import', '--change', 'CMD ["sh"]', '--change', 'HEALTHCHECK --interval=200ms --retries=1 CMD cat /etc/hostname', busybox.tar, 'hc-image:1']);
  const image = (await d.api('GET', '/images/hc-image:1/json')).body as { Config: { Healthcheck: unknown } };
  assert.deepEqual(image.Config.Healthcheck, { Test: ['CMD-SHELL', 'cat /etc/hostname'], Interval: 200e6, Retries: 1 });

  await ok(['run', '-d', '--name', 'hi-on', '--hostname', 'probe-me', 'hc-image:1', 'sleep', '600']);
  const on = await waitFor('hi-on', 'healthy', (c) => c.State.Health?.Status === 'healthy');
  assert.equal(on.State.Health!.Log[0]!.Output, 'probe-me\n');
  assert.deepEqual(on.Config.Healthcheck, { Test: ['CMD-SHELL', 'cat /etc/hostname'], Interval: 200e6, Retries: 1 });

  const t0 = now();
  await ok(['run', '-d', '--name', 'hi-off', '--no-healthcheck', 'hc-image:1', 'sleep', '600']);
  await new Promise((r) => setTimeout(r, 1000));
  const off = await inspect('hi-off');
  assert.equal(off.State.Health, undefined);
  // dockerd's merge: NONE replaces the test; the unset durations still come from the image.
  assert.deepEqual(off.Config.Healthcheck, { Test: ['NONE'], Interval: 200e6, Retries: 1 });
  assert.match(await psStatus('hi-off'), /^Up [^(]*$/);
  assert.deepEqual((await events('hi-off', t0)).filter((e) => e.startsWith('exec_')), [], 'no probe ran');
  assert.deepEqual(lines((await ok(['ps', '--filter', 'name=^hi-', '--filter', 'health=none', '--format', '{{.Names}}'])).stdout), ['hi-off']);

  await ok(['create', '--name', 'hi-mixed', '--health-timeout', '2s', 'hc-image:1', 'sleep', '600']);
  assert.deepEqual((await inspect('hi-mixed')).Config.Healthcheck, { Test: ['CMD-SHELL', 'cat /etc/hostname'], Interval: 200e6, Timeout: 2e9, Retries: 1 });
  assert.equal((await inspect('hi-mixed')).State.Health, undefined, 'no health state before the first start');
  await ok(['rm', '-f', 'hi-on', 'hi-off', 'hi-mixed']);
  await ok(['rmi', 'hc-image:1']);
});

test("bad health settings get dockerd's (and the docker CLI's) errors and leave nothing", { timeout: 90_000 }, async () => {
  const ids = async () => ((await d.api('GET', '/containers/json?all=1')).body as Array<{ Id: string }>).map((c) => c.Id).sort();
  const before = await ids();
  const daemonSide: Array<[string[], RegExp]> = [
    [['--health-cmd', 'true', '--health-interval', '100us'], /Interval in Healthcheck cannot be less than 1ms/],
    [['--health-cmd', 'true', '--health-timeout', '10us'], /Timeout in Healthcheck cannot be less than 1ms/],
    [['--health-cmd', 'true', '--health-start-period', '1us'], /StartPeriod in Healthcheck cannot be less than 1ms/],
    [['--health-cmd', 'true', '--health-start-interval', '1us'], /StartInterval in Healthcheck cannot be less than 1ms/],
  ];
  for (const client of ['docker', 'berth'] as const) {
    for (const [flags, message] of daemonSide) {
      const r = client === 'docker' ? await d.docker(['run', '-d', ...flags, 'busybox', 'true']) : await d.berth(['run', '-d', ...flags, 'busybox', 'true']);
      assert.equal(r.code, 125, `${client} ${flags.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    const negative = client === 'docker' ? await d.docker(['run', '--health-retries', '-1', 'busybox', 'true']) : await d.berth(['run', '--health-retries', '-1', 'busybox', 'true']);
    assert.equal(negative.code, 125);
    assert.match(negative.stderr, /--health-retries cannot be negative/);
    const conflict = client === 'docker' ? await d.docker(['run', '--no-healthcheck', '--health-cmd', 'true', 'busybox', 'true']) : await d.berth(['run', '--no-healthcheck', '--health-cmd', 'true', 'busybox', 'true']);
    assert.equal(conflict.code, 125);
    assert.match(conflict.stderr, /--no-healthcheck conflicts with --health-\* options/);
  }
  const unit = await d.berth(['run', '--health-interval', '1x', 'busybox', 'true']);
  assert.equal(unit.code, 125);
  assert.match(unit.stderr, /invalid argument "1x" for "--health-interval" flag: time: unknown unit "x" in duration "1x"/);
  const api = await d.api('POST', '/containers/create', { Image: 'busybox', Cmd: ['true'], Healthcheck: { Test: ['CMD', 'true'], Retries: -2 } });
  assert.equal(api.status, 400);
  assert.deepEqual(api.body, { message: 'Retries in Healthcheck cannot be negative' });
  assert.deepEqual(await ids(), before, 'a refused create left a container');
});

test('berth run --health-* and berth ps show the same as the docker CLI', { timeout: 60_000 }, async () => {
  await ok(['run', '-d', '--name', 'hb', '--health-cmd', 'echo ok', '--health-interval', '200ms', '--health-retries', '2', 'busybox', 'sleep', '600'], 'berth');
  await waitFor('hb', 'healthy', (c) => c.State.Health?.Status === 'healthy');
  assert.match(await psStatus('hb', 'berth'), /^Up .* \(healthy\)$/);
  assert.equal((await ok(['inspect', '--format', '{{.State.Health.Status}} {{len .State.Health.Log}}', 'hb'], 'berth')).stdout.trim().split(' ')[0], 'healthy');
  assert.deepEqual((await inspect('hb')).Config.Healthcheck, { Test: ['CMD-SHELL', 'echo ok'], Interval: 200e6, Retries: 2 });
  await ok(['rm', '-f', 'hb'], 'berth');
});

test('after the daemon is killed, the next one resumes the monitors of the containers it adopts', { timeout: 120_000 }, async () => {
  await ok(['run', '-d', '--name', 'hc-adopt', '--health-cmd', 'true', '--health-interval', '300ms', 'busybox', 'sleep', '600']);
  await waitFor('hc-adopt', 'healthy', (c) => c.State.Health?.Status === 'healthy');
  await d.restart();
  const restartedAt = Date.now();
  const adopted = await inspect('hc-adopt');
  assert.equal(adopted.State.Status, 'running');
  assert.equal(adopted.State.Health?.Status, 'healthy', 'the recorded status survives the restart');
  const resumed = await waitFor('hc-adopt', 'a probe after the restart', (c) => c.State.Health!.Log.some((e) => Date.parse(e.Start) >= restartedAt));
  assert.equal(resumed.State.Health!.Status, 'healthy');
  assert.equal(resumed.State.Health!.Log[resumed.State.Health!.Log.length - 1]!.ExitCode, 0);
  await ok(['rm', '-f', 'hc-adopt']);
});

test('nothing is left behind', { timeout: 60_000 }, async () => {
  await ok(['rm', '-f', 'hc-ok']);
  assert.deepEqual((await d.api('GET', '/containers/json?all=1')).body, []);
  assert.deepEqual(leftovers(d), { mounts: [], cgroups: [], processes: [], files: [] });
});
