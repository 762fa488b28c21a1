/**
 * rtnetlink requests, synchronously, from the daemon itself: a container's stack, and a network's
 * bridge, cost no process.
 * A request is one netlink message; the kernel handles it within send() and queues the answer
 * (an ACK, an error, or the link asked for), which recv() then reads. Sockets are made in the
 * namespace they act on (see inNetns) and keep it for life.
 */
import fs from 'node:fs';
import { SystemError } from '../errors.js';
import { CLONE_NEWNET, netlinkSocket, recv, send, setns, unshare } from '../sys/index.js';
import { ipToInt } from './ipam.js';

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_GETLINK = 18;
const RTM_NEWADDR = 20;
const RTM_NEWROUTE = 24;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 1;
const NLM_F_ACK = 4;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_MASTER = 10;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFF_UP = 1;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_BROADCAST = 4;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const AF_INET = 2;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RTN_UNICAST = 1;

/** An attribute: length, type, payload, padded to 4 bytes. */
function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

const str = (type: number, s: string) => attr(type, Buffer.from(`${s}\0`));
const u32 = (type: number, n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return attr(type, b);
};
const ipv4 = (type: number, ip: string) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ipToInt(ip) ?? 0, 0);
  return attr(type, b);
};
const mac = (type: number, m: string) => attr(type, Buffer.from(m.split(':').map((h) => parseInt(h, 16))));

function ifinfomsg(index = 0, up = false): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(0, 0); // AF_UNSPEC
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(up ? IFF_UP : 0, 8);
  b.writeUInt32LE(up ? IFF_UP : 0, 12);
  return b;
}

let seq = 0;
const reply = Buffer.alloc(65536);

/** Sends one request and reads its answer; throws the kernel's errno as a SystemError. */
function request(fd: number, type: number, flags: number, body: Buffer[], what: string): Buffer {
  const payload = Buffer.concat(body);
  const head = Buffer.alloc(16);
  head.writeUInt32LE(16 + payload.length, 0);
  head.writeUInt16LE(type, 4);
  head.writeUInt16LE(NLM_F_REQUEST | flags, 6);
  head.writeUInt32LE(++seq, 8);
  send(fd, Buffer.concat([head, payload]));
  const n = recv(fd, reply);
  if (n < 16) throw new SystemError(`netlink ${what}: short answer`);
  if (reply.readUInt16LE(4) === NLMSG_ERROR) {
    const errno = -reply.readInt32LE(16);
    if (errno !== 0) throw Object.assign(new SystemError(`netlink ${what}: ${errnoName(errno)}`), { errno });
  }
  return Buffer.from(reply.subarray(0, n));
}

function errnoName(errno: number): string {
  const names: Record<number, string> = { 1: 'operation not permitted', 2: 'no such file or directory', 17: 'file exists', 19: 'no such device', 22: 'invalid argument', 95: 'operation not supported' };
  return names[errno] ?? `errno ${errno}`;
}

/** The daemon's own namespace, held open for stepping back after inNetns. */
let hostNs: number | null = null;
let hostSock: number | null = null;

function host(): { ns: number; sock: number } {
  hostNs ??= fs.openSync('/proc/thread-self/ns/net', 'r');
  hostSock ??= netlinkSocket();
  return { ns: hostNs, sock: hostSock };
}

/**
 * A netlink socket inside the netns bind-mounted on `file`; with `create`, the netns is made first
 * (unshare) and bind-mounted there. The main thread is back in the daemon's namespace on return.
 */
export function netnsSocket(file: string, create: boolean, bindMount: (source: string, target: string) => void): number {
  const h = host();
  let target: number | null = null;
  if (!create) target = fs.openSync(file, 'r');
  try {
    if (create) unshare(CLONE_NEWNET);
    else setns(target!, CLONE_NEWNET);
    try {
      if (create) bindMount('/proc/thread-self/ns/net', file);
      return netlinkSocket();
    } finally {
      setns(h.ns, CLONE_NEWNET);
    }
  } finally {
    if (target !== null) fs.closeSync(target);
  }
}

export interface VethRequest {
  veth: string;
  ifname: string;
  bridge: string;
  mac: string;
  ip: string;
  prefixLen: number;
  /** Default route via this address, or none. */
  gateway: string | null;
  mtu: number;
}

function ifindex(name: string): number {
  const n = Number(fs.readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8'));
  if (!n) throw new SystemError(`no such link: ${name}`);
  return n;
}

/** lo up in a new namespace (always ifindex 1 there). */
export function loopbackUp(inside: number): void {
  request(inside, RTM_NEWLINK, NLM_F_ACK, [ifinfomsg(1, true)], 'set lo up');
}

/**
 * A veth pair: the host end (in the bridge, up) in the daemon's namespace, the other end named
 * v.ifname in the namespace of `inside`, with its MAC, address, link up and default route.
 */
export function addVethPair(file: string, inside: number, v: VethRequest): void {
  const h = host();
  const nsFd = fs.openSync(file, 'r');
  try {
    const peer = Buffer.concat([ifinfomsg(), str(IFLA_IFNAME, v.ifname), u32(IFLA_MTU, v.mtu), mac(IFLA_ADDRESS, v.mac), u32(IFLA_NET_NS_FD, nsFd)]);
    const linkinfo = Buffer.concat([str(IFLA_INFO_KIND, 'veth'), attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer))]);
    request(h.sock, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, [
      ifinfomsg(0, true), str(IFLA_IFNAME, v.veth), u32(IFLA_MTU, v.mtu), u32(IFLA_MASTER, ifindex(v.bridge)), attr(IFLA_LINKINFO, linkinfo),
    ], `add veth ${v.veth}`);
  } finally {
    fs.closeSync(nsFd);
  }
  try {
    const got = request(inside, RTM_GETLINK, 0, [ifinfomsg(), str(IFLA_IFNAME, v.ifname)], `get ${v.ifname}`);
    const index = got.readInt32LE(16 + 4);
    addAddress(inside, index, v.ip, v.prefixLen, NLM_F_EXCL);
    request(inside, RTM_NEWLINK, NLM_F_ACK, [ifinfomsg(index, true)], `set ${v.ifname} up`);
    if (v.gateway) {
      const r = Buffer.alloc(12);
      r.writeUInt8(AF_INET, 0);
      r.writeUInt8(RT_TABLE_MAIN, 4);
      r.writeUInt8(RTPROT_BOOT, 5);
      r.writeUInt8(0, 6); // RT_SCOPE_UNIVERSE
      r.writeUInt8(RTN_UNICAST, 7);
      request(inside, RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, [r, ipv4(RTA_GATEWAY, v.gateway), u32(RTA_OIF, index)], `default route via ${v.gateway}`);
    }
  } catch (err) {
    deleteLinkByName(v.veth);
    throw err;
  }
}

/** ip/prefixLen (with its broadcast address) on link `index`; `mode` NLM_F_EXCL fails if it is there, NLM_F_REPLACE does not. */
function addAddress(sock: number, index: number, ip: string, prefixLen: number, mode: number): void {
  const a = Buffer.alloc(8);
  a.writeUInt8(AF_INET, 0);
  a.writeUInt8(prefixLen, 1);
  a.writeInt32LE(index, 4);
  const broadcast = (((ipToInt(ip) ?? 0) | (prefixLen === 32 ? 0 : 0xffffffff >>> prefixLen)) >>> 0);
  const bcast = [broadcast >>> 24, (broadcast >>> 16) & 255, (broadcast >>> 8) & 255, broadcast & 255].join('.');
  request(sock, RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | mode, [a, ipv4(IFA_LOCAL, ip), ipv4(IFA_ADDRESS, ip), ipv4(IFA_BROADCAST, bcast)], `address ${ip}`);
}

/**
 * A bridge of the daemon's namespace with the address ip/prefixLen, up; a bridge already there
 * (an earlier daemon's) is reused and given the address if it lacks it.
 */
export function ensureBridgeLink(name: string, ip: string, prefixLen: number, mtu: number): void {
  const h = host();
  if (!fs.existsSync(`/sys/class/net/${name}`)) {
    try {
      request(h.sock, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, [
        ifinfomsg(), str(IFLA_IFNAME, name), u32(IFLA_MTU, mtu), attr(IFLA_LINKINFO, str(IFLA_INFO_KIND, 'bridge')),
      ], `add bridge ${name}`);
    } catch (err) {
      if ((err as { errno?: number }).errno !== 17) throw err;
    }
  }
  const index = ifindex(name);
  addAddress(h.sock, index, ip, prefixLen, NLM_F_REPLACE);
  request(h.sock, RTM_NEWLINK, NLM_F_ACK, [ifinfomsg(index, true)], `set ${name} up`);
}

/** Deletes a link of the daemon's namespace by name (a veth takes its peer with it); absent is fine. */
export function deleteLinkByName(name: string): void {
  try {
    request(host().sock, RTM_DELLINK, NLM_F_ACK, [ifinfomsg(), str(IFLA_IFNAME, name)], `delete ${name}`);
  } catch (err) {
    if ((err as { errno?: number }).errno !== 19) throw err;
  }
}
