/**
 * berthd and `berth registry serve` together, driven by the real docker CLI and
 * by berth's own: push, remove, pull back, run; login to a registry with a password.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, loadTestImages, printLogTail, type Daemon } from '../harness.js';
import { startBerthRegistry, startDistribution, skopeoInspect, type Distribution } from '../registry-fixtures.js';

let d: Daemon;
let reg: Distribution;
let locked: Distribution;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
  reg = await startBerthRegistry();
  locked = await startBerthRegistry({ htpasswd: { user: 'ada', password: 'lovelace' } });
});

after(async () => {
  await d?.stop();
  await reg?.stop();
  await locked?.stop();
});

async function ok(tool: 'docker' | 'berth', args: string[], input?: string) {
  const r = await d[tool](args, { input });
  if (r.code !== 0) printLogTail(d, `${tool} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `${tool} ${args.join(' ')}: ${r.stderr}`);
  return r;
}

test('docker push to berth registry serve, rmi, pull back and run', async () => {
  const ref = `${reg.host}/tools/busybox:v1`;
  await ok('docker', ['tag', 'busybox', ref]);
  const push = await ok('docker', ['push', ref]);
  assert.match(push.stdout, new RegExp(`The push refers to repository \\[${reg.host}/tools/busybox\\]`));
  assert.match(push.stdout, /Pushed/);
  const digest = /v1: digest: (sha256:[0-9a-f]{64}) size: \d+/.exec(push.stdout)?.[1];
  assert.ok(digest, push.stdout);
  const inspected = await skopeoInspect(ref);
  assert.equal(JSON.parse(inspected.raw).layers.length, 1);

  await ok('docker', ['rmi', ref]);
  const pull = await ok('docker', ['pull', ref]);
  assert.match(pull.stdout, /v1: Pulling from tools\/busybox/);
  assert.match(pull.stdout, new RegExp(`Digest: ${digest}`));
  assert.match(pull.stdout, new RegExp(`Status: (Downloaded newer image|Image is up to date) for ${ref}`));
  assert.equal((await ok('docker', ['run', '--rm', ref, 'echo', 'from the registry'])).stdout, 'from the registry\n');

  const byDigest = `${reg.host}/tools/busybox@${digest}`;
  await ok('docker', ['pull', byDigest]);
  assert.match((await ok('docker', ['image', 'inspect', '-f', '{{json .RepoDigests}}', ref])).stdout, new RegExp(digest!));
});

test('docker push --all-tags pushes every local tag of the repository, and only those', async () => {
  const repo = `${reg.host}/every/tag`;
  await ok('docker', ['tag', 'busybox', `${repo}:one`]);
  await ok('docker', ['tag', 'busybox', `${repo}:two`]);
  await ok('docker', ['tag', 'hello-world', `${repo}:three`]);
  await ok('docker', ['tag', 'busybox', `${reg.host}/every/other:left-out`]);
  const push = await ok('docker', ['push', '--all-tags', repo]);
  assert.equal(push.stdout.match(/The push refers to repository/g)?.length, 1, push.stdout);
  for (const t of ['one', 'two', 'three']) assert.match(push.stdout, new RegExp(`${t}: digest: sha256:[0-9a-f]{64} size: \\d+`));
  const tags = await fetch(`${reg.url}/v2/every/tag/tags/list`).then((r) => r.json() as Promise<{ tags: string[] }>);
  assert.deepEqual(tags.tags.sort(), ['one', 'three', 'two']);
  assert.equal((await fetch(`${reg.url}/v2/every/other/tags/list`)).status, 404);
  // A tag in the name still pushes just that tag.
  await ok('docker', ['tag', 'busybox', `${repo}:four`]);
  await ok('docker', ['push', `${repo}:four`]);
  const after = await fetch(`${reg.url}/v2/every/tag/tags/list`).then((r) => r.json() as Promise<{ tags: string[] }>);
  assert.deepEqual(after.tags.sort(), ['four', 'one', 'three', 'two']);
  await ok('docker', ['rmi', ...['one', 'two', 'three', 'four'].map((t) => `${repo}:${t}`), `${reg.host}/every/other:left-out`]);
});

test('berth push and pull draw docker\'s progress; berth run --pull always fetches again', async () => {
  const ref = `${reg.host}/hello:latest`;
  await ok('berth', ['tag', 'hello-world', ref]);
  const push = await ok('berth', ['push', ref]);
  assert.match(push.stdout, /latest: digest: sha256:[0-9a-f]{64} size: \d+/);
  await ok('berth', ['rmi', ref, 'hello-world']);
  const pull = await ok('berth', ['pull', ref]);
  assert.match(pull.stdout, /Pull complete/);
  assert.match(pull.stdout, new RegExp(`Status: Downloaded newer image for ${ref}`));
  const run = await ok('berth', ['run', '--rm', '--pull', 'always', ref]);
  assert.match(run.stdout, /Hello from berth!/);
  assert.match(run.stderr, /Image is up to date|Already exists/);
  const never = await d.berth(['run', '--rm', '--pull', 'never', `${reg.host}/absent:v1`]);
  assert.equal(never.code, 125);
  assert.match(never.stderr, /No such image/);
});

test('berth login / logout against a registry with htpasswd', async () => {
  const ref = `${locked.host}/private/busybox:v1`;
  await ok('berth', ['tag', 'busybox', ref]);
  const anonymous = await d.berth(['push', ref]);
  assert.notEqual(anonymous.code, 0);
  assert.match(anonymous.stderr + anonymous.stdout, /unauthorized|authentication required|no basic auth credentials/i);

  const wrong = await d.berth(['login', '-u', 'ada', '--password-stdin', locked.host], { input: 'babbage\n' });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /unauthorized|incorrect username or password/i);
  const right = await ok('berth', ['login', '-u', 'ada', '--password-stdin', locked.host], 'lovelace\n');
  assert.match(right.stdout, /Login Succeeded/);
  await ok('berth', ['push', ref]);
  await ok('berth', ['rmi', ref]);
  await ok('berth', ['pull', ref]);
  const out = await ok('berth', ['logout', locked.host]);
  assert.equal(out.stdout, `Removing login credentials for ${locked.host}\n`);
  await ok('berth', ['rmi', ref]);
  assert.notEqual((await d.berth(['pull', ref])).code, 0, 'after logout the registry refuses again');
});

test('docker search asks the registry a term names: berth registry answers over its repositories, distribution has no search', async () => {
  await ok('docker', ['tag', 'busybox', `${reg.host}/search/busybox-mini:1`]);
  await ok('docker', ['tag', 'busybox', `${reg.host}/search/other:1`]);
  await ok('docker', ['push', `${reg.host}/search/busybox-mini:1`]);
  await ok('docker', ['push', `${reg.host}/search/other:1`]);

  const found = await ok('docker', ['search', `${reg.host}/busybox-mini`]);
  assert.match(found.stdout, /^NAME\s+DESCRIPTION\s+STARS\s+OFFICIAL\n/);
  assert.match(found.stdout, /^search\/busybox-mini\s+0\s*$/m);
  assert.doesNotMatch(found.stdout, /search\/other/);
  const mine = await ok('berth', ['search', '--format', '{{.Name}} {{.StarCount}}', `${reg.host}/search/`]);
  assert.deepEqual(mine.stdout.trim().split('\n').sort(), ['search/busybox-mini 0', 'search/other 0']);
  assert.equal((await ok('docker', ['search', '--limit', '1', '--format', '{{.Name}}', `${reg.host}/search/`])).stdout.split('\n').filter(Boolean).length, 1);
  assert.equal((await ok('docker', ['search', '--filter', 'is-official=true', '--format', '{{.Name}}', `${reg.host}/search/`])).stdout, '');

  const bad = await d.docker(['search', '--limit', '101', `${reg.host}/x`]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /limit 101 is outside the range of \[1, 100\]/);

  const dist = await startDistribution();
  try {
    const none = await d.docker(['search', `${dist.host}/busybox`]);
    assert.equal(none.code, 1);
    assert.equal(none.stderr, 'Error response from daemon: Unexpected status code 404\n');
  } finally {
    await dist.stop();
  }
});
