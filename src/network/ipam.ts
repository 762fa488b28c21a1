/**
 * IPv4 address management: CIDR arithmetic, the subnets the host already routes (so a new network
 * never shadows one), picking a free subnet from the address pools, and the next free address of a
 * network. Pure apart from reading /proc/net/route.
 */
import fs from 'node:fs';
import { InvalidParameter } from '../errors.js';

export interface Cidr {
  /** The network address as an unsigned 32-bit number. */
  base: number;
  bits: number;
}

export function ipToInt(ip: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return null;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function mask(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

/** "10.1.0.0/16" → its network; with `strict`, host bits must be zero (Docker's check for --subnet). */
export function parseCidr(s: string, strict = false): Cidr {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(s.trim());
  const ip = m ? ipToInt(m[1]!) : null;
  const bits = m ? Number(m[2]) : -1;
  if (ip === null || bits < 0 || bits > 32) throw new InvalidParameter(`invalid CIDR address: ${s}`);
  const base = (ip & mask(bits)) >>> 0;
  if (strict && base !== ip) throw new InvalidParameter(`invalid subnet ${s}: it should be ${intToIp(base)}/${bits}`);
  return { base, bits };
}

export function formatCidr(c: Cidr): string {
  return `${intToIp(c.base)}/${c.bits}`;
}

export function contains(c: Cidr, ip: number): boolean {
  return ((ip & mask(c.bits)) >>> 0) === c.base;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const bits = Math.min(a.bits, b.bits);
  return ((a.base & mask(bits)) >>> 0) === ((b.base & mask(bits)) >>> 0);
}

export function size(c: Cidr): number {
  return 2 ** (32 - c.bits);
}

/** The subnets of the host's routing table (what is on-link or routed somewhere), default route excluded. */
export function hostRoutes(): Cidr[] {
  let text = '';
  try {
    text = fs.readFileSync('/proc/net/route', 'utf8');
  } catch {
    return [];
  }
  const out: Cidr[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    // Little-endian hex words.
    const le = (h: string) => Buffer.from(h, 'hex').readUInt32LE(0);
    const dest = le(f[1]!);
    const m = le(f[7]!);
    if (m === 0) continue;
    const bits = 32 - Math.log2(((~m) >>> 0) + 1);
    if (!Number.isInteger(bits)) continue;
    out.push({ base: dest >>> 0, bits });
  }
  return out;
}

/** Docker's default address pools: 172.17–31.0.0/16, then 192.168.0.0/16 split in /20s. */
export const DEFAULT_POOLS: { base: string; size: number }[] = [
  { base: '172.17.0.0/16', size: 16 }, { base: '172.18.0.0/16', size: 16 }, { base: '172.19.0.0/16', size: 16 },
  { base: '172.20.0.0/14', size: 16 }, { base: '172.24.0.0/14', size: 16 }, { base: '172.28.0.0/14', size: 16 },
  { base: '192.168.0.0/16', size: 20 },
];

/** The first subnet of the pools that overlaps none of `taken`. */
export function pickSubnet(pools: { base: string; size: number }[], taken: Cidr[]): Cidr | null {
  for (const p of pools) {
    const pool = parseCidr(p.base);
    const step = size({ base: 0, bits: p.size });
    for (let b = pool.base; contains(pool, b) && b <= 0xffffffff; b += step) {
      const cand = { base: b >>> 0, bits: p.size };
      if (!taken.some((t) => overlaps(t, cand))) return cand;
    }
  }
  return null;
}

/**
 * The lowest free address of `range` (the subnet, or the --ip-range inside it), never the network
 * address, the broadcast address or one of `used` (which holds the gateway).
 */
export function nextFree(subnet: Cidr, range: Cidr, used: Set<number>): number | null {
  const first = range.base === subnet.base ? range.base + 1 : range.base;
  const last = range.base + size(range) - 1;
  const broadcast = subnet.base + size(subnet) - 1;
  for (let ip = first; ip <= last; ip++) {
    if (ip === broadcast || used.has(ip >>> 0)) continue;
    return ip >>> 0;
  }
  return null;
}

/** Docker's MAC for an address: 02:42 followed by the four bytes of the IPv4 address. */
export function macFromIp(ip: string): string {
  const n = ipToInt(ip) ?? 0;
  return ['02', '42', ...[n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}
