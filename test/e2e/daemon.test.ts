/**
 * The daemon itself, as the README promises it: containers survive a graceful restart and are
 * adopted, daemon.json keys take effect on a real berthd (and bad files are start-up errors), and
 * two daemons side by side keep to their own roots and cgroups.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { cgroupMounts, loadTestImages, paths, startDaemon, stopAllDaemons, withDaemon, type Daemon } from '../harness.js';

after(() => stopAllDaemons());

async function ok(d: Daemon, args: string[]): Promise<string> {
  const r = await d.docker(args);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Follow `docker logs -f` until a line matches, then stop following; rejects after timeoutMs. */
function followUntil(d: Daemon, name: string, re: RegExp, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(paths.docker, ['logs', '-f', name], { env: d.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`docker logs -f ${name}: no line matching ${re} within ${timeoutMs} ms; got:\n${out}`));
    }, timeoutMs);
    p.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      const m = out.split('\n').find((l) => re.test(l));
      if (m) {
        clearTimeout(timer);
        p.kill('SIGKILL');
        resolve(m);
      }
    });
  });
}

const ticker = ['sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done'];
const lastTick = (logs: string) => Math.max(...[...logs.matchAll(/^tick (\d+)$/gm)].map((m) => Number(m[1])));

test('a graceful restart (SIGTERM) leaves a running container running, and the new daemon adopts it', { timeout: 120_000 }, () =>
  withDaemon(async (d) => {
    await loadTestImages(d);
    await ok(d, ['run', '-d', '--name', 'graceful', 'busybox', ...ticker]);
    const pid = Number(await ok(d, ['inspect', '-f', '{{.State.Pid}}', 'graceful']));
    assert.ok(pid > 0 && alive(pid));
    await followUntil(d, 'graceful', /^tick 3$/);
    const before = lastTick(await ok(d, ['logs', 'graceful']));

    await d.restart({ graceful: true });

    assert.ok(alive(pid), 'the container process survived the daemon');
    assert.equal(await ok(d, ['inspect', '-f', '{{.State.Running}} {{.State.Pid}}', 'graceful']), `true ${pid}`);
    assert.match(await ok(d, ['ps', '--format', '{{.Names}} {{.Status}}']), /^graceful Up /);
    // Its output goes on, and logs -f on the new daemon streams it.
    await followUntil(d, 'graceful', new RegExp(`^tick (${before + 5}|${before + 6}|${before + 7})$`));

    await ok(d, ['stop', '-t', '1', 'graceful']);
    assert.equal(alive(pid), false);
    // sh as PID 1 ignores TERM, so stop kills it after the 1 s grace.
    assert.equal(await ok(d, ['inspect', '-f', '{{.State.Running}} {{.State.ExitCode}}', 'graceful']), 'false 137');
    await ok(d, ['rm', 'graceful']);
    assert.equal(await ok(d, ['ps', '-aq']), '');
  }),
);

test('daemon.json keys take effect on a real berthd', { timeout: 120_000 }, () =>
  withDaemon(
    async (d) => {
      // hosts, pidfile: the harness put both outside the exec root, so only the keys lead there; the
      // socket answers and the pidfile names the running berthd.
      assert.equal(d.socket, path.join(d.root, 'berth.sock'));
      assert.ok(fs.statSync(d.socket).isSocket());
      assert.equal(fs.existsSync(path.join(d.execRoot, 'berth.sock')), false);
      const pid = Number(fs.readFileSync(path.join(d.root, 'berthd.pid'), 'utf8').trim());
      // berthd's title is "berthd <its arguments>", one string (see daemon-process.test.ts).
      assert.ok(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(` ${path.join(d.root, 'daemon.json')}`), 'the pidfile names this berthd');
      // data-root, debug
      const info = await ok(d, ['info', '--format', '{{.DockerRootDir}} {{.Debug}} {{.LoggingDriver}}']);
      assert.equal(info, `${d.dataRoot} true k8s-file`);
      // exec-root, cgroup-parent: the container's state is under the one, its cgroup under the other.
      await loadTestImages(d);
      const id = await ok(d, ['run', '-d', 'busybox', 'sleep', '60']);
      assert.ok(fs.existsSync(path.join(d.execRoot, 'c', id)), 'container state under exec-root');
      const ctr = Number(await ok(d, ['inspect', '-f', '{{.State.Pid}}', id]));
      const mem = cgroupMounts().find((h) => h.controllers.includes('memory'))!;
      const procs = fs.readFileSync(path.join(mem.path, d.cgroupParent, id, 'cgroup.procs'), 'utf8');
      assert.ok(procs.split('\n').includes(String(ctr)), procs);
      await ok(d, ['rm', '-f', id]);
    },
    { rootsIn: 'config', config: { debug: true, 'log-driver': 'k8s-file' } },
  ),
);

test('a bad daemon.json is a start-up error with a clear message', { timeout: 60_000 }, async () => {
  await assert.rejects(startDaemon({ rootsIn: 'config', config: { 'data-rot': '/x' } }),
    /the following directives don't match any configuration option: data-rot/);
  // The harness passes --data-root as a flag; the file sets it too.
  await assert.rejects(startDaemon({ config: { 'data-root': '/tmp/elsewhere' } }),
    /the following directives are specified both as a flag and in the configuration file: data-root/);
  await assert.rejects(startDaemon({ rootsIn: 'config', config: { debug: 'yes' } }),
    /"debug" has a value of the wrong type/);
  // Only k8s-file logs are written; a driver or option berth would ignore is refused, not dropped.
  await assert.rejects(startDaemon({ rootsIn: 'config', config: { 'log-driver': 'json-file' } }),
    /logger: no log driver named 'json-file' is registered/);
  await assert.rejects(startDaemon({ rootsIn: 'config', config: { 'log-opts': { 'max-size': '10m' } } }),
    /unknown log opt 'max-size' for k8s-file log driver/);
  await assert.rejects(startDaemon({ rootsIn: 'config', config: { 'storage-opts': ['size=1G'] } }),
    /overlay2: unknown option size/);
  await assert.rejects(startDaemon({ rootsIn: 'config', config: { 'storage-driver': 'zfs' } }),
    /zfs needs the zfs kernel module and a zpool: zfs is not in \/proc\/filesystems on this host/);
  await assert.rejects(startDaemon({ rootsIn: 'config', config: { mtu: 'big' } }),
    /"mtu" has a value of the wrong type/);
});

test('two daemons side by side keep to their own containers, images and cgroups', { timeout: 180_000 }, async () => {
  const a = await startDaemon();
  const b = await startDaemon();
  try {
    assert.notEqual(a.cgroupParent, b.cgroupParent);
    await loadTestImages(a);
    await loadTestImages(b);
    await ok(a, ['tag', 'busybox', 'only-in-a:v1']);
    assert.match(await ok(a, ['images', '--format', '{{.Repository}}']), /^only-in-a$/m);
    assert.doesNotMatch(await ok(b, ['images', '--format', '{{.Repository}}']), /only-in-a/);

    const ca = await ok(a, ['run', '-d', '--name', 'ca', 'busybox', 'sleep', '120']);
    const cb = await ok(b, ['run', '-d', '--name', 'cb', 'busybox', 'sleep', '120']);
    assert.equal(await ok(a, ['ps', '-q', '--no-trunc']), ca);
    assert.equal(await ok(b, ['ps', '-q', '--no-trunc']), cb);
    assert.equal((await b.docker(['inspect', 'ca'])).code, 1);
    const pidB = Number(await ok(b, ['inspect', '-f', '{{.State.Pid}}', 'cb']));
    const mem = cgroupMounts().find((h) => h.controllers.includes('memory'))!;
    assert.ok(fs.existsSync(path.join(mem.path, a.cgroupParent, ca)));
    assert.ok(fs.existsSync(path.join(mem.path, b.cgroupParent, cb)));

    await a.stop();
    assert.ok(alive(pidB), "stopping one daemon left the other's container running");
    assert.equal(await ok(b, ['inspect', '-f', '{{.State.Running}}', 'cb']), 'true');
    await ok(b, ['rm', '-f', 'cb']);
  } finally {
    await a.stop();
    await b.stop();
  }
});
