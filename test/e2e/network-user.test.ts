/**
 * User-defined networks through the real docker CLI: create/ls/inspect/connect/disconnect/rm/prune,
 * names resolved by the embedded DNS, isolation between networks, --ip/--network-alias and docker's
 * errors for bad input. Traffic stays between containers and namespaces this test's daemon made.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startDaemon, loadTestImages, printLogTail, daemonRules, type Daemon } from '../harness.js';
import { answer, parseQuestion } from '../../src/network/dns.js';

let d: Daemon;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
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

async function fails(args: string[], message: RegExp, code = 1): Promise<void> {
  const r = await d.docker(args);
  assert.equal(r.code, code, `docker ${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`);
  assert.match(r.stderr, message, `docker ${args.join(' ')}`);
}

/** Whether the host routes the /24 at 10.b.c.0 (exactly: test daemons and networks use /24s). */
function routed(b: number, c: number): boolean {
  const hex = Buffer.from([10, b, c, 0]).readUInt32LE(0).toString(16).toUpperCase().padStart(8, '0');
  return fs.readFileSync('/proc/net/route', 'utf8').includes(hex);
}

/** A /24 of 10.100–199 nobody routes, different on each call. */
let nextSubnet = Math.floor(Math.random() * 200);
function freeSubnet(): string {
  for (;;) {
    const c = nextSubnet++ % 256;
    const b = 100 + Math.floor(Math.random() * 100);
    if (!routed(b, c)) return `10.${b}.${c}.0/24`;
  }
}

const HTTPD = ['sh', '-c', 'mkdir -p /www && echo "web on $(hostname)" > /www/index.html && exec httpd -f -p 8080 -h /www'];

test('two containers on a user network reach each other by name; a container on another network cannot', { timeout: 120_000 }, async () => {
  const subnet = freeSubnet();
  const netId = (await docker(['network', 'create', '--subnet', subnet, '--label', 'team=a', 'appnet'])).trim();
  await docker(['network', 'create', '--subnet', freeSubnet(), 'othernet']);
  try {
    const web = (await docker(['run', '-d', '--name', 'web', '--network', 'appnet', '--network-alias', 'www', 'busybox', ...HTTPD])).trim();
    assert.match(await docker(['run', '--rm', '--network', 'appnet', 'busybox', 'ping', '-c1', '-W2', 'web']), /1 packets received/);
    assert.equal(await docker(['run', '--rm', '--network', 'appnet', 'busybox', 'wget', '-qO-', 'http://web:8080/']), `web on ${web.slice(0, 12)}\n`);
    assert.equal(await docker(['run', '--rm', '--network', 'appnet', 'busybox', 'wget', '-qO-', 'http://www:8080/']), `web on ${web.slice(0, 12)}\n`, 'by alias');
    assert.equal(await docker(['run', '--rm', '--network', 'appnet', 'busybox', 'wget', '-qO-', `http://${web.slice(0, 12)}:8080/`]), `web on ${web.slice(0, 12)}\n`, 'by short id');

    const info = JSON.parse(await docker(['inspect', 'web']))[0].NetworkSettings.Networks.appnet;
    assert.equal(info.NetworkID, netId);
    assert.deepEqual(info.Aliases, ['www']);
    assert.deepEqual(info.DNSNames, ['web', web.slice(0, 12), 'www']);
    assert.ok(info.IPAddress.startsWith(subnet.replace(/0\/24$/, '')));
    const resolv = await docker(['run', '--rm', '--network', 'appnet', 'busybox', 'cat', '/etc/resolv.conf']);
    assert.match(resolv, new RegExp(`^nameserver ${info.Gateway.replace(/\./g, '\\.')}$`, 'm'));

    // Another network: no name, and no route through the daemon's isolation rules.
    const other = await d.docker(['run', '--rm', '--network', 'othernet', 'busybox', 'wget', '-T2', '-qO-', 'http://web:8080/']);
    assert.notEqual(other.code, 0, 'web does not resolve on othernet');
    const byIp = await d.docker(['run', '--rm', '--network', 'othernet', 'busybox', 'wget', '-T2', '-qO-', `http://${info.IPAddress}:8080/`]);
    assert.notEqual(byIp.code, 0, `othernet reached web by address: ${byIp.stdout}`);
    const rules = daemonRules(d.bridge!);
    const appBridge = `br-${netId.slice(0, 12)}`;
    assert.ok(rules.some((r) => r.includes(`-i ${appBridge} -o br-`) && r.endsWith('-j DROP')), rules.join('\n'));

    // Inspect and list, with filters.
    const net = JSON.parse(await docker(['network', 'inspect', 'appnet']))[0];
    assert.equal(net.Driver, 'bridge');
    assert.equal(net.IPAM.Config[0].Subnet, subnet);
    assert.deepEqual(net.Labels, { team: 'a' });
    assert.equal(net.Containers[web].Name, 'web');
    assert.equal(net.Containers[web].IPv4Address, `${info.IPAddress}/24`);
    assert.deepEqual((await docker(['network', 'ls', '--filter', 'label=team=a', '--format', '{{.Name}}'])).trim().split('\n'), ['appnet']);
    assert.deepEqual((await docker(['network', 'ls', '--filter', 'type=builtin', '--format', '{{.Name}}'])).trim().split('\n').sort(), ['bridge', 'host', 'none']);

    assert.equal(await docker(['ps', '-q', '--no-trunc', '--filter', 'network=appnet']), `${web}\n`);
    assert.equal(await docker(['ps', '-q', '--filter', 'network=othernet']), '');
    const linked = await docker(['run', '--rm', '--network', 'appnet', '--link', 'web:backend', 'busybox', 'wget', '-qO-', 'http://backend:8080/']);
    assert.equal(linked, `web on ${web.slice(0, 12)}\n`, '--link on a user network is an alias for the linking container');
    await fails(['network', 'rm', 'appnet'], /has active endpoints/);
    await docker(['rm', '-f', 'web']);
  } finally {
    await d.docker(['rm', '-f', 'web']);
    await d.docker(['network', 'rm', 'appnet', 'othernet']);
  }
  const custom = await d.api('GET', `/networks?filters=${encodeURIComponent('{"type":["custom"]}')}`);
  assert.deepEqual(custom.body, []);
});

test('--ip, --ip-range, --internal, connect and disconnect of a running container, and network events', { timeout: 120_000 }, async () => {
  const subnet = freeSubnet();
  const base = subnet.replace(/0\/24$/, '');
  const since = Math.floor(Date.now() / 1000);
  await docker(['network', 'create', '--subnet', subnet, '--gateway', `${base}254`, '--ip-range', `${base}128/25`, '--internal', 'inner']);
  try {
    assert.equal((await docker(['run', '--rm', '--network', 'inner', '--ip', `${base}7`, 'busybox', 'ip', '-o', '-4', 'addr', 'show', 'eth0'])).match(/inet (\S+)/)![1], `${base}7/24`);
    const auto = await docker(['run', '--rm', '--network', 'inner', 'busybox', 'sh', '-c', 'ip -o -4 addr show eth0; ip route']);
    assert.match(auto, new RegExp(`inet ${base.replace(/\./g, '\\.')}128/24`), 'the first address of the ip-range');
    assert.doesNotMatch(auto, /default/, 'an internal network has no default route');

    const box = (await docker(['run', '-d', '--name', 'hopper', 'busybox', 'sleep', '60'])).trim();
    await docker(['network', 'connect', '--alias', 'hop', 'inner', 'hopper']);
    const links = await docker(['exec', box, 'ls', '/sys/class/net']);
    assert.equal(links, 'eth0\neth1\nlo\n');
    assert.match(await docker(['run', '--rm', '--network', 'inner', 'busybox', 'ping', '-c1', '-W2', 'hop']), /1 packets received/);
    await fails(['network', 'connect', 'inner', 'hopper'], /already exists in network inner/);
    await docker(['network', 'disconnect', 'inner', 'hopper']);
    assert.equal(await docker(['exec', box, 'ls', '/sys/class/net']), 'eth0\nlo\n');
    await docker(['rm', '-f', box]);
    const events = await docker(['events', '--since', String(since), '--until', String(Math.floor(Date.now() / 1000) + 1), '--filter', 'type=network', '--format', '{{.Action}} {{.Actor.Attributes.name}}']);
    for (const e of ['create inner', 'connect inner', 'disconnect inner']) assert.ok(events.split('\n').includes(e), `${e} in\n${events}`);
  } finally {
    await d.docker(['rm', '-f', 'hopper']);
    await d.docker(['network', 'rm', 'inner']);
  }
});

test('the embedded DNS forwards names it does not know to the container\'s --dns server', { timeout: 60_000 }, async () => {
  // A fake upstream on a loopback address of the host's; it answers every A question with 10.9.8.7.
  const upstream = dgram.createSocket('udp4');
  const addr = `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
  upstream.on('message', (msg, r) => {
    const q = parseQuestion(msg);
    if (q) upstream.send(answer(msg, q, ['10.9.8.7']), r.port, r.address);
  });
  await new Promise<void>((r) => upstream.bind(53, addr, () => r()));
  await docker(['network', 'create', '--subnet', freeSubnet(), 'dnsnet']);
  try {
    const out = await docker(['run', '--rm', '--network', 'dnsnet', '--dns', addr, 'busybox', 'nslookup', 'elsewhere.example']);
    assert.match(out, /Address: 10\.9\.8\.7/);
  } finally {
    upstream.close();
    await d.docker(['network', 'rm', 'dnsnet']);
  }
});

/** A DNS query for `name` (type A, RD), framed for TCP (two-byte length first), as busybox printf octal escapes. */
function tcpQueryEscaped(name: string, id: number): string {
  const qname = Buffer.concat([...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
  const msg = Buffer.concat([Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), qname, Buffer.from([0, 1, 0, 1])]);
  const framed = Buffer.concat([Buffer.from([msg.length >> 8, msg.length & 255]), msg]);
  return [...framed].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
}

/** What a TCP DNS reply (od -An -tx1 output) says: its id, rcode and the A addresses. */
function tcpReply(hex: string): { id: number; rcode: number; ips: string[] } {
  const buf = Buffer.from(hex.replace(/\s+/g, ''), 'hex');
  assert.ok(buf.length >= 14, `a framed reply, got ${buf.length} bytes`);
  assert.equal(buf.readUInt16BE(0), buf.length - 2, 'the length prefix matches the reply');
  const msg = buf.subarray(2);
  const q = parseQuestion(msg)!;
  const ips: string[] = [];
  let off = q.end;
  for (let i = 0; i < msg.readUInt16BE(6); i++) {
    off += 2; // a compressed name
    const type = msg.readUInt16BE(off);
    const len = msg.readUInt16BE(off + 8);
    if (type === 1) ips.push([...msg.subarray(off + 10, off + 14)].join('.'));
    off += 10 + len;
  }
  return { id: msg.readUInt16BE(0), rcode: msg.readUInt16BE(2) & 0xf, ips };
}

test('the embedded DNS: AAAA of a container name is an empty NOERROR; TCP queries are answered and forwarded too', { timeout: 60_000 }, async () => {
  // A fake upstream on a loopback address of the host's, over TCP: every A question gets 10.9.8.6.
  const addr = `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
  const upstream = net.createServer((conn) => conn.on('data', (b: Buffer) => {
    const msg = b.subarray(2);
    const q = parseQuestion(msg);
    if (!q) return;
    const out = answer(msg, q, ['10.9.8.6']);
    conn.write(Buffer.concat([Buffer.from([out.length >> 8, out.length & 255]), out]));
  }));
  await new Promise<void>((r) => upstream.listen(53, addr, () => r()));
  await docker(['network', 'create', '--subnet', freeSubnet(), 'dns6net']);
  try {
    const web = (await docker(['run', '-d', '--name', 'web6', '--network', 'dns6net', 'busybox', 'sleep', '60'])).trim();
    const ip = JSON.parse(await docker(['inspect', web]))[0].NetworkSettings.Networks.dns6net.IPAddress;
    const gw = JSON.parse(await docker(['network', 'inspect', 'dns6net']))[0].IPAM.Config[0].Gateway;
    // NXDOMAIN would make nslookup print "can't find" and exit 1; an empty NOERROR prints no address.
    const aaaa = await d.docker(['run', '--rm', '--network', 'dns6net', 'busybox', 'nslookup', '-type=aaaa', 'web6']);
    assert.equal(aaaa.code, 0, aaaa.stdout + aaaa.stderr);
    assert.doesNotMatch(aaaa.stdout + aaaa.stderr, /can't find|NXDOMAIN|SERVFAIL/);
    assert.doesNotMatch(aaaa.stdout, /Address: [0-9a-f:]+$/m);
    // Plain nslookup asks A and AAAA together: the address, and no error for the AAAA half.
    const both = await d.docker(['run', '--rm', '--network', 'dns6net', 'busybox', 'nslookup', 'web6']);
    assert.equal(both.code, 0, both.stdout + both.stderr);
    assert.match(both.stdout, new RegExp(`Address: ${ip.replace(/\./g, '\\.')}$`, 'm'));
    assert.doesNotMatch(both.stdout + both.stderr, /can't find/);
    // Over TCP, from a container: busybox nc to the gateway's port 53 (its nc quits at the end of stdin, so stdin stays open a moment).
    const viaTcp = async (name: string, id: number) => tcpReply(await docker(['run', '--rm', '--network', 'dns6net', '--dns', addr, 'busybox', 'sh', '-c',
      `(printf '${tcpQueryEscaped(name, id)}'; sleep 1) | nc ${gw} 53 | od -An -tx1 -v`]));
    assert.deepEqual(await viaTcp('web6', 0x4242), { id: 0x4242, rcode: 0, ips: [ip] });
    assert.deepEqual(await viaTcp('elsewhere.example', 0x4343), { id: 0x4343, rcode: 0, ips: ['10.9.8.6'] }, 'forwarded over TCP to the --dns server');
  } finally {
    upstream.close();
    await d.docker(['rm', '-f', 'web6']);
    await d.docker(['network', 'rm', 'dns6net']);
  }
});

/**
 * The host's links this daemon could have made: its networks' bridges, the links plugged into
 * them, and any link holding an address of `subnet` (where a failed create's bridge would be).
 * Not every link of the host: other engines on the machine add and remove theirs meanwhile.
 */
async function linksOfOurs(subnet: string): Promise<string[]> {
  const nets = (await d.api('GET', '/networks')).body as { Id: string; Driver: string; Options: Record<string, string> }[];
  const bridges = new Set(nets.filter((n) => n.Driver === 'bridge').map((n) => n.Options['com.docker.network.bridge.name'] || `br-${n.Id.slice(0, 12)}`));
  const prefix = subnet.replace(/0\/24$/, '');
  const ifaces = JSON.parse(spawnSync('ip', ['-j', '-4', 'addr'], { encoding: 'utf8' }).stdout) as { ifname: string; addr_info: { local: string }[] }[];
  const out = new Set(ifaces.filter((i) => i.addr_info.some((a) => a.local.startsWith(prefix))).map((i) => i.ifname));
  for (const name of fs.readdirSync('/sys/class/net')) {
    let master = '';
    try {
      master = path.basename(fs.readlinkSync(`/sys/class/net/${name}/master`));
    } catch {}
    if (bridges.has(name) || bridges.has(master)) out.add(name);
  }
  return [...out].sort();
}

test('bad input gets docker\'s error and changes nothing', { timeout: 60_000 }, async () => {
  const subnet = freeSubnet();
  await docker(['network', 'create', '--subnet', subnet, 'taken']);
  try {
    const before = JSON.stringify((await d.api('GET', '/networks')).body);
    const bridgesBefore = await linksOfOurs(subnet);
    await fails(['network', 'create', '--subnet', subnet, 'clash'], /Pool overlaps with other one on this address space/);
    await fails(['network', 'create', '--subnet', '10.1.2.300/24', 'badcidr'], /invalid CIDR address: 10\.1\.2\.300\/24/);
    await fails(['network', 'create', 'taken'], /network with name taken already exists/);
    await fails(['network', 'create', '--driver', 'nosuchdriver', 'x'], /plugin "nosuchdriver" not found/);
    await fails(['network', 'rm', 'bridge'], /bridge is a pre-defined network and cannot be removed/);
    await fails(['network', 'rm', 'nosuchnet'], /network nosuchnet not found/);
    await fails(['network', 'inspect', 'nosuchnet'], /network nosuchnet not found/);
    await fails(['run', '--rm', '--network', 'nosuchnet', 'busybox', 'true'], /network nosuchnet not found/, 125);
    await fails(['run', '--rm', '--ip', '10.0.0.5', 'busybox', 'true'], /user specified IP address is supported on user defined networks only/, 125);
    await fails(['run', '--rm', '--network', 'taken', '--ip', '192.0.2.99', 'busybox', 'true'], /no configured subnet or ip-range contain the IP address 192\.0\.2\.99/, 125);
    assert.equal(JSON.stringify((await d.api('GET', '/networks')).body), before);
    assert.deepEqual(await linksOfOurs(subnet), bridgesBefore);
    assert.deepEqual((await d.api('GET', '/containers/json?all=1')).body, []);
  } finally {
    await d.docker(['network', 'rm', 'taken']);
  }
});

test('network prune removes unused user networks and their bridges, keeps used and built-in ones', { timeout: 60_000 }, async () => {
  const unused = (await docker(['network', 'create', '--subnet', freeSubnet(), 'unused'])).trim();
  await docker(['network', 'create', '--subnet', freeSubnet(), 'used']);
  try {
    await docker(['create', '--name', 'user', '--network', 'used', 'busybox', 'true']);
    const out = await docker(['network', 'prune', '-f']);
    assert.match(out, /Deleted Networks:\nunused\n/);
    assert.equal(fs.existsSync(`/sys/class/net/br-${unused.slice(0, 12)}`), false);
    assert.deepEqual((await docker(['network', 'ls', '--format', '{{.Name}}'])).trim().split('\n').sort(), ['bridge', 'host', 'none', 'used']);
  } finally {
    await d.docker(['rm', '-f', 'user']);
    await d.docker(['network', 'rm', 'used', 'unused']);
  }
});

test('the berth CLI: network create/ls/inspect/connect/disconnect/rm/prune, --network-alias, -p and port', { timeout: 120_000 }, async () => {
  const berth = async (args: string[]) => {
    const r = await d.berth(args);
    assert.equal(r.code, 0, `berth ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const id = (await berth(['network', 'create', '--subnet', freeSubnet(), '--label', 'via=berth', 'clinet'])).trim();
  try {
    assert.match(id, /^[0-9a-f]{64}$/);
    const ls = await berth(['network', 'ls']);
    assert.match(ls, /^NETWORK ID\s+NAME\s+DRIVER\s+SCOPE$/m);
    assert.match(ls, new RegExp(`^${id.slice(0, 12)}\\s+clinet\\s+bridge\\s+local$`, 'm'));
    assert.equal(await berth(['network', 'ls', '-q', '--filter', 'label=via=berth']), `${id.slice(0, 12)}\n`);
    assert.equal(await berth(['network', 'inspect', '-f', '{{.Name}} {{.Driver}}', 'clinet']), 'clinet bridge\n');
    const web = (await berth(['run', '-d', '--name', 'cliweb', '--network', 'clinet', '--network-alias', 'a1', '-p', '127.0.0.1::8080', 'busybox', ...HTTPD])).trim();
    assert.equal(await berth(['run', '--rm', '--network', 'clinet', 'busybox', 'wget', '-qO-', 'http://a1:8080/']), `web on ${web.slice(0, 12)}\n`);
    const port = await berth(['port', 'cliweb']);
    assert.match(port, /^8080\/tcp -> 127\.0\.0\.1:\d+\n$/);
    assert.equal(await berth(['port', 'cliweb', '8080']), `${port.split(' -> ')[1]}`);
    assert.match(await berth(['ps', '--format', '{{.Ports}}']), new RegExp(`${port.split(' -> ')[1]!.trim().replace(/\./g, '\\.')}->8080/tcp`));
    const nope = await d.berth(['port', 'cliweb', '9999']);
    assert.equal(nope.code, 1);
    assert.match(nope.stderr, /No public port '9999\/tcp' published for cliweb/);
    await berth(['network', 'disconnect', 'clinet', 'cliweb']);
    assert.equal(await berth(['exec', 'cliweb', 'ls', '/sys/class/net']), 'lo\n');
    await berth(['network', 'connect', '--alias', 'back', 'clinet', 'cliweb']);
    assert.equal(await berth(['exec', 'cliweb', 'ls', '/sys/class/net']), 'eth0\nlo\n');
    const busy = await d.berth(['network', 'rm', 'clinet']);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /has active endpoints/);
    await berth(['rm', '-f', 'cliweb']);
    assert.equal(await berth(['network', 'rm', 'clinet']), 'clinet\n');
    await berth(['network', 'create', '--subnet', freeSubnet(), 'pruneme']);
    assert.equal(await berth(['network', 'prune', '-f']), 'Deleted Networks:\npruneme\n');
  } finally {
    await d.berth(['rm', '-f', 'cliweb']);
    await d.berth(['network', 'rm', '-f', 'clinet', 'pruneme']);
  }
});

test('default-address-pools: a network created without --subnet gets the next free subnet of the pools', { timeout: 60_000 }, async () => {
  let b = 0;
  let c = 0;
  do {
    b = 100 + Math.floor(Math.random() * 100);
    c = Math.floor(Math.random() * 128) * 2;
  } while (routed(b, c) || routed(b, c + 1));
  const pooled = await startDaemon({ config: { 'default-address-pools': [{ base: `10.${b}.${c}.0/23`, size: 24 }] } });
  try {
    const first = `10.${b}.${c}.0/24`;
    const second = `10.${b}.${c + 1}.0/24`;
    for (const [name, want] of [['p1', first], ['p2', second]] as const) {
      const r = await pooled.docker(['network', 'create', name]);
      assert.equal(r.code, 0, r.stderr);
      const net = JSON.parse((await pooled.docker(['network', 'inspect', name])).stdout)[0];
      assert.equal(net.IPAM.Config[0].Subnet, want);
      assert.equal(net.IPAM.Config[0].Gateway, want.replace(/0\/24$/, '1'));
    }
    const full = await pooled.docker(['network', 'create', 'p3']);
    assert.equal(full.code, 1);
    assert.match(full.stderr, /all predefined address pools have been fully subnetted/);
  } finally {
    await pooled.docker(['network', 'rm', 'p1', 'p2']);
    await pooled.stop();
  }
});

test('kill -9 of berthd, then restart: the embedded DNS answers again and the user network keeps its leases', { timeout: 120_000 }, async () => {
  await docker(['network', 'create', '--subnet', freeSubnet(), 'durable']);
  try {
    const web = (await docker(['run', '-d', '--name', 'dweb', '--network', 'durable', 'busybox', ...HTTPD])).trim();
    const ip = JSON.parse(await docker(['inspect', web]))[0].NetworkSettings.Networks.durable.IPAddress;
    await d.kill9();
    await d.restart();
    assert.equal(JSON.parse(await docker(['inspect', web]))[0].NetworkSettings.Networks.durable.IPAddress, ip);
    assert.equal(await docker(['run', '--rm', '--network', 'durable', 'busybox', 'wget', '-qO-', 'http://dweb:8080/']), `web on ${web.slice(0, 12)}\n`);
    const next = await docker(['run', '--rm', '--network', 'durable', 'busybox', 'ip', '-o', '-4', 'addr', 'show', 'eth0']);
    assert.doesNotMatch(next, new RegExp(`inet ${ip.replace(/\./g, '\\.')}/`), 'the lease survived: a new container gets another address');
  } finally {
    await d.docker(['rm', '-f', 'dweb']);
    await d.docker(['network', 'rm', 'durable']);
  }
});
