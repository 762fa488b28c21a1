/**
 * `docker events` against berthd with the real docker CLI: the history replayed between two times,
 * live image events, filters, and dockerd's 400 for a bad time.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, loadTestImages, printLogTail, type Daemon } from '../harness.js';
import { startBerthRegistry, type Distribution } from '../registry-fixtures.js';

let d: Daemon;
let reg: Distribution;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
  reg = await startBerthRegistry();
});

after(async () => {
  await d?.stop();
  await reg?.stop();
});

async function ok(args: string[]) {
  const r = await d.docker(args);
  if (r.code !== 0) printLogTail(d, `docker ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r;
}

/** Now as the docker CLI sends times: unix seconds with a fraction. */
const now = () => (Date.now() / 1000).toFixed(3);
const lines = (s: string) => s.trim().split('\n').filter(Boolean);

/** Resolves once the daemon has `n` events listeners (docker info's NEventsListener). */
async function listeners(n: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const info = await d.api('GET', '/info');
    if ((info.body as { NEventsListener: number }).NEventsListener >= n) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`no ${n} events listener(s) after 5 s`);
}

test('docker events --since --until replays a run --rm: create, attach, start, die, destroy', { timeout: 60_000 }, async () => {
  const t0 = now();
  await ok(['run', '--rm', '--name', 'ev-replay', 'busybox', 'true']);
  const t1 = now();
  const r = await ok(['events', '--since', t0, '--until', t1, '--filter', 'type=container', '--format', '{{.Type}} {{.Action}}']);
  assert.deepEqual(lines(r.stdout), ['container create', 'container attach', 'container start', 'container die', 'container destroy']);
  // With the network's events, in dockerd's order: connect before start, disconnect after die.
  const all = await ok(['events', '--since', t0, '--until', t1, '--filter', 'type=container', '--filter', 'type=network', '--format', '{{.Type}} {{.Action}}']);
  assert.deepEqual(lines(all.stdout), ['container create', 'container attach', 'network connect', 'container start', 'container die', 'network disconnect', 'container destroy']);

  // The same over the API, as dockerd writes it.
  const api = await d.api('GET', `/events?since=${t0}&until=${t1}&filters=${encodeURIComponent(JSON.stringify({ event: ['die'] }))}`);
  assert.equal(api.status, 200);
  // One line is one JSON document, which the harness has parsed already.
  const die = api.body as Record<string, unknown> & { Actor: { ID: string; Attributes: Record<string, string> } };
  assert.equal(die.status, 'die');
  assert.equal(die.id, die.Actor.ID);
  assert.equal(die.from, 'busybox');
  assert.equal(die.Type, 'container');
  assert.equal(die.scope, 'local');
  assert.deepEqual({ name: die.Actor.Attributes.name, image: die.Actor.Attributes.image, exitCode: die.Actor.Attributes.exitCode }, { name: 'ev-replay', image: 'busybox', exitCode: '0' });
  assert.equal(typeof die.time, 'number');
  assert.ok(Math.abs(Number(die.time) - Number(t1)) < 30, 'time is in seconds');
});

test('docker events --filter container=<name> and --filter event=die narrow the stream', { timeout: 60_000 }, async () => {
  const t0 = now();
  assert.equal((await d.docker(['run', '--rm', '--name', 'ev-a', '--label', 'team=a', 'busybox', 'sh', '-c', 'exit 3'])).code, 3);
  await ok(['run', '--rm', '--name', 'ev-b', 'busybox', 'true']);
  const t1 = now();
  const fmt = ['--format', '{{.Action}} {{.Actor.Attributes.name}}'];
  const byName = await ok(['events', '--since', t0, '--until', t1, '--filter', 'container=ev-a', ...fmt]);
  assert.deepEqual(lines(byName.stdout), ['create ev-a', 'attach ev-a', 'start ev-a', 'die ev-a', 'destroy ev-a']);
  const dies = await ok(['events', '--since', t0, '--until', t1, '--filter', 'event=die', '--format', '{{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}']);
  assert.deepEqual(lines(dies.stdout), ['ev-a 3', 'ev-b 0']);
  const both = await ok(['events', '--since', t0, '--until', t1, '--filter', 'event=die', '--filter', 'label=team=a', ...fmt]);
  assert.deepEqual(lines(both.stdout), ['die ev-a']);
});

test('a live docker events stream sees an image tag and untag', { timeout: 60_000 }, async () => {
  const base = (await d.api('GET', '/info')).body as { NEventsListener: number };
  const since = now();
  const until = String(Math.floor(Date.now() / 1000) + 5);
  // --since now: --until alone would also replay every kept image event (loading the test images made some).
  const stream = d.docker(['events', '--since', since, '--filter', 'type=image', '--format', '{{.Type}} {{.Action}} {{.Actor.Attributes.name}}', '--until', until]);
  await listeners(base.NEventsListener + 1);
  await ok(['tag', 'busybox', 'ev-tag:1']);
  const id = (await ok(['image', 'inspect', '--format', '{{.Id}}', 'ev-tag:1'])).stdout.trim();
  await ok(['rmi', 'ev-tag:1']);
  const r = await stream;
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(lines(r.stdout), ['image tag ev-tag:1', `image untag ${id}`]);
});

test('push, pull and import are image events, named as dockerd names them', { timeout: 120_000 }, async () => {
  const repo = `${reg.host}/ev/busybox`;
  const t0 = now();
  await ok(['tag', 'busybox', `${repo}:v1`]);
  await ok(['push', `${repo}:v1`]);
  await ok(['rmi', `${repo}:v1`]);
  await ok(['pull', `${repo}:v1`]);
  const imported = await d.docker(['import', '-', 'ev-imported:1'], { input: Buffer.alloc(1024) });
  assert.equal(imported.code, 0, imported.stderr);
  const id = imported.stdout.trim();
  const t1 = now();
  const r = await ok(['events', '--since', t0, '--until', t1, '--filter', 'type=image', '--format', '{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}']);
  const busybox = (await ok(['image', 'inspect', '--format', '{{.Id}}', `${repo}:v1`])).stdout.trim();
  assert.deepEqual(lines(r.stdout), [
    `tag ${busybox} ${repo}:v1`,
    `push ${repo}:v1 ${repo}`,
    // rmi of the tag also drops the repository's digest reference the push recorded: one untag per Untagged.
    `untag ${busybox} ${busybox}`,
    `untag ${busybox} ${busybox}`,
    `pull ${repo}:v1 ${repo}`,
    `tag ${id} ev-imported:1`,
    `import ${id} ${id}`,
  ]);
  const byImage = await ok(['events', '--since', t0, '--until', t1, '--filter', `image=${repo}`, '--format', '{{.Action}}']);
  assert.deepEqual(lines(byImage.stdout), ['tag', 'push', 'pull']);
});

test('a bad --since is refused: by the docker CLI, and by the daemon with Docker\'s 400', { timeout: 30_000 }, async () => {
  const cli = await d.docker(['events', '--since', 'not-a-time', '--until', now()]);
  assert.notEqual(cli.code, 0);
  const api = await d.api('GET', '/events?since=not-a-time');
  assert.equal(api.status, 400);
  assert.deepEqual(api.body, { message: 'strconv.ParseInt: parsing "not-a-time": invalid syntax' });
  const key = await d.api('GET', `/events?filters=${encodeURIComponent('{"colour":["red"]}')}`);
  assert.equal(key.status, 400);
  assert.deepEqual(key.body, { message: "invalid filter 'colour'" });
});

test('stop, kill, restart and exec publish dockerd\'s events, with the signal and the exec\'s exit code', { timeout: 90_000 }, async () => {
  await ok(['run', '-d', '--name', 'ev-verbs', 'busybox', 'sleep', '1000']);
  const t0 = now();
  const exec = await d.docker(['exec', 'ev-verbs', 'sh', '-c', 'exit 3']);
  assert.equal(exec.code, 3);
  await ok(['stop', '-t', '1', 'ev-verbs']);
  await ok(['restart', '-t', '1', 'ev-verbs']);
  await ok(['kill', 'ev-verbs']);
  const t1 = now();
  const r = await ok(['events', '--since', t0, '--until', t1, '--filter', 'container=ev-verbs',
    '--format', '{{.Action}} {{index .Actor.Attributes "signal"}}{{index .Actor.Attributes "exitCode"}}']);
  const got = lines(r.stdout).map((l) => l.trim());
  const execEvents = ['exec_create: sh -c exit 3', 'exec_start: sh -c exit 3', 'exec_die 3'];
  // busybox sleep as PID 1 ignores SIGTERM, so each stop ends with a SIGKILL after the timeout.
  const stop = ['kill 15', 'kill 9', 'die 137', 'stop'];
  // restart of a stopped container only starts it.
  assert.deepEqual(got, [...execEvents, ...stop, 'start', 'restart', 'kill 9', 'die 137']);
  await ok(['rm', 'ev-verbs']);
});
