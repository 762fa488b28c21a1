/**
 * The embedded DNS server of a user-defined network: a UDP listener in berthd on the network's
 * gateway address, port 53 (the containers' resolv.conf points there). It answers A queries for the
 * names, short IDs and aliases of the containers on that network, and relays every other question,
 * unchanged, to the host's resolvers.
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import { log } from '../log.js';

const TYPE_A = 1;
const CLASS_IN = 1;
const TTL = 600;
const FORWARD_TIMEOUT_MS = 3000;

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

/**
 * Serves `address`:53. `lookup(name)` gives the addresses of a name of the network's, or null when
 * the name is not one of its own (the question is then forwarded).
 */
export async function serveDns(address: string, lookup: (name: string) => string[] | null, upstream: () => string[] = hostNameservers): Promise<DnsServer> {
  const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  sock.on('message', (msg, rinfo) => {
    const q = parseQuestion(msg);
    if (!q) return;
    const ips = q.cls === CLASS_IN ? lookup(q.name) : null;
    if (ips) {
      sock.send(answer(msg, q, ips), rinfo.port, rinfo.address);
      return;
    }
    forward(msg, upstream(), (reply) => sock.send(reply ?? answer(msg, q, [], 2), rinfo.port, rinfo.address));
  });
  sock.on('error', (err) => log.warn('embedded DNS server error', { address, error: err.message }));
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(53, address, () => {
      sock.off('error', reject);
      resolve();
    });
  });
  return { close: () => new Promise<void>((r) => sock.close(() => r())) };
}

/** Asks the servers in turn; `done(null)` once none answered in time. */
function forward(msg: Buffer, servers: string[], done: (reply: Buffer | null) => void): void {
  const server = servers[0];
  if (!server) return done(null);
  const up = dgram.createSocket('udp4');
  const timer = setTimeout(() => {
    up.close();
    forward(msg, servers.slice(1), done);
  }, FORWARD_TIMEOUT_MS);
  up.on('message', (reply) => {
    clearTimeout(timer);
    up.close();
    done(reply);
  });
  up.on('error', () => {
    clearTimeout(timer);
    up.close();
    forward(msg, servers.slice(1), done);
  });
  up.send(msg, 53, server);
}
