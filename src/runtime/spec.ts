/**
 * OCI runtime config.json for a container, with Docker's defaults: which
 * namespaces, mounts, capabilities, masked paths, device rules and cgroup
 * limits a `docker run` gets. Pure apart from reading a few host facts
 * (cgroup version, the daemon's own capability bounding set and rlimits),
 * which are cached because they do not change while the daemon runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InvalidParameter } from '../errors.js';
import { cgroupVersion, hasMemsw } from './cgroups.js';
import { lookupHomeSync } from './user.js';
import { type OciSeccomp, defaultSeccomp, parseSeccompProfile } from './seccomp.js';

export interface OciMount { destination: string; source: string; type: string; options: string[] }
export interface OciNamespace { type: 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup'; path?: string }
export interface OciRlimit { type: string; soft: number; hard: number }
export interface OciCapabilities { bounding: string[]; effective: string[]; permitted: string[]; inheritable?: string[]; ambient?: string[] }
export interface OciProcess {
  terminal: boolean;
  user: { uid: number; gid: number; additionalGids?: number[] };
  args: string[];
  env: string[];
  cwd: string;
  capabilities: OciCapabilities;
  rlimits: OciRlimit[];
  noNewPrivileges: boolean;
  oomScoreAdj?: number;
}
export interface OciDeviceRule { allow: boolean; type?: 'a' | 'c' | 'b'; major?: number; minor?: number; access: string }
export interface OciDevice { path: string; type: 'c' | 'b' | 'p'; major: number; minor: number; fileMode?: number; uid?: number; gid?: number }
export interface OciIdMapping { containerID: number; hostID: number; size: number }
export interface OciResources {
  devices: OciDeviceRule[];
  memory?: { limit?: number; swap?: number; reservation?: number; disableOOMKiller?: boolean };
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string };
  pids?: { limit: number };
}
export interface OciSpec {
  ociVersion: string;
  process: OciProcess;
  root: { path: string; readonly: boolean };
  /** Absent when the container shares the host's UTS namespace (runc refuses to set it there). */
  hostname?: string;
  mounts: OciMount[];
  annotations?: Record<string, string>;
  linux: {
    namespaces: OciNamespace[];
    cgroupsPath: string;
    resources: OciResources;
    maskedPaths: string[];
    readonlyPaths: string[];
    sysctl?: Record<string, string>;
    seccomp?: OciSeccomp;
    devices?: OciDevice[];
    uidMappings?: OciIdMapping[];
    gidMappings?: OciIdMapping[];
  };
}

export interface SpecOptions {
  rootfs: string;
  args: string[]; env: string[]; cwd: string;
  user: { uid: number; gid: number; additionalGids: number[] };
  hostname: string; tty: boolean; openStdin: boolean;
  /** The NIS domain name (Config.Domainname), set as the kernel.domainname sysctl as dockerd does: the OCI spec runc 1.1 reads has no field for it. */
  domainname?: string;
  /** none = a new, empty network namespace (loopback only). */
  network: { mode: 'none' | 'host' | 'netns'; path?: string };
  ipcHost?: boolean; pidHost?: boolean; utsHost?: boolean;
  /** cgroupfs-style path, e.g. "berth/<id>"; made absolute so it never depends on the daemon's own cgroup. */
  cgroupsPath: string;
  resources: {
    memory?: number; memorySwap?: number; cpuShares?: number; cpuQuota?: number; cpuPeriod?: number; pidsLimit?: number;
    memoryReservation?: number; oomKillDisable?: boolean; cpusetCpus?: string; cpusetMems?: string;
  };
  mounts: OciMount[];
  privileged?: boolean; capAdd?: string[]; capDrop?: string[]; readonlyRootfs?: boolean;
  labels?: Record<string, string>;
  /** default = berth's profile (seccomp.ts); a string is a profile in Docker's JSON format. Privileged containers get none. */
  seccomp?: 'default' | 'unconfined' | { profile: string };
  noNewPrivileges?: boolean;
  /** null/undefined = Docker's lists; [] = none (systempaths=unconfined). */
  maskedPaths?: string[] | null; readonlyPaths?: string[] | null;
  /** Join another container's namespace (container:<id>) instead of a new one; user only with idMappings. */
  namespacePaths?: Partial<Record<'pid' | 'ipc' | 'uts' | 'user', string>>;
  /** Replace Docker's default nofile limit; each at most the daemon's own hard limit (checked by the caller). */
  rlimits?: OciRlimit[];
  oomScoreAdj?: number;
  /** Extra device nodes (--device) and the cgroup rules that allow them (--device, --device-cgroup-rule). */
  devices?: OciDevice[]; deviceRules?: OciDeviceRule[];
  /** A user namespace with these mappings (userns-remap). */
  idMappings?: { uid: OciIdMapping[]; gid: OciIdMapping[] };
}

export type ResourceLimits = SpecOptions['resources'];

/** The OCI resources for Docker's limits (at create, and for `update` of a running container). */
export function cgroupLimits(r: ResourceLimits): Omit<OciResources, 'devices'> {
  const out: Omit<OciResources, 'devices'> = {};
  if (r.memory && r.memory > 0) {
    out.memory = { limit: r.memory };
    if (hasMemsw()) {
      if (r.memorySwap === -1) out.memory.swap = -1;
      else if (r.memorySwap && r.memorySwap > 0) out.memory.swap = r.memorySwap;
      else out.memory.swap = r.memory * 2;
    }
  }
  if (r.cpuShares || r.cpuQuota || r.cpuPeriod) {
    out.cpu = {};
    if (r.cpuShares) out.cpu.shares = r.cpuShares;
    if (r.cpuQuota) out.cpu.quota = r.cpuQuota;
    if (r.cpuPeriod) out.cpu.period = r.cpuPeriod;
  }
  if (r.pidsLimit && r.pidsLimit > 0) out.pids = { limit: r.pidsLimit };
  if (r.memoryReservation && r.memoryReservation > 0) out.memory = { ...out.memory, reservation: r.memoryReservation };
  if (r.oomKillDisable) out.memory = { ...out.memory, disableOOMKiller: true };
  if (r.cpusetCpus) out.cpu = { ...out.cpu, cpus: r.cpusetCpus };
  if (r.cpusetMems) out.cpu = { ...out.cpu, mems: r.cpusetMems };
  return out;
}

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Capability numbers as the kernel counts them (bit n of CapBnd). */
const CAP_NAMES = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP',
  'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER',
  'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE',
  'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP',
  'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF',
  'CHECKPOINT_RESTORE',
].map((n) => `CAP_${n}`);

/** Capability names as a bit mask in hex (CapEff's form), or null when one is unknown to berth. */
export function capabilityMask(names: string[]): string | null {
  let mask = 0n;
  for (const name of names) {
    const bit = CAP_NAMES.indexOf(name);
    if (bit < 0) return null;
    mask |= 1n << BigInt(bit);
  }
  return mask.toString(16);
}

export const DEFAULT_CAPS = [
  'CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID', 'SETUID', 'SETFCAP', 'SETPCAP',
  'NET_BIND_SERVICE', 'SYS_CHROOT', 'KILL', 'AUDIT_WRITE',
].map((n) => `CAP_${n}`);

const MASKED_PATHS = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

let hostBounding: string[] | undefined;
/** The daemon's own bounding set: a container can never hold more (CAP_MAC_OVERRIDE is missing on some hosts). */
export function hostCapabilities(): string[] {
  if (!hostBounding) {
    const status = fs.readFileSync('/proc/self/status', 'utf8');
    const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(status);
    const mask = m ? BigInt(`0x${m[1]}`) : (1n << BigInt(CAP_NAMES.length)) - 1n;
    hostBounding = CAP_NAMES.filter((_, i) => (mask >> BigInt(i)) & 1n);
  }
  return hostBounding;
}

/** Docker's ulimit names and the line of /proc/self/limits that holds each. */
export const RLIMIT_LINES: Record<string, string> = {
  cpu: 'Max cpu time', fsize: 'Max file size', data: 'Max data size', stack: 'Max stack size', core: 'Max core file size',
  rss: 'Max resident set', nproc: 'Max processes', nofile: 'Max open files', memlock: 'Max locked memory', as: 'Max address space',
  locks: 'Max file locks', sigpending: 'Max pending signals', msgqueue: 'Max msgqueue size', nice: 'Max nice priority',
  rtprio: 'Max realtime priority', rttime: 'Max realtime timeout',
};

let ownLimits: Record<string, { soft: number; hard: number }> | undefined;
/**
 * The daemon's own rlimits by Docker name (-1 = unlimited). A container cannot get a hard limit above
 * the daemon's: runc fails with "error setting rlimit" (raising one is refused even to root on some hosts).
 */
export function hostRlimits(): Record<string, { soft: number; hard: number }> {
  if (!ownLimits) {
    const text = fs.readFileSync('/proc/self/limits', 'utf8');
    const num = (s: string | undefined) => (s === undefined || s === 'unlimited' ? -1 : Number(s));
    ownLimits = {};
    for (const [name, line] of Object.entries(RLIMIT_LINES)) {
      const m = new RegExp(`^${line}\\s+(\\S+)\\s+(\\S+)`, 'm').exec(text);
      if (m) ownLimits[name] = { soft: num(m[1]), hard: num(m[2]) };
    }
  }
  return ownLimits;
}

/** RLIMIT_NOFILE of the daemon itself: Docker's default for a container, within our hard limit. */
function ownNofile(): { soft: number; hard: number } {
  const n = hostRlimits().nofile ?? { soft: -1, hard: -1 };
  const cap = (v: number) => (v < 0 ? 1048576 : v);
  return { soft: cap(n.soft), hard: cap(n.hard) };
}

function normalizeCap(name: string): string {
  const up = name.trim().toUpperCase();
  if (up === 'ALL') return 'ALL';
  const full = up.startsWith('CAP_') ? up : `CAP_${up}`;
  if (!CAP_NAMES.includes(full)) throw new InvalidParameter(`unknown capability: "${full}"`);
  return full;
}

/** Docker's rules: start from the default 14 (or everything for ALL in capAdd), drop, then add. */
export function computeCapabilities(o: Pick<SpecOptions, 'privileged' | 'capAdd' | 'capDrop'>): string[] {
  const host = hostCapabilities();
  if (o.privileged) return [...host];
  const add = (o.capAdd ?? []).map(normalizeCap);
  const drop = (o.capDrop ?? []).map(normalizeCap);
  let caps: string[];
  if (add.includes('ALL')) caps = [...host];
  else if (drop.includes('ALL')) caps = [];
  else caps = [...DEFAULT_CAPS];
  caps = caps.filter((c) => !drop.includes(c) || add.includes(c));
  for (const c of add) if (c !== 'ALL' && !caps.includes(c)) caps.push(c);
  // A capability the daemon does not hold cannot be granted; runc would fail with EPERM.
  return caps.filter((c) => host.includes(c));
}

function deviceRules(privileged: boolean, extra: OciDeviceRule[] = []): OciDeviceRule[] {
  if (privileged) return [{ allow: true, access: 'rwm' }];
  const c = (major: number, minor: number | undefined): OciDeviceRule => ({ allow: true, type: 'c', major, minor, access: 'rwm' });
  const rules: OciDeviceRule[] = [
    { allow: false, access: 'rwm' },
    { allow: true, type: 'c', access: 'm' },   // mknod of any char/block device, but no use of it
    { allow: true, type: 'b', access: 'm' },
    c(1, 3), c(1, 5), c(1, 7), c(1, 8), c(1, 9), // null zero full random urandom
    c(5, 0), c(5, 1), c(5, 2),                   // tty console ptmx
    c(136, undefined),                           // /dev/pts/*
    c(10, 200),                                  // tun
    ...extra,
  ];
  return rules.map((r) => {
    const out: OciDeviceRule = { allow: r.allow, access: r.access };
    if (r.type) out.type = r.type;
    if (r.major !== undefined) out.major = r.major;
    if (r.minor !== undefined) out.minor = r.minor;
    return out;
  });
}

function defaultMounts(privileged: boolean): OciMount[] {
  const ro = privileged ? 'rw' : 'ro';
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', ro] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: [ro, 'nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=67108864'] },
  ];
}

function withDefaultEnv(o: SpecOptions): string[] {
  const env = [...o.env];
  const has = (k: string) => env.some((e) => e.startsWith(`${k}=`));
  if (!has('PATH')) env.unshift(DEFAULT_PATH);
  if (!has('HOSTNAME')) env.splice(1, 0, `HOSTNAME=${o.hostname}`);
  if (o.tty && !has('TERM')) env.push('TERM=xterm');
  if (!has('HOME')) env.push(`HOME=${lookupHomeSync(o.rootfs, o.user.uid)}`);
  return env;
}

export function buildSpec(o: SpecOptions): OciSpec {
  const privileged = o.privileged ?? false;
  const v2 = cgroupVersion() === 2;
  const caps = computeCapabilities(o);
  const { soft, hard } = ownNofile();

  const namespaces: OciNamespace[] = [{ type: 'mount' }];
  const joined = (type: 'pid' | 'ipc' | 'uts' | 'user'): OciNamespace => (o.namespacePaths?.[type] ? { type, path: o.namespacePaths[type] } : { type });
  if (!o.pidHost) namespaces.push(joined('pid'));
  if (!o.ipcHost) namespaces.push(joined('ipc'));
  if (!o.utsHost) namespaces.push(joined('uts'));
  if (o.network.mode === 'none') namespaces.push({ type: 'network' });
  else if (o.network.mode === 'netns') {
    if (!o.network.path) throw new InvalidParameter('network mode netns needs a namespace path');
    namespaces.push({ type: 'network', path: o.network.path });
  }
  if (v2) namespaces.push({ type: 'cgroup' });
  if (o.idMappings) namespaces.push(joined('user'));

  // A caller-supplied mount at a default destination (e.g. a bigger /dev/shm) replaces the default.
  const extra = o.mounts.map((m) => ({ ...m, destination: path.posix.normalize(m.destination) }));
  const mounts = [...defaultMounts(privileged).filter((d) => !extra.some((m) => m.destination === d.destination)), ...extra];

  const resources: OciResources = { devices: deviceRules(privileged, o.deviceRules), ...cgroupLimits(o.resources) };

  const cgroupsPath = o.cgroupsPath.startsWith('/') ? o.cgroupsPath : `/${o.cgroupsPath}`;

  const spec: OciSpec = {
    ociVersion: '1.0.2',
    process: {
      terminal: o.tty,
      user: { uid: o.user.uid, gid: o.user.gid, ...(o.user.additionalGids.length ? { additionalGids: o.user.additionalGids } : {}) },
      args: o.args,
      env: withDefaultEnv(o),
      cwd: o.cwd || '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: withDefaultNofile(o.rlimits ?? [], Math.min(soft, hard), hard),
      noNewPrivileges: o.noNewPrivileges ?? false,
      ...(o.oomScoreAdj ? { oomScoreAdj: o.oomScoreAdj } : {}),
    },
    root: { path: o.rootfs, readonly: o.readonlyRootfs ?? false },
    hostname: o.hostname,
    mounts,
    linux: {
      namespaces,
      cgroupsPath,
      resources,
      maskedPaths: privileged ? [] : o.maskedPaths ?? MASKED_PATHS,
      readonlyPaths: privileged ? [] : o.readonlyPaths ?? READONLY_PATHS,
    },
  };
  if (o.utsHost) delete spec.hostname;
  const seccomp = seccompFor(o, caps);
  if (seccomp) spec.linux.seccomp = seccomp;
  if (o.devices?.length) spec.linux.devices = o.devices;
  if (o.idMappings) {
    spec.linux.uidMappings = o.idMappings.uid;
    spec.linux.gidMappings = o.idMappings.gid;
  }
  const sysctl: Record<string, string> = {};
  if (o.network.mode !== 'host') {
    // Docker ≥20.10 lets unprivileged users bind low ports and ping inside their own netns.
    sysctl['net.ipv4.ip_unprivileged_port_start'] = '0';
    // In a user namespace only mapped gids may be named, so dockerd leaves ping_group_range alone there.
    if (!o.idMappings) sysctl['net.ipv4.ping_group_range'] = '0 2147483647';
  }
  // Even with --uts=host, as dockerd: runc then refuses it ("not in a separate kernel namespace").
  if (o.domainname) sysctl['kernel.domainname'] = o.domainname;
  if (Object.keys(sysctl).length) spec.linux.sysctl = sysctl;
  if (o.labels && Object.keys(o.labels).length) spec.annotations = { ...o.labels };
  return spec;
}

/** Docker's default nofile limit unless the caller set one. */
function withDefaultNofile(rlimits: OciRlimit[], soft: number, hard: number): OciRlimit[] {
  if (rlimits.some((r) => r.type === 'RLIMIT_NOFILE')) return rlimits;
  return [{ type: 'RLIMIT_NOFILE', soft, hard }, ...rlimits];
}

/** Privileged containers and seccomp=unconfined run without a filter, as in Docker. */
function seccompFor(o: SpecOptions, caps: string[]): OciSeccomp | undefined {
  const mode = o.seccomp ?? 'default';
  if (o.privileged || mode === 'unconfined') return undefined;
  if (mode === 'default') return defaultSeccomp(caps);
  return parseSeccompProfile(mode.profile, caps);
}
