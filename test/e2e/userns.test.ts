/**
 * Daemon-wide userns-remap: container root is an unprivileged uid on the host (read from the host's
 * /proc), image files still look root-owned inside, and what root writes is owned by the remapped uid
 * on the host. The test adds its own /etc/subuid and /etc/subgid ranges and removes them afterwards.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startDaemon, loadTestImages, leftovers, type Daemon } from '../harness.js';

let d: Daemon;
/** A uid with no passwd entry, only subordinate ranges: unique per test process. */
const remapUser = 3_900_000 + (process.pid % 50_000);
const base = 1_000_000 + (process.pid % 1000) * 65_536;
const entry = `${remapUser}:${base}:65536`;

function addLine(file: string): void {
  fs.appendFileSync(file, `${entry}\n`);
}

function removeLine(file: string): void {
  const kept = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== entry).join('\n');
  const tmp = `${file}.berth-test-${process.pid}`;
  fs.writeFileSync(tmp, kept);
  fs.renameSync(tmp, file);
}

before(async () => {
  addLine('/etc/subuid');
  addLine('/etc/subgid');
  d = await startDaemon({ config: { 'userns-remap': String(remapUser) } });
  // The remapped root must traverse to its rootfs, as under dockerd (which refuses a graphroot without o+x).
  fs.chmodSync(d.root, 0o711);
  await loadTestImages(d);
});

after(async () => {
  await d?.stop();
  removeLine('/etc/subuid');
  removeLine('/etc/subgid');
});

function hostIds(pid: number): { uid: number; gid: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return { uid: Number(/^Uid:\s+(\d+)/m.exec(status)![1]), gid: Number(/^Gid:\s+(\d+)/m.exec(status)![1]) };
}

test('container root is the first subordinate uid on the host; inside it is root and owns the image', { timeout: 90_000 }, async () => {
  const id = (await d.docker(['run', '-d', '--network', 'none', 'busybox', 'sh', '-c', 'echo data > /root/written; touch /etc/copied-up; sleep 60'])).stdout.trim();
  try {
    const info = (await d.api('GET', `/containers/${id}/json`)).body;
    assert.equal(info.State.Running, true, JSON.stringify(info.State));
    assert.deepEqual(hostIds(info.State.Pid), { uid: base, gid: base });
    const inside = await d.docker(['exec', id, 'sh', '-c', 'id -u; cat /proc/self/uid_map; stat -c "%u:%g" /bin/busybox /etc/passwd']);
    assert.equal(inside.code, 0, inside.stderr + inside.stdout);
    const [uid, map, ...owners] = inside.stdout.trim().split('\n');
    assert.equal(uid, '0');
    assert.deepEqual(map!.trim().split(/\s+/), ['0', String(base), '65536']);
    assert.deepEqual(owners, ['0:0', '0:0']);
    // an exec'd process is remapped too
    const exec = await d.docker(['exec', '-d', id, 'sleep', '30']);
    assert.equal(exec.code, 0);
    // what root wrote is owned on the host by the remapped uid (the container's rw layer)
    for (let i = 0; i < 50 && !fs.existsSync(path.join(info.GraphDriver.Data.UpperDir, 'root/written')); i++) await new Promise((r) => setTimeout(r, 100));
    const written = fs.statSync(path.join(info.GraphDriver.Data.UpperDir, 'root/written'));
    assert.equal(written.uid, base);
    assert.equal(written.gid, base);
  } finally {
    await d.docker(['rm', '-f', id]);
  }
});

test('--userns=host opts out; privileged and host namespaces need it, with dockerd\'s messages', { timeout: 60_000 }, async () => {
  const map = await d.docker(['run', '--rm', '--userns', 'host', 'busybox', 'cat', '/proc/self/uid_map']);
  assert.deepEqual(map.stdout.trim().split(/\s+/), ['0', '0', '4294967295']);
  const priv = await d.docker(['run', '--rm', '--privileged', 'busybox', 'true']);
  assert.notEqual(priv.code, 0);
  assert.match(priv.stderr, /privileged mode is incompatible with user namespaces/);
  const pid = await d.docker(['run', '--rm', '--pid', 'host', 'busybox', 'true']);
  assert.match(pid.stderr, /cannot share the host PID namespace when user namespaces are enabled/);
  assert.equal((await d.docker(['run', '--rm', '--userns', 'host', '--privileged', 'busybox', 'true'])).code, 0);
  // The bridge netns belongs to the host's user namespace, where a remapped root can neither mount sysfs nor exec.
  const bridge = await d.docker(['run', '--rm', 'busybox', 'true']);
  assert.equal(bridge.code, 125);
  assert.match(bridge.stderr, /network mode (bridge|default) is not supported yet with userns-remap: use --network none/);
  // refused at create, as dockerd does: nothing is left
  assert.deepEqual((await d.api('GET', '/containers/json?all=1')).body, []);
});

test('a remapped daemon leaves nothing behind', { timeout: 30_000 }, async () => {
  assert.deepEqual((await d.api('GET', '/containers/json?all=1')).body, []);
  assert.deepEqual(leftovers(d), { mounts: [], cgroups: [], processes: [], files: [] });
});
