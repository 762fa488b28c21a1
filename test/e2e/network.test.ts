/**
 * The default bridge, host/none/container modes and published ports, through the real docker CLI.
 * Traffic only goes between containers, the host's loopback and the bridge this test's daemon made
 * (a server on its gateway address); NAT is checked by its rules, never by reaching out.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startDaemon, loadTestImages, printLogTail, daemonRules, curl, type Daemon } from '../harness.js';

let d: Daemon;
let gateway = '';
let subnet = '';

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
  const bridge = await d.api('GET', '/networks/bridge');
  gateway = bridge.body.IPAM.Config[0].Gateway;
  subnet = bridge.body.IPAM.Config[0].Subnet;
});

after(async () => {
  await d?.stop();
});

async function docker(args: string[]): Promise<string> {
  const r = await d.docker(args);
  if (r.code !== 0) printLogTail(d, `docker ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Links on the host whose name starts with veth (this daemon's: their master is its bridge). */
function vethsOn(bridge: string): string[] {
  return fs.readdirSync('/sys/class/net').filter((n) => {
    try {
      return fs.readlinkSync(`/sys/class/net/${n}/master`).endsWith(`/${bridge}`);
    } catch {
      return false;
    }
  });
}

/** The kernel frees a container's netns (and its veth) a moment after the netns file is unmounted. */
async function vethsSettle(bridge: string, count: number): Promise<void> {
  await waitFor(async () => (vethsOn(bridge).length === count ? true : null), `${count} veths on ${bridge} (have ${vethsOn(bridge).join(' ')})`, 5000);
}

function netnsFiles(): string[] {
  try {
    return fs.readdirSync(`${d.execRoot}/netns`);
  } catch {
    return [];
  }
}

async function leases(): Promise<number> {
  const r = await d.api('GET', '/networks/bridge');
  return Object.keys(r.body.Containers).length;
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

const HTTPD = ['sh', '-c', 'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 8080 -h /www'];

test('a default container has eth0 with an address of the bridge, a MAC made from it, a default route and its own /etc files', { timeout: 60_000 }, async () => {
  assert.equal(await docker(['run', '--rm', 'busybox', 'ls', '/sys/class/net']), 'eth0\nlo\n');
  const id = (await docker(['run', '-d', 'busybox', 'sleep', '30'])).trim();
  const info = JSON.parse(await docker(['inspect', id]))[0];
  const ns = info.NetworkSettings;
  const ip: string = ns.IPAddress;
  assert.ok(ip.startsWith(gateway.replace(/\.1$/, '.')), `${ip} in ${subnet}`);
  assert.equal(ns.Gateway, gateway);
  assert.equal(ns.IPPrefixLen, 24);
  const mac = '02:42:' + ip.split('.').map((b) => Number(b).toString(16).padStart(2, '0')).join(':');
  assert.equal(ns.MacAddress, mac);
  assert.equal(ns.Networks.bridge.IPAddress, ip);
  assert.equal(ns.Networks.bridge.NetworkID, (await d.api('GET', '/networks/bridge')).body.Id);
  assert.match(ns.SandboxKey, new RegExp(`^${d.execRoot}/netns/${id}$`));

  const addr = await docker(['exec', id, 'ip', '-o', '-4', 'addr', 'show', 'eth0']);
  assert.match(addr, new RegExp(`inet ${ip.replace(/\./g, '\\.')}/24`));
  assert.match(await docker(['exec', id, 'cat', '/sys/class/net/eth0/address']), new RegExp(mac));
  assert.equal((await docker(['exec', id, 'cat', '/sys/class/net/eth0/mtu'])).trim(), '1500');
  assert.match(await docker(['exec', id, 'ip', 'route']), new RegExp(`default via ${gateway.replace(/\./g, '\\.')} dev eth0`));
  assert.match(await docker(['exec', id, 'ip', 'link', 'show', 'lo']), /UP/);
  const hosts = await docker(['exec', id, 'cat', '/etc/hosts']);
  assert.match(hosts, new RegExp(`^${ip.replace(/\./g, '\\.')}\\t${id.slice(0, 12)}$`, 'm'));
  assert.match(hosts, /^127\.0\.0\.1\tlocalhost$/m);
  // Each container's files are its own.
  assert.notEqual(info.HostsPath, JSON.parse(await docker(['inspect', (await docker(['create', 'busybox'])).trim()]))[0].HostsPath);
  const resolv = await docker(['exec', id, 'cat', '/etc/resolv.conf']);
  assert.doesNotMatch(resolv, /nameserver 127\./);
  assert.match(resolv, /^nameserver /m);
  await vethsSettle(d.bridge!, 1);
  await docker(['rm', '-f', id]);
  await vethsSettle(d.bridge!, 0);
});

test('a container on the default bridge reaches a server on the bridge gateway address', { timeout: 60_000 }, async () => {
  const server = http.createServer((_req, res) => res.end('gateway says hi\n'));
  await new Promise<void>((r) => server.listen(0, gateway, () => r()));
  try {
    const port = (server.address() as AddressInfo).port;
    assert.equal(await docker(['run', '--rm', 'busybox', 'wget', '-qO-', `http://${gateway}:${port}/`]), 'gateway says hi\n');
  } finally {
    server.close();
  }
});

test('a default bridge deleted behind the daemon\'s back is made again by the next run', { timeout: 60_000 }, async () => {
  const bridge = d.bridge!;
  await new Promise<void>((resolve, reject) => execFile('ip', ['link', 'del', bridge], (err) => (err ? reject(err) : resolve())));
  assert.equal(fs.existsSync(`/sys/class/net/${bridge}`), false);
  const server = http.createServer((_req, res) => res.end('still here\n'));
  // The gateway address went with the bridge: listen on any address, reach it through the gateway.
  await new Promise<void>((r) => server.listen(0, '0.0.0.0', () => r()));
  try {
    const port = (server.address() as AddressInfo).port;
    assert.equal(await docker(['run', '--rm', 'busybox', 'wget', '-qO-', `http://${gateway}:${port}/`]), 'still here\n');
  } finally {
    server.close();
  }
  assert.equal(fs.existsSync(`/sys/class/net/${bridge}`), true);
});

test('--network none has only lo, host sees the host interfaces, container:<id> shares the other stack', { timeout: 60_000 }, async () => {
  assert.equal(await docker(['run', '--rm', '--network', 'none', 'busybox', 'ls', '/sys/class/net']), 'lo\n');
  const hostLinks = fs.readdirSync('/sys/class/net').sort();
  const inHost = (await docker(['run', '--rm', '--network', 'host', 'busybox', 'ls', '/sys/class/net'])).trim().split('\n').sort();
  assert.ok(inHost.includes(d.bridge!), 'the host network shows the daemon bridge');
  assert.ok(hostLinks.filter((l) => !l.startsWith('veth')).every((l) => inHost.includes(l) || !fs.existsSync(`/sys/class/net/${l}`)));
  const discarded = await d.docker(['run', '--rm', '--network', 'host', '-p', '8080:80', 'busybox', 'true']);
  assert.equal(discarded.code, 0, discarded.stderr);
  assert.match(discarded.stderr, /WARNING: Published ports are discarded when using host network mode/);
  const a = (await docker(['run', '-d', '--name', 'stackowner', 'busybox', 'sleep', '30'])).trim();
  const ip = JSON.parse(await docker(['inspect', a]))[0].NetworkSettings.IPAddress;
  const shared = await docker(['run', '--rm', '--network', 'container:stackowner', 'busybox', 'ip', '-o', '-4', 'addr', 'show', 'eth0']);
  assert.match(shared, new RegExp(`inet ${ip.replace(/\./g, '\\.')}/`));
  const stopped = await d.docker(['run', '--rm', '--network', 'container:nosuchbox', 'busybox', 'true']);
  assert.equal(stopped.code, 125);
  assert.match(stopped.stderr, /No such container: nosuchbox/);
  await docker(['rm', '-f', a]);
});

test('-p 127.0.0.1::8080 to busybox httpd: curl gets the page, port and ps show it, rm removes rule and proxy', { timeout: 60_000 }, async () => {
  const id = (await docker(['run', '-d', '-p', '127.0.0.1::8080', '-p', '8080/udp', 'busybox', ...HTTPD])).trim();
  const port = (await docker(['port', id, '8080/tcp'])).trim();
  assert.match(port, /^127\.0\.0\.1:\d+$/);
  const hostPort = Number(port.split(':')[1]);
  assert.match(await docker(['port', id]), /^8080\/tcp -> 127\.0\.0\.1:\d+$/m);
  assert.match(await docker(['port', id]), /^8080\/udp -> 0\.0\.0\.0:\d+$/m);
  const page = await waitFor(async () => {
    const r = await curl(`http://127.0.0.1:${hostPort}/`);
    return r.code === 0 && r.out ? r.out : null;
  }, 'httpd through the published port');
  assert.equal(page, `hello from ${id.slice(0, 12)}\n`);
  assert.equal(await docker(['ps', '-q', '--no-trunc', '--filter', 'publish=8080/tcp', '--filter', `id=${id}`]), `${id}\n`);
  assert.equal(await docker(['ps', '-q', '--filter', 'publish=9090', '--filter', `id=${id}`]), '');
  assert.equal(await docker(['ps', '-q', '--no-trunc', '--filter', 'expose=8000-8100', '--filter', `id=${id}`]), `${id}\n`);
  const ps = await docker(['ps', '--format', '{{.Ports}}', '--filter', `id=${id}`]);
  assert.match(ps, new RegExp(`127\\.0\\.0\\.1:${hostPort}->8080/tcp`));
  const ip = JSON.parse(await docker(['inspect', id]))[0].NetworkSettings.IPAddress;
  const rules = daemonRules(d.bridge!).filter((r) => r.includes('DNAT --to-destination'));
  assert.ok(rules.some((r) => r.includes(`-d 127.0.0.1/32`) && r.includes(`--dport ${hostPort}`) && r.includes(`${ip}:8080`)), rules.join('\n'));
  const api = await d.api('GET', `/containers/json?filters=${encodeURIComponent(JSON.stringify({ id: [id] }))}`);
  assert.ok(api.body[0].Ports.some((p: { IP: string; PrivatePort: number; PublicPort: number; Type: string }) => p.IP === '127.0.0.1' && p.PrivatePort === 8080 && p.PublicPort === hostPort && p.Type === 'tcp'));

  // Published on every address: a host address (the bridge's, which this daemon made) goes through DNAT.
  const all = (await docker(['run', '-d', '-p', '8080', 'busybox', ...HTTPD])).trim();
  const allPort = Number((await docker(['port', all, '8080'])).trim().split(':')[1]);
  const viaDnat = await waitFor(async () => {
    const r = await curl(`http://${gateway}:${allPort}/`);
    return r.code === 0 && r.out ? r.out : null;
  }, 'httpd through DNAT on the gateway address');
  assert.equal(viaDnat, `hello from ${all.slice(0, 12)}\n`);
  await docker(['restart', '-t', '1', all]);
  const afterRestart = Number((await docker(['port', all, '8080'])).trim().split(':')[1]);
  assert.ok(await waitFor(async () => ((await curl(`http://127.0.0.1:${afterRestart}/`)).code === 0 ? true : null), 'httpd after docker restart'));

  await docker(['rm', '-f', id, all]);
  assert.deepEqual(daemonRules(d.bridge!).filter((r) => r.includes('DNAT --to-destination')), [], 'the DNAT rule went with the container');
  const after = await curl(`http://127.0.0.1:${hostPort}/`);
  assert.notEqual(after.code, 0, 'the proxy went with the container');
});

test('a host port already in use gets docker\'s error and leaves no rule, proxy, veth or lease', { timeout: 60_000 }, async () => {
  const id = (await docker(['run', '-d', '-p', '127.0.0.1:0:8080', 'busybox', ...HTTPD])).trim();
  const hostPort = Number((await docker(['port', id, '8080'])).trim().split(':')[1]);
  const rulesBefore = daemonRules(d.bridge!);
  const r = await d.docker(['run', '-d', '--name', 'second', '-p', `127.0.0.1:${hostPort}:80`, 'busybox', 'sleep', '30']);
  assert.equal(r.code, 125);
  assert.match(r.stderr, new RegExp(`Bind for 127\\.0\\.0\\.1:${hostPort} failed: port is already allocated`));
  assert.deepEqual(daemonRules(d.bridge!), rulesBefore);
  await vethsSettle(d.bridge!, 1);
  assert.equal(await leases(), 1);
  assert.equal(JSON.parse(await docker(['inspect', 'second']))[0].State.Status, 'created');
  await docker(['rm', '-f', id, 'second']);
  assert.equal(await leases(), 0);
});

test('100 run --rm cycles leave no veth, netns, iptables rule or lease behind', { timeout: 240_000 }, async () => {
  const rulesBefore = daemonRules(d.bridge!);
  for (let i = 0; i < 100; i++) {
    const r = await d.docker(['run', '--rm', ...(i % 10 === 0 ? ['-p', '127.0.0.1::80'] : []), 'busybox', 'true']);
    assert.equal(r.code, 0, `cycle ${i}: ${r.stderr}`);
  }
  await vethsSettle(d.bridge!, 0);
  assert.deepEqual(netnsFiles(), []);
  assert.deepEqual(daemonRules(d.bridge!), rulesBefore);
  assert.equal(await leases(), 0);
});

test('kill -9 of berthd, then restart: a running container stays reachable on its published port and keeps its lease', { timeout: 120_000 }, async () => {
  const id = (await docker(['run', '-d', '-p', '127.0.0.1::8080', 'busybox', ...HTTPD])).trim();
  const ip = JSON.parse(await docker(['inspect', id]))[0].NetworkSettings.IPAddress;
  const hostPort = Number((await docker(['port', id, '8080'])).trim().split(':')[1]);
  await waitFor(async () => ((await curl(`http://127.0.0.1:${hostPort}/`)).code === 0 ? true : null), 'httpd');
  await d.kill9();
  await d.restart();
  const after = JSON.parse(await docker(['inspect', id]))[0];
  assert.equal(after.State.Status, 'running');
  assert.equal(after.NetworkSettings.IPAddress, ip, 'the lease is intact');
  const page = await waitFor(async () => {
    const r = await curl(`http://127.0.0.1:${hostPort}/`);
    return r.code === 0 && r.out ? r.out : null;
  }, 'httpd after the restart');
  assert.equal(page, `hello from ${id.slice(0, 12)}\n`);
  // The address stays taken: the next container gets another one.
  const other = JSON.parse(await docker(['inspect', (await docker(['run', '-d', 'busybox', 'sleep', '30'])).trim()]))[0];
  assert.notEqual(other.NetworkSettings.IPAddress, ip);
  assert.ok(daemonRules(d.bridge!).some((r) => r.includes(`${ip}:8080`)), 'the DNAT rule is back');
  await docker(['rm', '-f', id, other.Id]);
  assert.equal(await leases(), 0);
  await vethsSettle(d.bridge!, 0);
});

test('masquerade for the bridge subnet lives in the daemon\'s own chains, jumped to from the built-in ones', { timeout: 30_000 }, () => {
  const rules = daemonRules(d.bridge!);
  const chain = `BERTH-${d.bridge}`;
  assert.ok(rules.includes(`nat -A ${chain}-POST -s ${subnet} ! -o ${d.bridge} -j MASQUERADE`), rules.join('\n'));
  assert.ok(rules.includes(`nat -A POSTROUTING -j ${chain}-POST`));
  assert.ok(rules.includes(`nat -A PREROUTING -m addrtype --dst-type LOCAL -j ${chain}-DNAT`));
  assert.ok(rules.includes(`filter -A FORWARD -j ${chain}-FWD`));
});

test('--add-host (with host-gateway), --dns, --dns-search, --dns-option, --hostname/--domainname, --mac-address and --link land in the container', { timeout: 60_000 }, async () => {
  const files = await docker(['run', '--rm', '--add-host', 'db.local:10.1.2.3', '--add-host', 'gw:host-gateway', '--dns', '10.0.0.53', '--dns-search', 'corp.test',
    '--dns-option', 'ndots:3', '-h', 'box', '--domainname', 'example.test', '--mac-address', '02:42:de:ad:be:ef', 'busybox',
    'sh', '-c', 'cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; hostname; cat /sys/class/net/eth0/address']);
  const [hosts, resolv, rest] = files.split('---\n');
  assert.match(hosts!, /^10\.1\.2\.3\tdb\.local$/m);
  assert.match(hosts!, new RegExp(`^${gateway.replace(/\./g, '\\.')}\\tgw$`, 'm'));
  assert.match(hosts!, /\tbox\.example\.test box$/m);
  assert.equal(resolv, 'nameserver 10.0.0.53\nsearch corp.test\noptions ndots:3\n');
  assert.equal(rest, 'box\n02:42:de:ad:be:ef\n');

  const target = (await docker(['run', '-d', '--name', 'linked', 'busybox', 'sleep', '30'])).trim();
  const ip = JSON.parse(await docker(['inspect', target]))[0].NetworkSettings.IPAddress;
  const linked = await docker(['run', '--rm', '--link', 'linked:db', 'busybox', 'sh', '-c', 'cat /etc/hosts; ping -c1 -W2 db']);
  assert.match(linked, new RegExp(`^${ip.replace(/\./g, '\\.')}\\tdb ${target.slice(0, 12)} linked$`, 'm'));
  assert.match(linked, /1 packets received/);
  // The same options with --network none and host.
  const none = await docker(['run', '--rm', '--network', 'none', '--add-host', 'db.local:10.1.2.3', '--dns', '10.0.0.53', 'busybox', 'sh', '-c', 'cat /etc/hosts /etc/resolv.conf']);
  assert.match(none, /^127\.0\.0\.1\tlocalhost$/m);
  assert.match(none, /^10\.1\.2\.3\tdb\.local$/m);
  assert.match(none, /^nameserver 10\.0\.0\.53$/m);
  const host = await docker(['run', '--rm', '--network', 'host', '--add-host', 'gw:host-gateway', 'busybox', 'cat', '/etc/hosts']);
  assert.ok(host.startsWith(fs.readFileSync('/etc/hosts', 'utf8').trimEnd()), 'the host\'s own /etc/hosts first');
  assert.match(host, new RegExp(`^${gateway.replace(/\./g, '\\.')}\\tgw$`, 'm'));

  const bad = await d.docker(['run', '--rm', '--link', 'nosuchbox:db', 'busybox', 'true']);
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /could not get container for nosuchbox/);
  await docker(['rm', '-f', target]);
});

test('--domainname sets the UTS domain name and /etc/hosts, -h with dots is kept whole, as dockerd 20.10 does', { timeout: 60_000 }, async () => {
  const show = 'hostname; uname -n; cat /proc/sys/kernel/domainname; hostname -d; tail -n1 /etc/hosts';
  const lines = async (args: string[]) => (await docker(['run', '--rm', ...args, 'busybox', 'sh', '-c', show])).trim().split('\n');
  const [h1, n1, dn1, d1, hosts1] = await lines(['-h', 'h1', '--domainname', 'example.com']);
  assert.deepEqual([h1, n1, dn1, d1], ['h1', 'h1', 'example.com', 'example.com']);
  assert.match(hosts1!, /\th1\.example\.com h1$/);
  // dockerd does not split a dotted hostname into a domain: the kernel's domain stays unset, /etc/hosts names the first label too.
  const [h2, n2, dn2, d2, hosts2] = await lines(['-h', 'host.example']);
  assert.deepEqual([h2, n2, dn2, d2], ['host.example', 'host.example', '(none)', 'example']);
  assert.match(hosts2!, /\thost\.example host$/);
  const [dn3, hosts3] = (await docker(['run', '--rm', '-h', 'a.b', '--domainname', 'example.com', 'busybox', 'sh', '-c', 'cat /proc/sys/kernel/domainname; tail -n1 /etc/hosts'])).trim().split('\n');
  assert.equal(dn3, 'example.com');
  assert.match(hosts3!, /\ta\.b\.example\.com a$/);
  // Without -h the hostname is the short id; other network modes get the domain too (their own UTS namespace).
  const id = (await docker(['run', '-d', '--domainname', 'example.com', 'busybox', 'sleep', '30'])).trim();
  assert.equal((await docker(['exec', id, 'hostname', '-d'])).trim(), 'example.com');
  assert.equal((await docker(['exec', id, 'cat', '/proc/sys/kernel/domainname'])).trim(), 'example.com');
  assert.equal(JSON.parse(await docker(['inspect', id]))[0].Config.Domainname, 'example.com');
  await docker(['rm', '-f', id]);
  for (const mode of ['none', 'host']) {
    assert.equal((await docker(['run', '--rm', '--network', mode, '--domainname', 'example.com', 'busybox', 'cat', '/proc/sys/kernel/domainname'])).trim(), 'example.com', mode);
  }
  // The host's UTS namespace cannot take a domain name: runc's refusal, the host's name untouched.
  const hostDomain = fs.readFileSync('/proc/sys/kernel/domainname', 'utf8');
  const bad = await d.docker(['run', '--rm', '--uts', 'host', '--domainname', 'example.com', 'busybox', 'true']);
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /kernel\.domainname.*not in a separate kernel namespace/);
  assert.equal(fs.readFileSync('/proc/sys/kernel/domainname', 'utf8'), hostDomain);
});

test('daemon.json: icc=false keeps containers on the default bridge apart; iptables=false writes no rule; mtu reaches eth0', { timeout: 120_000 }, async () => {
  const strict = await startDaemon({ config: { icc: false, mtu: 1400 } });
  try {
    await loadTestImages(strict);
    const a = (await strict.docker(['run', '-d', 'busybox', 'sleep', '30'])).stdout.trim();
    const ip = JSON.parse((await strict.docker(['inspect', a])).stdout)[0].NetworkSettings.IPAddress;
    const ping = await strict.docker(['run', '--rm', 'busybox', 'ping', '-c1', '-W1', ip]);
    assert.notEqual(ping.code, 0, 'icc=false: the second container reached the first');
    assert.ok(daemonRules(strict.bridge!).includes(`filter -A BERTH-${strict.bridge}-FWD -i ${strict.bridge} -o ${strict.bridge} -j DROP`));
    assert.equal((await strict.docker(['run', '--rm', 'busybox', 'cat', '/sys/class/net/eth0/mtu'])).stdout, '1400\n');
    await strict.docker(['rm', '-f', a]);
  } finally {
    await strict.stop();
  }
  assert.deepEqual(daemonRules(strict.bridge!), [], 'a stopped daemon leaves no rule');
  const bare = await startDaemon({ config: { iptables: false } });
  try {
    await loadTestImages(bare);
    const r = await bare.docker(['run', '--rm', '-p', '127.0.0.1::80', 'busybox', 'ls', '/sys/class/net']);
    assert.equal(r.stdout, 'eth0\nlo\n', r.stderr);
    assert.deepEqual(daemonRules(bare.bridge!), []);
  } finally {
    await bare.stop();
  }
});

test('userland-proxy: false publishes through DNAT alone, loopback included, and still refuses a taken port', { timeout: 120_000 }, async () => {
  const direct = await startDaemon({ config: { 'userland-proxy': false } });
  try {
    await loadTestImages(direct);
    const id = (await direct.docker(['run', '-d', '-p', '127.0.0.1::8080', 'busybox', ...HTTPD])).stdout.trim();
    const hostPort = Number((await direct.docker(['port', id, '8080'])).stdout.trim().split(':')[1]);
    // berthd only holds the port (it drops what reaches it): a page means DNAT carried it.
    const page = await waitFor(async () => {
      const r = await curl(`http://127.0.0.1:${hostPort}/`);
      return r.code === 0 && r.out ? r.out : null;
    }, 'httpd through loopback DNAT');
    assert.equal(page, `hello from ${id.slice(0, 12)}\n`);
    assert.ok(daemonRules(direct.bridge!).includes(`nat -A OUTPUT -m addrtype --dst-type LOCAL -j BERTH-${direct.bridge}-DNAT`));
    assert.equal(fs.readFileSync(`/proc/sys/net/ipv4/conf/${direct.bridge}/route_localnet`, 'utf8').trim(), '1');
    const clash = await direct.docker(['run', '-d', '-p', `127.0.0.1:${hostPort}:80`, 'busybox', 'true']);
    assert.equal(clash.code, 125);
    assert.match(clash.stderr, /port is already allocated/);
    await direct.docker(['rm', '-f', id]);
  } finally {
    await direct.stop();
  }
});
