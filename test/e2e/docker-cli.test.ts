/**
 * The real docker CLI (28.x) against berthd: the walk a user takes in the
 * foundation issue, checked the way the user would read it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cgroupMounts, startDaemon, loadTestImages, printLogTail, type Daemon } from '../harness.js';

let d: Daemon;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
});

after(async () => {
  await d?.stop();
});

async function ok(args: string[], input?: string) {
  const r = await d.docker(args, { input });
  if (r.code !== 0) printLogTail(d, `docker ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r;
}

test('docker version and info describe berthd', async () => {
  const v = await ok(['version']);
  assert.match(v.stdout, /Server: berth/);
  assert.match(v.stdout, /API version:\s+1\.50 \(minimum version 1\.24\)/);
  const info = await ok(['info']);
  assert.match(info.stdout, /Storage Driver: overlay2/);
  assert.match(info.stdout, /Backing Filesystem: \w+/);
  assert.match(info.stdout, /Supports d_type: true/);
  // berthd hands runc cgroupfs paths (<cgroup-parent>/<id>) on any host, and tells v1 from v2 by
  // what is mounted at /sys/fs/cgroup.
  const v2 = cgroupMounts().some((h) => h.path === '/sys/fs/cgroup' && h.version === 2);
  assert.match(info.stdout, /Cgroup Driver: cgroupfs\n/);
  assert.match(info.stdout, new RegExp(`Cgroup Version: ${v2 ? 2 : 1}\\n`));
  assert.match(info.stdout, new RegExp(`Docker Root Dir: ${d.dataRoot}`));
  const fmt = await ok(['info', '--format', '{{.Images}} {{.NCPU}} {{.OSType}}']);
  assert.match(fmt.stdout.trim(), /^2 \d+ linux$/);
});

test('swarm and plugin commands get dockerd\'s answers for a node in no swarm with no plugins', async () => {
  const notManager = 'Error response from daemon: This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.\n';
  for (const args of [['node', 'ls'], ['service', 'ls'], ['secret', 'ls'], ['config', 'ls'], ['stack', 'ls']]) {
    const r = await d.docker(args);
    assert.equal(r.code, 1, args.join(' '));
    assert.equal(r.stderr, notManager, args.join(' '));
  }
  assert.equal((await ok(['info', '--format', '{{.Swarm.LocalNodeState}}'])).stdout, 'inactive\n');
  const init = await d.docker(['swarm', 'init']);
  assert.equal(init.code, 1);
  assert.equal(init.stderr, 'Error response from daemon: swarm mode is not supported by berth\n');
  assert.equal((await d.docker(['swarm', 'leave'])).stderr, 'Error response from daemon: This node is not part of a swarm\n');
  assert.equal((await ok(['plugin', 'ls', '--format', '{{.Name}}'])).stdout, '');
  assert.equal((await d.docker(['plugin', 'inspect', 'nosuch'])).stderr, 'Error response from daemon: plugin "nosuch" not found\n');
  assert.match((await d.docker(['plugin', 'install', '--grant-all-permissions', 'vieux/sshfs'])).stderr, /plugins are not supported by berth/);
});

test('docker run --rm hello-world prints the greeting and leaves no container', async () => {
  const r = await ok(['run', '--rm', 'hello-world']);
  assert.match(r.stdout, /Hello from berth!/);
  const ps = await ok(['ps', '-aq']);
  assert.equal(ps.stdout.trim(), '');
});

test('docker run passes both streams and the exit code through', async () => {
  const r = await d.docker(['run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
  assert.equal(r.code, 3);
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, 'err\n');
});

test('docker run -i feeds stdin to the container', async () => {
  const r = await ok(['run', '-i', '--rm', 'busybox', 'sh', '-c', 'tr a-z A-Z'], 'hello stdin\n');
  assert.equal(r.stdout, 'HELLO STDIN\n');
});

test('a detached container: run -d, ps, logs, inspect, stop, rm', async () => {
  const run = await ok(['run', '-d', '--name', 'x1', 'busybox', 'sh', '-c', 'trap "exit 0" TERM; echo started; while true; do sleep 0.1; done']);
  const id = run.stdout.trim();
  assert.match(id, /^[0-9a-f]{64}$/);

  const ps = await ok(['ps']);
  const lines = ps.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/);
  const row = lines.find((l) => l.startsWith(id.slice(0, 12)));
  assert.ok(row, ps.stdout);
  assert.match(row!, /busybox\s+"sh -c trap \\"exit 0\\"…"\s+.*Up .*\s+x1$/);

  for (let i = 0; i < 50; i++) {
    if ((await ok(['logs', 'x1'])).stdout === 'started\n') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal((await ok(['logs', 'x1'])).stdout, 'started\n');
  assert.equal((await ok(['inspect', '-f', '{{.State.Status}} {{.Name}} {{.Config.Image}}', 'x1'])).stdout, 'running /x1 busybox\n');

  const t0 = Date.now();
  assert.equal((await ok(['stop', 'x1'])).stdout, 'x1\n');
  assert.ok(Date.now() - t0 < 5000, 'the TERM trap ends the container before the 10 s timeout');
  assert.equal((await ok(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'x1'])).stdout, 'exited 0\n');
  const psa = await ok(['ps', '-a', '--format', '{{.Names}} {{.Status}}']);
  assert.match(psa.stdout, /^x1 Exited \(0\) .* ago$/m);
  assert.equal((await ok(['rm', 'x1'])).stdout, 'x1\n');
  const gone = await d.docker(['inspect', 'x1']);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /No such object: x1|No such container: x1/);
});

test('docker images, tag, inspect and rmi', async () => {
  const images = await ok(['images']);
  assert.match(images.stdout, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/m);
  assert.match(images.stdout, /^busybox\s+latest\s+[0-9a-f]{12}\s+.*ago\s+[\d.]+MB$/m);
  assert.match(images.stdout, /^hello-world\s+latest\s+[0-9a-f]{12}\s+/m);

  await ok(['tag', 'busybox', 'mybox:v1']);
  const id = (await ok(['inspect', '-f', '{{.Id}}', 'mybox:v1'])).stdout.trim();
  assert.equal(id, (await ok(['inspect', '-f', '{{.Id}}', 'busybox'])).stdout.trim());
  assert.equal((await ok(['rmi', 'mybox:v1'])).stdout, 'Untagged: mybox:v1\n');
  const still = await ok(['images', '-q', 'busybox']);
  assert.equal(still.stdout.trim(), id.slice(7, 19));

  await ok(['tag', 'hello-world', 'hello2']);
  const helloId = (await ok(['inspect', '-f', '{{.Id}}', 'hello2'])).stdout.trim();
  const byId = await d.docker(['rmi', helloId.slice(7, 19)]);
  assert.equal(byId.code, 1);
  assert.match(byId.stderr, new RegExp(`conflict: unable to delete ${helloId.slice(7, 19)} \\(must be forced\\) - image is referenced in multiple repositories`));
  assert.equal((await ok(['rmi', 'hello2'])).stdout, 'Untagged: hello2:latest\n');
  const last = await ok(['rmi', 'hello-world']);
  assert.equal(last.stdout.split('\n')[0], 'Untagged: hello-world:latest');
  assert.match(last.stdout, new RegExp(`^Deleted: ${helloId}$`, 'm'));
  assert.doesNotMatch((await ok(['images'])).stdout, /hello-world/);
  await loadTestImages(d);
});

test('docker errors: missing image, name conflict, command not found, not executable', async () => {
  const missing = await d.docker(['run', '--rm', 'nosuchimage:v9']);
  assert.equal(missing.code, 125);
  assert.match(missing.stderr, /Unable to find image 'nosuchimage:v9' locally/);

  const bad = await d.docker(['run', '--rm', 'UPPER']);
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /invalid reference format/);

  await ok(['create', '--name', 'taken', 'busybox', 'true']);
  const conflict = await d.docker(['run', '--name', 'taken', 'busybox', 'true']);
  assert.equal(conflict.code, 125);
  assert.match(conflict.stderr, /Conflict\. The container name "\/taken" is already in use by container "[0-9a-f]{64}"/);
  await ok(['rm', 'taken']);

  const notFound = await d.docker(['run', '--rm', 'busybox', 'nope']);
  assert.equal(notFound.code, 127);
  assert.match(notFound.stderr, /executable file not found in \$PATH/);

  const notExec = await d.docker(['run', '--rm', 'busybox', '/etc/passwd']);
  assert.equal(notExec.code, 126);
  assert.match(notExec.stderr, /permission denied/);

  assert.equal((await ok(['ps', '-aq'])).stdout.trim(), '', 'failed --rm runs leave no container');
});

test('docker events streams a container\'s lifecycle', async () => {
  const until = String(Math.floor(Date.now() / 1000) + 4);
  const events = d.docker(['events', '--filter', 'container=ev1', '--format', '{{.Type}} {{.Action}}', '--until', until]);
  await new Promise((r) => setTimeout(r, 500));
  await ok(['run', '--rm', '--name', 'ev1', 'busybox', 'true']);
  const r = await events;
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), ['container create', 'container attach', 'container start', 'container die', 'container destroy']);
});
