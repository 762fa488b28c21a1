/**
 * The embedded DNS server of a user-defined network: berthd listens on the network's gateway
 * address, port 53, over UDP and TCP (the containers' resolv.conf points there). It answers A
 * queries for the names, short IDs and aliases of the containers on that network (AAAA and other
 * types for those names get an empty NOERROR: the name exists, without such records, so resolvers
 * asking A and AAAA together do not wait), and relays every other question, unchanged, to the
 * upstream resolvers (over the transport it came by).
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import { log } from '../log.js';

const TYPE_A = 1;
const CLASS_IN = 1;
const TTL = 600;
const FORWARD_TIMEOUT_MS = 3000;
/** A TCP client that sends nothing for this long is dropped. */
const TCP_IDLE_MS = 10_000;

export interface Question {
  id: number;
  flags: number;
  name: string;
  type: number;
  cls: number;
  /** Where the question section ends. */
  end: number;
}

export function parseQuestion(msg: Buffer): Question | null {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return null;
  const labels: string[] = [];
  let off = 12;
  for (;;) {
    if (off >= msg.length) return null;
    const len = msg[off]!;
    if (len === 0) break;
    if (len & 0xc0 || off + 1 + len > msg.length) return null;
    labels.push(msg.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
  }
  off++;
  if (off + 4 > msg.length) return null;
  return { id: msg.readUInt16BE(0), flags: msg.readUInt16BE(2), name: labels.join('.').toLowerCase(), type: msg.readUInt16BE(off), cls: msg.readUInt16BE(off + 2), end: off + 4 };
}

/** A reply to `q` (from `msg`) with A answers for `ips`; rcode 3 (NXDOMAIN) for none at all. */
export function answer(msg: Buffer, q: Question, ips: string[], rcode = 0): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.id, 0);
  header.writeUInt16BE(0x8000 | 0x0400 | (q.flags & 0x0100) | 0x0080 | rcode, 2); // QR AA RD RA
  header.writeUInt16BE(1, 4);
  const records = q.type === TYPE_A || q.type === 255 ? ips : [];
  header.writeUInt16BE(records.length, 6);
  const answers = records.map((ip) => {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0);
    rr.writeUInt16BE(TYPE_A, 2);
    rr.writeUInt16BE(CLASS_IN, 4);
    rr.writeUInt32BE(TTL, 6);
    rr.writeUInt16BE(4, 10);
    ip.split('.').forEach((b, i) => rr.writeUInt8(Number(b), 12 + i));
    return rr;
  });
  return Buffer.concat([header, msg.subarray(12, q.end), ...answers]);
}

/** The host's nameservers, read once per query batch (resolv.conf may change under us). */
export function hostNameservers(): string[] {
  try {
    return fs.readFileSync('/etc/resolv.conf', 'utf8').split('\n')
      .map((l) => /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(l)?.[1])
      .filter((s): s is string => !!s);
  } catch {
    return [];
  }
}

export interface DnsServer {
  close(): Promise<void>;
}

type Transport = 'udp' | 'tcp';

/**
 * Serves `address`:53 over UDP and TCP. `lookup(name)` gives the addresses of a name of the
 * network's, or null when the name is not one of its own (the question is then forwarded).
 */
export async function serveDns(address: string, lookup: (name: string) => string[] | null, upstream: () => string[] = hostNameservers): Promise<DnsServer> {
  const handle = (msg: Buffer, via: Transport, reply: (out: Buffer) => void) => {
    const q = parseQuestion(msg);
    if (!q) return;
    const ips = q.cls === CLASS_IN ? lookup(q.name) : null;
    if (ips) return reply(answer(msg, q, ips));
    forward(msg, via, upstream(), (got) => reply(got ?? answer(msg, q, [], 2)));
  };
  const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  sock.on('message', (msg, rinfo) => handle(msg, 'udp', (out) => sock.send(out, rinfo.port, rinfo.address)));
  sock.on('error', (err) => log.warn('embedded DNS server error', { address, error: err.message }));
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(53, address, () => {
      sock.off('error', reject);
      resolve();
    });
  });
  const tcp = net.createServer((conn) => {
    conn.setTimeout(TCP_IDLE_MS, () => conn.destroy());
    conn.on('error', () => conn.destroy());
    readFramed(conn, (msg) => handle(msg, 'tcp', (out) => {
      if (!conn.destroyed) conn.write(framed(out));
    }));
  });
  // UDP is what resolvers use first; a TCP listener that cannot bind costs only the fallback.
  await new Promise<void>((resolve) => {
    tcp.once('error', (err) => {
      log.warn('embedded DNS server: no TCP listener', { address, error: err.message });
      resolve();
    });
    tcp.listen(53, address, () => resolve());
  });
  return {
    close: async () => {
      await new Promise<void>((r) => sock.close(() => r()));
      if (tcp.listening) await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}

/** A DNS message as TCP carries it: a two-byte length first. */
function framed(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length, 0);
  return Buffer.concat([len, msg]);
}

/** Calls `each` for every length-prefixed message that arrives on `conn`. */
function readFramed(conn: net.Socket, each: (msg: Buffer) => void): void {
  let buf = Buffer.alloc(0);
  conn.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const len = buf.readUInt16BE(0);
      each(buf.subarray(2, 2 + len));
      buf = buf.subarray(2 + len);
    }
  });
}

/** Asks the servers in turn (over `via`); `done(null)` once none answered in time. */
function forward(msg: Buffer, via: Transport, servers: string[], done: (reply: Buffer | null) => void): void {
  const server = servers[0];
  if (!server) return done(null);
  let settled = false;
  const finish = (reply: Buffer | null) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    close();
    if (reply) done(reply);
    else forward(msg, via, servers.slice(1), done);
  };
  const timer = setTimeout(() => finish(null), FORWARD_TIMEOUT_MS);
  let close: () => void;
  if (via === 'udp') {
    const up = dgram.createSocket('udp4');
    close = () => up.close();
    up.on('message', (reply) => finish(reply));
    up.on('error', () => finish(null));
    up.send(msg, 53, server);
  } else {
    const up = net.connect(53, server);
    close = () => up.destroy();
    up.on('error', () => finish(null));
    up.on('close', () => finish(null));
    readFramed(up, (reply) => finish(Buffer.from(reply)));
    up.write(framed(msg));
  }
}
