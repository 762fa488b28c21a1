/**
 * Daemon-wide userns-remap: container root is an unprivileged uid on the host (read from the host's
 * /proc), image files still look root-owned inside, and what root writes (its rw layer, its
 * volumes) is owned by the remapped uid on the host. Bridge networks work as without remap: the
 * netns belongs to the container's user namespace. The test adds its own /etc/subuid and
 * /etc/subgid ranges and removes them afterwards; traffic stays between the host's loopback, this
 * daemon's bridges and its containers.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { extendTar } from '../tar-fixtures.js';
import { startDaemon, loadTestImages, leftovers, printLogTail, daemonRules, testImages, curl, paths, type Daemon } from '../harness.js';

let d: Daemon;
let tmp = '';
let gateway = '';
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
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-userns-test-'));
  const tar = path.join(tmp, 'volimg.tar');
  await volumeImageTar(tar);
  const r = await d.docker(['import', '-c', 'VOLUME /seed', '-c', 'CMD ["sh"]', tar, 'volimg:latest']);
  assert.equal(r.code, 0, r.stderr);
  gateway = (await d.api('GET', '/networks/bridge')).body.IPAM.Config[0].Gateway;
});

after(async () => {
  await d?.stop();
  removeLine('/etc/subuid');
  removeLine('/etc/subgid');
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** busybox's rootfs plus /seed (root's, with a file of uid 1000's), imported with VOLUME /seed. */
async function volumeImageTar(out: string): Promise<void> {
  const busybox = (await testImages()).find((i) => i.ref === 'busybox:latest')!.tar;
  await extendTar(busybox, out, [
    { name: 'seed/', type: 'directory', mode: 0o755, uid: 0, gid: 0 },
    { name: 'seed/by-root', mode: 0o644, uid: 0, gid: 0, body: 'root\n' },
    { name: 'seed/by-user', mode: 0o640, uid: 1000, gid: 100, body: 'user\n' },
  ]);
}

async function docker(args: string[]): Promise<string> {
  const r = await d.docker(args);
  if (r.code !== 0) printLogTail(d, `docker ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function waitFor<T>(fn: () => Promise<T | null>, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Links on the host whose master is the bridge (this daemon's veths). */
function vethsOn(bridge: string): string[] {
  return fs.readdirSync('/sys/class/net').filter((n) => {
    try {
      return fs.readlinkSync(`/sys/class/net/${n}/master`).endsWith(`/${bridge}`);
    } catch {
      return false;
    }
  });
}

function netnsFiles(): string[] {
  try {
    return fs.readdirSync(`${d.execRoot}/netns`);
  } catch {
    return [];
  }
}

function owner(p: string): string {
  const st = fs.lstatSync(p);
  return `${st.uid}:${st.gid}`;
}

const HTTPD = ['sh', '-c', 'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 8080 -h /www'];

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

test('docker cp in and out of a remapped container speaks the container\'s ids; on disk they are the host\'s', { timeout: 90_000 }, async () => {
  const id = (await d.docker(['run', '-d', '--network', 'none', 'busybox', 'sh', '-c', 'echo inside > /root/made-inside; sleep 60'])).stdout.trim();
  try {
    const src = path.join(tmp, 'from-host');
    fs.writeFileSync(src, 'from the host\n');
    fs.chownSync(src, 1234, 1234);
    let r = await d.docker(['cp', src, `${id}:/root/plain`]);
    assert.equal(r.code, 0, r.stderr);
    r = await d.docker(['cp', '-a', src, `${id}:/root/archived`]);
    assert.equal(r.code, 0, r.stderr);
    const inside = await d.docker(['exec', id, 'stat', '-c', '%u:%g', '/root/plain', '/root/archived']);
    assert.deepEqual(inside.stdout.trim().split('\n'), ['0:0', '1234:1234'], inside.stderr);
    const upper = (await d.api('GET', `/containers/${id}/json`)).body.GraphDriver.Data.UpperDir;
    assert.equal(fs.statSync(path.join(upper, 'root/plain')).uid, base);
    assert.equal(fs.statSync(path.join(upper, 'root/archived')).uid, base + 1234);
    // Out: the tar names the container's ids (root), not the host's, as dockerd's does.
    const out = await d.api('GET', `/containers/${id}/archive?path=/root/made-inside`);
    assert.equal(out.status, 200);
    const header = String(out.body); // a one-member tar: its first header's fields are ASCII
    assert.equal(parseInt(header.slice(108, 116), 8), 0, 'uid in the tar');
    assert.equal(parseInt(header.slice(116, 124), 8), 0, 'gid in the tar');
  } finally {
    await d.docker(['rm', '-f', id]);
  }
});

test('an attached exec (berth-exec) runs in the container\'s user namespace as the remapped uid on the host', { timeout: 60_000 }, async () => {
  const id = (await docker(['run', '-d', '--network', 'none', 'busybox', 'sleep', '60'])).trim();
  try {
    const init = (await d.api('GET', `/containers/${id}/json`)).body.State.Pid as number;
    const userns = fs.readlinkSync(`/proc/${init}/ns/user`);
    assert.notEqual(userns, fs.readlinkSync('/proc/self/ns/user'));
    const cli = spawn(paths.docker, ['exec', id, 'sleep', '7'], { env: d.env, stdio: 'ignore' });
    const exited = new Promise((resolve) => cli.on('exit', resolve));
    try {
      const pid = await waitFor(async () => {
        for (const p of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
          try {
            if (fs.readFileSync(`/proc/${p}/cmdline`, 'utf8') === 'sleep\x007\x00' && fs.readlinkSync(`/proc/${p}/ns/user`) === userns) return Number(p);
          } catch { /* gone */ }
        }
        return null;
      }, 'the exec\'d sleep');
      assert.deepEqual(hostIds(pid), { uid: base, gid: base });
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
      assert.equal(fs.readFileSync(`/proc/${ppid}/comm`, 'utf8').trim(), 'berth-exec');
      // Inside, it is root with the container's capabilities and filter, as runc gave init.
      const self = await docker(['exec', id, 'sh', '-c', "id -u; grep -E '^(Cap[A-Za-z]+|Seccomp(_filters)?):' /proc/self/status"]);
      const first = await docker(['exec', id, 'sh', '-c', "id -u; grep -E '^(Cap[A-Za-z]+|Seccomp(_filters)?):' /proc/1/status"]);
      assert.equal(self, first);
      assert.match(self, /^0\n/);
    } finally {
      cli.kill('SIGKILL');
      await exited;
    }
  } finally {
    await d.docker(['rm', '-f', id]);
  }
});

test('commit of a remapped container, and a build\'s RUN step, make layers with the container\'s ids', { timeout: 120_000 }, async () => {
  const ctx = path.join(tmp, 'build-ctx');
  fs.mkdirSync(ctx, { recursive: true });
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM busybox\nRUN touch /built && mkdir /owned && chown 1234:1234 /owned\n');
  const b = await d.docker(['build', '-q', '-t', 'remapped-build:1', ctx]);
  assert.equal(b.code, 0, b.stderr);
  const built = await d.docker(['run', '--rm', '--userns=host', '--network', 'none', 'remapped-build:1', 'stat', '-c', '%u:%g', '/built', '/owned']);
  assert.deepEqual(built.stdout.trim().split('\n'), ['0:0', '1234:1234'], built.stderr);
  await d.docker(['rmi', 'remapped-build:1']);

  const id = (await d.docker(['run', '-d', '--network', 'none', 'busybox', 'sh', '-c', 'echo x > /root/committed; chown 1234:1234 /root/committed; touch /root/rootfile; sleep 60'])).stdout.trim();
  try {
    for (let i = 0; i < 50 && (await d.docker(['exec', id, 'test', '-e', '/root/rootfile'])).code !== 0; i++) await new Promise((r) => setTimeout(r, 100));
    const c = await d.docker(['commit', id, 'remapped-commit:1']);
    assert.equal(c.code, 0, c.stderr);
    // Seen without the remap, the layer's own ids show: root's file is 0, the chowned one 1234.
    const r = await d.docker(['run', '--rm', '--userns=host', '--network', 'none', 'remapped-commit:1', 'stat', '-c', '%u:%g', '/root/rootfile', '/root/committed']);
    assert.deepEqual(r.stdout.trim().split('\n'), ['0:0', '1234:1234'], r.stderr);
  } finally {
    await d.docker(['rm', '-f', id]);
    await d.docker(['rmi', 'remapped-commit:1']);
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
  const host = await d.docker(['run', '--rm', '--network', 'host', 'busybox', 'true']);
  assert.equal(host.code, 125);
  assert.match(host.stderr, /cannot share the host's network namespace when user namespaces are enabled/);
  assert.equal((await d.docker(['run', '--rm', '--userns', 'host', '--privileged', 'busybox', 'true'])).code, 0);
  const hostLinks = (await docker(['run', '--rm', '--userns', 'host', '--network', 'host', 'busybox', 'ls', '/sys/class/net'])).split('\n');
  assert.ok(hostLinks.includes(d.bridge!), 'with --userns host, --network host is the host\'s stack');
  // refused at create, as dockerd does: nothing is left
  assert.deepEqual((await d.api('GET', '/containers/json?all=1')).body, []);
});

test('container:<id> network, PID and IPC modes join the other container\'s user namespace too, as under dockerd', { timeout: 60_000 }, async () => {
  const donor = (await docker(['run', '-d', '--ipc', 'shareable', 'busybox', 'sleep', '60'])).trim();
  const plain = (await docker(['run', '-d', '--userns', 'host', 'busybox', 'sleep', '60'])).trim();
  try {
    const info = JSON.parse(await docker(['inspect', donor]))[0];
    const joined = await docker(['run', '--rm', '--network', `container:${donor}`, '--pid', `container:${donor}`, '--ipc', `container:${donor}`, 'busybox', 'sh', '-c', 'ip -o -4 addr show eth0; ls /sys/class/net; ps -o comm; readlink /proc/self/ns/user']);
    assert.match(joined, new RegExp(`inet ${info.NetworkSettings.IPAddress.replace(/\./g, '\\.')}/`));
    assert.match(joined, /^eth0\nlo\n/m);
    assert.match(joined, /^sleep$/m, 'the donor\'s processes are seen');
    assert.equal(joined.trim().split('\n').pop(), fs.readlinkSync(`/proc/${info.State.Pid}/ns/user`));
    // A donor in the host's user namespace cannot be joined by a remapped container.
    const r = await d.docker(['run', '--rm', '--network', `container:${plain}`, 'busybox', 'true']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /cannot join the namespaces of container [0-9a-f]{64}: it runs in the host's user namespace/);
  } finally {
    await docker(['rm', '-f', donor, plain]);
  }
});

test('volumes (named, anonymous, pre-populated from an image VOLUME) belong to the remapped root; binds keep their host owner', { timeout: 90_000 }, async () => {
  const root = `${base}:${base}`;
  // named: made on first use, written by root inside, owned by the remapped uid on the host
  const named = await docker(['run', '--rm', '-v', 'remapvol:/data', 'busybox', 'sh', '-c', 'echo hi > /data/f && mkdir /data/d && stat -c "%u:%g" /data /data/f']);
  assert.equal(named, '0:0\n0:0\n');
  const mp = JSON.parse(await docker(['volume', 'inspect', 'remapvol']))[0].Mountpoint;
  assert.equal(mp, path.join(d.dataRoot, 'volumes', 'remapvol', '_data'));
  assert.equal(owner(mp), root);
  assert.equal(owner(path.join(mp, 'f')), root);
  assert.equal(owner(path.join(mp, 'd')), root);
  assert.equal(fs.readFileSync(path.join(mp, 'f'), 'utf8'), 'hi\n');
  // docker volume create: the same
  await docker(['volume', 'create', 'made']);
  assert.equal(owner(JSON.parse(await docker(['volume', 'inspect', 'made']))[0].Mountpoint), root);
  assert.equal(await docker(['run', '--rm', '-v', 'made:/m', 'busybox', 'sh', '-c', 'touch /m/x && stat -c "%u:%g" /m/x']), '0:0\n');

  // anonymous (-v /path) and an image VOLUME pre-populated with the image's files, owners as the container sees them
  const id = (await docker(['run', '-d', '-v', '/anon', 'volimg', 'sh', '-c', 'echo a > /anon/a; echo s > /seed/new; sleep 60'])).trim();
  try {
    const mounts: { Destination: string; Source: string; Type: string }[] = JSON.parse(await docker(['inspect', id]))[0].Mounts;
    const anon = mounts.find((m) => m.Destination === '/anon')!;
    const seed = mounts.find((m) => m.Destination === '/seed')!;
    assert.equal(anon.Type, 'volume');
    assert.equal(seed.Type, 'volume');
    await waitFor(async () => (fs.existsSync(path.join(seed.Source, 'new')) && fs.existsSync(path.join(anon.Source, 'a')) ? true : null), 'the container\'s writes');
    assert.equal(owner(anon.Source), root);
    assert.equal(owner(path.join(anon.Source, 'a')), root);
    assert.equal(owner(seed.Source), root);
    assert.equal(owner(path.join(seed.Source, 'by-root')), root);
    assert.equal(owner(path.join(seed.Source, 'by-user')), `${base + 1000}:${base + 100}`);
    assert.equal(owner(path.join(seed.Source, 'new')), root);
    const inside = await docker(['exec', id, 'stat', '-c', '%n %u:%g', '/seed', '/seed/by-root', '/seed/by-user']);
    assert.equal(inside, '/seed 0:0\n/seed/by-root 0:0\n/seed/by-user 1000:100\n');
  } finally {
    await docker(['rm', '-f', '-v', id]);
  }

  // a bind: as docker, the host's owner is left alone (root's here: nobody to the remapped root)
  const bind = fs.mkdtempSync(path.join(tmp, 'bind-'));
  fs.chmodSync(bind, 0o755);
  fs.chmodSync(tmp, 0o755);
  fs.writeFileSync(path.join(bind, 'host-file'), 'from host\n');
  const seen = await d.docker(['run', '--rm', '-v', `${bind}:/b`, 'busybox', 'sh', '-c', 'cat /b/host-file; stat -c "%u" /b/host-file; touch /b/new']);
  assert.notEqual(seen.code, 0, 'root of a remapped container is not root on a host directory');
  assert.match(seen.stdout, /^from host\n65534\n$/);
  assert.match(seen.stderr, /Permission denied/);
  assert.equal(owner(bind), '0:0');
  assert.equal(owner(path.join(bind, 'host-file')), '0:0');
  assert.equal(fs.existsSync(path.join(bind, 'new')), false);
  // a bind the remapped root owns is writable, and what it writes there is the remapped uid's
  fs.chownSync(bind, base, base);
  await docker(['run', '--rm', '-v', `${bind}:/b`, 'busybox', 'touch', '/b/new']);
  assert.equal(owner(path.join(bind, 'new')), root);

  await docker(['volume', 'rm', 'remapvol', 'made']);
  assert.deepEqual(JSON.parse((await docker(['volume', 'ls', '--format', 'json'])) || 'null'), null);
});

test('the default bridge under remap: eth0 in the container\'s own user namespace, the gateway reachable, exec joins it', { timeout: 90_000 }, async () => {
  const server = http.createServer((_req, res) => res.end('gateway says hi\n'));
  await new Promise<void>((r) => server.listen(0, gateway, () => r()));
  try {
    const port = (server.address() as AddressInfo).port;
    assert.equal(await docker(['run', '--rm', 'busybox', 'wget', '-qO-', `http://${gateway}:${port}/`]), 'gateway says hi\n');
  } finally {
    server.close();
  }
  const id = (await docker(['run', '-d', 'busybox', 'sleep', '60'])).trim();
  try {
    const info = JSON.parse(await docker(['inspect', id]))[0];
    const ns = info.NetworkSettings;
    assert.ok(ns.IPAddress.startsWith(gateway.replace(/\.1$/, '.')), `${ns.IPAddress} on the bridge of ${gateway}`);
    assert.equal(ns.SandboxKey, `${d.execRoot}/netns/${id}`);
    // The netns file is the container's netns, whose owner is the container's user namespace (not the host's).
    assert.equal(fs.statSync(ns.SandboxKey).ino, fs.statSync(`/proc/${info.State.Pid}/ns/net`).ino);
    assert.notEqual(fs.readlinkSync(`/proc/${info.State.Pid}/ns/user`), fs.readlinkSync('/proc/self/ns/user'));
    assert.deepEqual(hostIds(info.State.Pid), { uid: base, gid: base });
    assert.equal(await docker(['exec', id, 'ls', '/sys/class/net']), 'eth0\nlo\n');
    assert.match(await docker(['exec', id, 'ip', '-o', '-4', 'addr', 'show', 'eth0']), new RegExp(`inet ${ns.IPAddress.replace(/\./g, '\\.')}/24`));
    assert.match(await docker(['exec', id, 'ip', 'route']), new RegExp(`default via ${gateway.replace(/\./g, '\\.')} dev eth0`));
    assert.equal(vethsOn(d.bridge!).length, 1);
  } finally {
    await docker(['rm', '-f', id]);
  }
  await waitFor(async () => (vethsOn(d.bridge!).length === 0 ? true : null), 'the veth to go');
  assert.deepEqual(netnsFiles(), []);
});

test('a failure between runc create and start (the network\'s bridge replaced by a link that is no bridge) rolls the start back: no netns, mount, cgroup, process or lease left', { timeout: 60_000 }, async () => {
  const net = JSON.parse(await docker(['network', 'inspect', (await docker(['network', 'create', 'brokennet'])).trim()]))[0];
  const bridge = `br-${net.Id.slice(0, 12)}`;
  try {
    assert.ok(fs.existsSync(`/sys/class/net/${bridge}`), bridge);
    // A missing bridge would be made again before runc create; a veth of its name fails the veth's enslaving after it.
    execFileSync('ip', ['link', 'del', bridge]);
    execFileSync('ip', ['link', 'add', bridge, 'type', 'veth', 'peer', 'name', `bp-${net.Id.slice(0, 12)}`]);
    const r = await d.docker(['run', '-d', '--name', 'broken', '--network', 'brokennet', 'busybox', 'sleep', '60']);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /Error response from daemon: failed to create endpoint broken on network brokennet: .*veth/);
    const info = JSON.parse(await docker(['inspect', 'broken']))[0];
    assert.equal(info.State.Status, 'created');
    assert.equal(info.State.Pid, 0);
    assert.deepEqual(netnsFiles(), []);
    assert.equal(Object.keys(JSON.parse(await docker(['network', 'inspect', 'brokennet']))[0].Containers ?? {}).length, 0);
    assert.deepEqual(leftovers(d), { mounts: [], cgroups: [], processes: [], files: [] });
    await docker(['rm', 'broken']);
  } finally {
    await docker(['network', 'rm', 'brokennet']);
  }
});

test('a user network under remap: names resolve through the embedded DNS; network connect adds a link to a running container', { timeout: 90_000 }, async () => {
  await docker(['network', 'create', 'remapnet']);
  const made: string[] = [];
  try {
    const web = (await docker(['run', '-d', '--name', 'web', '--network', 'remapnet', 'busybox', ...HTTPD])).trim();
    made.push(web);
    const page = await waitFor(async () => {
      const r = await d.docker(['run', '--rm', '--network', 'remapnet', 'busybox', 'wget', '-qO-', 'http://web:8080/']);
      return r.code === 0 ? r.stdout : null;
    }, 'web by name');
    assert.equal(page, `hello from ${web.slice(0, 12)}\n`);
    const other = (await docker(['run', '-d', 'busybox', 'sleep', '60'])).trim();
    made.push(other);
    await docker(['network', 'connect', 'remapnet', other]);
    const webIp = JSON.parse(await docker(['inspect', web]))[0].NetworkSettings.Networks.remapnet.IPAddress;
    const otherIp = JSON.parse(await docker(['inspect', other]))[0].NetworkSettings.Networks.remapnet.IPAddress;
    assert.match(await docker(['exec', other, 'ip', '-o', '-4', 'addr', 'show', 'eth1']), new RegExp(`inet ${otherIp.replace(/\./g, '\\.')}/`));
    assert.equal(await docker(['exec', other, 'wget', '-qO-', `http://${webIp}:8080/`]), `hello from ${web.slice(0, 12)}\n`);
  } finally {
    if (made.length) await docker(['rm', '-f', ...made]);
    await docker(['network', 'rm', 'remapnet']);
  }
});

test('-p to httpd under remap: curl from the host, exec, kill -9 of berthd + restart keeps it reachable, so does docker restart; rm leaves nothing', { timeout: 120_000 }, async () => {
  const rulesBefore = daemonRules(d.bridge!);
  const id = (await docker(['run', '-d', '-p', '127.0.0.1::8080', 'busybox', ...HTTPD])).trim();
  const hostPort = Number((await docker(['port', id, '8080'])).trim().split(':')[1]);
  const get = () => waitFor(async () => {
    const r = await curl(`http://127.0.0.1:${hostPort}/`);
    return r.code === 0 && r.out ? r.out : null;
  }, 'httpd through the published port');
  assert.equal(await get(), `hello from ${id.slice(0, 12)}\n`);
  assert.equal(await docker(['exec', id, 'id', '-u']), '0\n');
  const ip = JSON.parse(await docker(['inspect', id]))[0].NetworkSettings.IPAddress;

  await d.kill9();
  await d.restart();
  const after = JSON.parse(await docker(['inspect', id]))[0];
  assert.equal(after.State.Status, 'running');
  assert.equal(after.NetworkSettings.IPAddress, ip);
  assert.equal(await get(), `hello from ${id.slice(0, 12)}\n`);
  assert.match(await docker(['exec', id, 'ip', '-o', '-4', 'addr', 'show', 'eth0']), new RegExp(`inet ${ip.replace(/\./g, '\\.')}/`));
  const stats = JSON.parse(await docker(['stats', '--no-stream', '--format', 'json', id]));
  assert.match(stats.NetIO, /B \/ /);
  // docker restart: a new run, a new netns of its own user namespace, the same port published again
  await docker(['restart', '-t', '1', id]);
  const again = Number((await docker(['port', id, '8080'])).trim().split(':')[1]);
  assert.equal(await waitFor(async () => {
    const r = await curl(`http://127.0.0.1:${again}/`);
    return r.code === 0 && r.out ? r.out : null;
  }, 'httpd after docker restart'), `hello from ${id.slice(0, 12)}\n`);

  await docker(['rm', '-f', id]);
  assert.notEqual((await curl(`http://127.0.0.1:${again}/`)).code, 0, 'the proxy went with the container');
  assert.deepEqual(daemonRules(d.bridge!), rulesBefore);
  await waitFor(async () => (vethsOn(d.bridge!).length === 0 ? true : null), 'the veth to go');
  assert.deepEqual(netnsFiles(), []);
  assert.equal(Object.keys((await d.api('GET', '/networks/bridge')).body.Containers).length, 0);
});

test('a remapped daemon leaves nothing behind', { timeout: 30_000 }, async () => {
  assert.deepEqual((await d.api('GET', '/containers/json?all=1')).body, []);
  assert.deepEqual(leftovers(d), { mounts: [], cgroups: [], processes: [], files: [] });
});
