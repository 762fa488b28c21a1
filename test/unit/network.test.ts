/** The pure parts of src/network: CIDR arithmetic and pools, ports, /etc files, DNS messages (and the DNS server's TCP framing, on loopback), iptables rules. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidParameter } from '../../src/errors.js';
import { formatCidr, macFromIp, nextFree, overlaps, parseCidr, pickSubnet, ipToInt, intToIp } from '../../src/network/ipam.js';
import { checkPortBindings, portMap, wantedPorts } from '../../src/network/ports.js';
import { hostsFile, parseExtraHost } from '../../src/network/files.js';
import net from 'node:net';
import { answer, parseQuestion, serveDns } from '../../src/network/dns.js';
import { Iptables } from '../../src/network/iptables.js';

test('CIDRs parse strictly, overlap and pick the first free subnet of the pools', () => {
  assert.equal(formatCidr(parseCidr('10.1.2.3/16')), '10.1.0.0/16');
  assert.throws(() => parseCidr('10.1.2.300/24'), (e) => e instanceof InvalidParameter && /invalid CIDR address: 10\.1\.2\.300\/24/.test(e.message));
  assert.throws(() => parseCidr('10.1.2.3/24', true), /it should be 10\.1\.2\.0\/24/);
  assert.throws(() => parseCidr('10.0.0.0/33'), InvalidParameter);
  assert.ok(overlaps(parseCidr('10.0.0.0/8'), parseCidr('10.200.0.0/24')));
  assert.ok(!overlaps(parseCidr('10.1.0.0/24'), parseCidr('10.1.1.0/24')));
  const pools = [{ base: '172.17.0.0/16', size: 16 }, { base: '192.168.0.0/16', size: 20 }];
  assert.equal(formatCidr(pickSubnet(pools, [])!), '172.17.0.0/16');
  assert.equal(formatCidr(pickSubnet(pools, [parseCidr('172.17.5.0/24')])!), '192.168.0.0/20');
  assert.equal(formatCidr(pickSubnet(pools, [parseCidr('172.16.0.0/12'), parseCidr('192.168.0.0/19')])!), '192.168.32.0/20');
  assert.equal(pickSubnet([{ base: '10.0.0.0/24', size: 24 }], [parseCidr('10.0.0.0/8')]), null);
  assert.equal(intToIp(ipToInt('172.17.0.2')!), '172.17.0.2');
  assert.equal(ipToInt('1.2.3'), null);
});

test('addresses: the lowest free of the range, never network, broadcast or used; MAC from the address like docker', () => {
  const subnet = parseCidr('10.5.0.0/24');
  const used = new Set([ipToInt('10.5.0.1')!, ipToInt('10.5.0.2')!]);
  assert.equal(intToIp(nextFree(subnet, subnet, used)!), '10.5.0.3');
  assert.equal(intToIp(nextFree(subnet, parseCidr('10.5.0.128/25'), used)!), '10.5.0.128');
  const full = new Set(Array.from({ length: 254 }, (_, i) => ipToInt(`10.5.0.${i + 1}`)!));
  assert.equal(nextFree(subnet, subnet, full), null, 'the broadcast address is never handed out');
  assert.equal(macFromIp('172.17.0.2'), '02:42:ac:11:00:02');
});

test('port bindings: docker keys and ranges, ephemeral ports, -P for exposed ports, and NetworkSettings.Ports', () => {
  const w = wantedPorts({ '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '8080' }], '53/udp': [{ HostPort: '' }] }, true, { '80/tcp': {}, '443/tcp': {} });
  assert.deepEqual(w, [
    { proto: 'tcp', containerPort: 80, hostIp: '127.0.0.1', hostPorts: [8080, 8080] },
    { proto: 'udp', containerPort: 53, hostIp: '0.0.0.0', hostPorts: [0, 0] },
    { proto: 'tcp', containerPort: 443, hostIp: '0.0.0.0', hostPorts: [0, 0] },
  ]);
  assert.deepEqual(wantedPorts({ '80': [{ HostPort: '9000-9010' }] }, false, {})[0]!.hostPorts, [9000, 9010]);
  assert.throws(() => checkPortBindings({ '99999/tcp': [] }), /invalid port specification: "99999\/tcp"/);
  assert.throws(() => checkPortBindings({ '80/tcp': [{ HostPort: 'x' }] }), /invalid port specification: "x"/);
  assert.throws(() => checkPortBindings({ '80/tcp': [{ HostIp: 'nope', HostPort: '1' }] }), /invalid host IP/);
  assert.deepEqual(portMap([{ proto: 'tcp', containerPort: 80, hostIp: '0.0.0.0', hostPort: 32768 }], { '80/tcp': {}, '81/tcp': {} }), {
    '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '32768' }], '81/tcp': null,
  });
});

test('/etc/hosts: localhost lines, --add-host (host-gateway too), links and the container\'s own names', () => {
  const text = hostsFile({ extraHosts: ['db:10.0.0.9', 'gw:host-gateway', 'v6=[::1]'], hostGateway: '172.30.0.1', entries: [['172.30.0.3', 'alias', 'abc', 'other'], ['172.30.0.2', 'box']] });
  assert.match(text, /^127\.0\.0\.1\tlocalhost$/m);
  assert.match(text, /^10\.0\.0\.9\tdb$/m);
  assert.match(text, /^172\.30\.0\.1\tgw$/m);
  assert.match(text, /^::1\tv6$/m);
  assert.match(text, /^172\.30\.0\.3\talias abc other\n172\.30\.0\.2\tbox\n$/m);
  assert.throws(() => parseExtraHost('nohost'), /invalid IP address in add-host/);
  assert.throws(() => parseExtraHost('h:999.1.1.1'), /invalid IP address in add-host/);
});

test('DNS: a question parses, an answer carries A records; other types get none; NXDOMAIN has no answers', () => {
  // A query for web.example (id 0x1234, RD), type A, class IN.
  const q = Buffer.from('12340100000100000000000003776562076578616d706c650000010001', 'hex');
  const parsed = parseQuestion(q)!;
  assert.deepEqual({ id: parsed.id, name: parsed.name, type: parsed.type, cls: parsed.cls }, { id: 0x1234, name: 'web.example', type: 1, cls: 1 });
  const a = answer(q, parsed, ['10.1.2.3', '10.1.2.4']);
  assert.equal(a.readUInt16BE(0), 0x1234);
  assert.equal(a.readUInt16BE(2) & 0x8000, 0x8000, 'a response');
  assert.equal(a.readUInt16BE(6), 2, 'two answers');
  assert.deepEqual([...a.subarray(a.length - 4)], [10, 1, 2, 4]);
  const aaaa = Buffer.from(q);
  aaaa.writeUInt16BE(28, parsed.end - 4);
  assert.equal(answer(aaaa, parseQuestion(aaaa)!, ['10.1.2.3']).readUInt16BE(6), 0);
  assert.equal(answer(q, parsed, [], 3).readUInt16BE(2) & 0xf, 3);
  assert.equal(parseQuestion(Buffer.from('1234', 'hex')), null);
});

test('DNS over TCP: queries split across segments or sharing one are each answered, framed', async () => {
  const addr = `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
  const server = await serveDns(addr, (name) => (name === 'web' ? ['10.1.2.3'] : null), () => []);
  try {
    const query = (id: number) => {
      const msg = Buffer.from(`${id.toString(16).padStart(4, '0')}01000001000000000000037765620000010001`, 'hex');
      return Buffer.concat([Buffer.from([0, msg.length]), msg]);
    };
    const conn = net.connect(53, addr);
    const replies: Buffer[] = [];
    let buf = Buffer.alloc(0);
    const got = new Promise<void>((resolve) => conn.on('data', (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        replies.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (replies.length === 3) resolve();
    }));
    const first = query(1);
    conn.write(first.subarray(0, 5));
    await new Promise((r) => setTimeout(r, 50));
    conn.write(Buffer.concat([first.subarray(5), query(2), query(3)]));
    await got;
    conn.destroy();
    assert.deepEqual(replies.map((r) => r.readUInt16BE(0)), [1, 2, 3]);
    for (const r of replies) assert.deepEqual([...r.subarray(r.length - 4)], [10, 1, 2, 3]);
  } finally {
    await server.close();
  }
});

test('iptables: one restore input for masquerade, DNAT, isolation, internal networks and icc=false', () => {
  const ipt = new Iptables('BERTH-br0');
  const text = ipt.render(
    [{ bridge: 'br0', subnet: '10.0.0.0/24', internal: false, icc: false, masquerade: true }, { bridge: 'br1', subnet: '10.0.1.0/24', internal: true, icc: true, masquerade: true },
      { bridge: 'br2', subnet: '10.0.2.0/24', internal: false, icc: true, masquerade: false }],
    [{ proto: 'tcp', hostIp: '127.0.0.1', hostPort: 8080, containerIp: '10.0.0.2', containerPort: 80, bridge: 'br0' }],
  );
  const lines = text.split('\n');
  for (const l of [
    ':BERTH-br0-DNAT - [0:0]',
    '-A BERTH-br0-POST -s 10.0.0.0/24 ! -o br0 -j MASQUERADE',
    '-A BERTH-br0-DNAT -d 127.0.0.1/32 ! -i br0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80',
    '-A BERTH-br0-FWD -i br0 -o br1 -j DROP',
    '-A BERTH-br0-FWD -i br1 -o br0 -j DROP',
    '-A BERTH-br0-FWD -i br0 -o br0 -j DROP',
    '-A BERTH-br0-FWD -i br1 ! -o br1 -j DROP',
  ]) assert.ok(lines.includes(l), `${l} in\n${text}`);
  assert.ok(!lines.some((l) => l.includes('-s 10.0.1.0/24') && l.includes('MASQUERADE')), 'an internal network is not masqueraded');
  assert.ok(!lines.some((l) => l.includes('-s 10.0.2.0/24') && l.includes('MASQUERADE')), 'enable_ip_masquerade=false is not masqueraded');
  assert.equal(lines.filter((l) => l === 'COMMIT').length, 2);
  const direct = new Iptables('BERTH-br0', true).render([{ bridge: 'br0', subnet: '10.0.0.0/24', internal: false, icc: true, masquerade: true }], []);
  assert.ok(direct.split('\n').includes('-A BERTH-br0-POST -s 127.0.0.0/8 -o br0 -j MASQUERADE'), 'without the proxy, loopback clients are masqueraded');
});
