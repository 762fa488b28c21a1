/**
 * Docker's isolation and resource options of HostConfig: checked at create (normalizeIsolation, with
 * dockerd's messages, so a bad value creates nothing) and turned into OCI spec options at start
 * (isolationOptions). Security options, namespace modes, ulimits, devices, init, OOM and cpuset.
 */
import fs from 'node:fs';
import os from 'node:os';
import { Conflict, InvalidParameter, NotFound, SystemError } from '../errors.js';
import { log } from '../log.js';
import { RLIMIT_LINES, hostRlimits } from '../runtime/spec.js';
import { parseSeccompProfile } from '../runtime/seccomp.js';
import type { OciDevice, OciDeviceRule, OciMount, OciRlimit, SpecOptions } from '../runtime/spec.js';
import type { Container, HostConfig } from './types.js';
import { sharedShmDir } from './providers/ipc.js';
import { isRunning } from './state.js';
import { type Remap, checkRemapped, isRemapped, parseRemap } from './userns.js';

export interface Ulimit { Name: string; Soft: number; Hard: number }
export interface DeviceMapping { PathOnHost: string; PathInContainer: string; CgroupPermissions: string }

/** HostConfig fields this module reads (hostconfig.ts keeps them out of its refusals). */
export const ISOLATION_FIELDS = [
  'SecurityOpt', 'MaskedPaths', 'ReadonlyPaths', 'GroupAdd', 'PidMode', 'IpcMode', 'UTSMode', 'UsernsMode', 'Ulimits', 'Init',
  'OomScoreAdj', 'OomKillDisable', 'MemoryReservation', 'CpusetCpus', 'CpusetMems', 'Devices', 'DeviceCgroupRules',
];

const MIN_MEMORY = 6 * 1024 * 1024;

// ---- security options ------------------------------------------------------------------------

export interface SecurityOptions {
  noNewPrivileges: boolean;
  seccomp: 'default' | 'unconfined' | { profile: string };
}

const apparmorOn = () => readTrim('/sys/module/apparmor/parameters/enabled') === 'Y';
const selinuxOn = () => fs.existsSync('/sys/fs/selinux/enforce');

function readTrim(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

/** dockerd's parseSecurityOpt: key=value (or the deprecated key:value), and the bare no-new-privileges. */
export function parseSecurityOpt(opts: readonly string[] | null | undefined): SecurityOptions {
  const out: SecurityOptions = { noNewPrivileges: false, seccomp: 'default' };
  for (const opt of opts ?? []) {
    if (opt === 'no-new-privileges') { out.noNewPrivileges = true; continue; }
    if (opt === 'disable') continue; // label=disable's short form: SELinux is off here, nothing to disable
    const sep = opt.includes('=') ? '=' : opt.includes(':') ? ':' : '';
    if (!sep) throw new InvalidParameter(`invalid --security-opt 1: "${opt}"`);
    const key = opt.slice(0, opt.indexOf(sep));
    const value = opt.slice(opt.indexOf(sep) + 1);
    switch (key) {
      case 'seccomp':
        if (value === 'unconfined') out.seccomp = 'unconfined';
        else if (value === 'builtin' || value === '') out.seccomp = 'default';
        else {
          parseSeccompProfile(value, []); // a profile that does not decode is refused at create
          out.seccomp = { profile: value };
        }
        break;
      case 'no-new-privileges':
        if (!['true', 'false', '1', '0', 't', 'f', 'TRUE', 'FALSE', 'True', 'False'].includes(value)) throw new InvalidParameter(`invalid --security-opt 2: "${opt}"`);
        out.noNewPrivileges = ['true', '1', 't', 'TRUE', 'True'].includes(value);
        break;
      case 'apparmor':
        // Without AppArmor in the kernel dockerd applies no profile, and neither does berth.
        if (apparmorOn()) throw new InvalidParameter('--security-opt apparmor= is not supported yet');
        break;
      case 'label':
        if (selinuxOn()) throw new InvalidParameter('--security-opt label= is not supported yet');
        break;
      default:
        throw new InvalidParameter(`invalid --security-opt 2: "${opt}"`);
    }
  }
  return out;
}

// ---- create-time checks -----------------------------------------------------------------------

/** dockerd's signal.ParseSignal: a number other than 0, or a name with or without SIG, any case. */
export function checkSignal(raw: string): void {
  if (/^\d+$/.test(raw)) {
    if (Number(raw) !== 0 && Number(raw) <= 64) return;
  } else {
    const name = raw.toUpperCase().replace(/^SIG/, '');
    if (`SIG${name}` in os.constants.signals || /^RTM(IN|AX)([+-]\d+)?$/.test(name)) return;
  }
  throw new InvalidParameter(`Invalid signal: ${raw}`);
}

/** The Config fields of a create body this module owns. */
export function checkIsolationConfig(body: { StopSignal?: unknown; StopTimeout?: unknown }): void {
  if (typeof body.StopSignal === 'string' && body.StopSignal !== '') checkSignal(body.StopSignal);
  if (body.StopTimeout !== undefined && body.StopTimeout !== null && !Number.isInteger(body.StopTimeout)) throw new InvalidParameter('invalid StopTimeout: want whole seconds');
}

function strList(raw: Record<string, unknown>, key: string): string[] | null {
  const v = raw[key];
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new InvalidParameter(`invalid HostConfig.${key}: want a list of strings`);
  return v as string[];
}

function str(raw: Record<string, unknown>, key: string): string {
  const v = raw[key];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new InvalidParameter(`invalid HostConfig.${key}: want a string`);
  return v;
}

function int(raw: Record<string, unknown>, key: string): number {
  const v = raw[key];
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new InvalidParameter(`invalid HostConfig.${key}: ${JSON.stringify(v)}`);
  return v;
}

function checkNamespaceMode(kind: 'PID' | 'IPC' | 'UTS', mode: string): void {
  const allowed = kind === 'IPC' ? ['', 'private', 'shareable', 'host'] : ['', 'host'];
  if (allowed.includes(mode)) return;
  if (kind !== 'UTS' && mode.startsWith('container:') && mode.length > 'container:'.length) return;
  throw new InvalidParameter(`invalid ${kind} mode: ${mode}`);
}

/** Expand a cpuset list ("0-2,4") into its members; null when it is not one. */
export function parseCpuset(list: string): Set<number> | null {
  const out = new Set<number>();
  if (list.trim() === '') return out;
  for (const part of list.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return null;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) return null;
    for (let i = lo; i <= hi; i++) out.add(i);
  }
  return out;
}

function checkCpuset(value: string, what: 'cpus' | 'mems'): void {
  if (!value) return;
  const wanted = parseCpuset(value);
  if (!wanted) throw new InvalidParameter(`Invalid value ${value} for cpuset ${what}`);
  const file = what === 'cpus' ? '/sys/devices/system/cpu/online' : '/sys/devices/system/node/online';
  const onlineText = readTrim(file) || '0';
  const online = parseCpuset(onlineText) ?? new Set([0]);
  if ([...wanted].some((n) => !online.has(n))) {
    const label = what === 'cpus' ? 'CPUs' : 'memory nodes';
    throw new InvalidParameter(`Requested ${label} are not available - requested ${value}, available: ${onlineText}`);
  }
}

/** Docker's ulimit names; an explicit limit above the daemon's own hard limit cannot be set, so it is refused. */
export function checkUlimits(list: Ulimit[], source = 'ulimit'): Ulimit[] {
  const host = hostRlimits();
  return list.map((u) => {
    if (typeof u !== 'object' || u === null || typeof u.Name !== 'string') throw new InvalidParameter(`invalid ${source}: ${JSON.stringify(u)}`);
    if (!(u.Name in RLIMIT_LINES)) throw new InvalidParameter(`invalid ulimit type: ${u.Name}`);
    const soft = Number(u.Soft ?? 0);
    const hard = Number(u.Hard ?? 0);
    if (!Number.isInteger(soft) || !Number.isInteger(hard)) throw new InvalidParameter(`invalid ulimit ${u.Name}: want integers`);
    const unl = (v: number) => v < 0;
    if (!unl(hard) && (unl(soft) || soft > hard)) throw new InvalidParameter(`ulimit soft limit must be less than or equal to hard limit: ${soft} > ${hard}`);
    const limit = host[u.Name];
    if (limit && limit.hard >= 0 && (unl(hard) || hard > limit.hard)) {
      throw new InvalidParameter(`${source} ${u.Name}=${soft}:${hard} is above the host's hard limit for ${u.Name} (${limit.hard}): a container cannot be given more than the daemon has`);
    }
    return { Name: u.Name, Soft: soft, Hard: hard };
  });
}

const CGROUP_RULE = /^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$/;

function deviceInfo(pathOnHost: string): { type: 'c' | 'b'; major: number; minor: number; mode: number; uid: number; gid: number } {
  let st: fs.BigIntStats;
  try {
    st = fs.statSync(pathOnHost, { bigint: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message;
    throw new InvalidParameter(`error gathering device information while adding custom device "${pathOnHost}": ${code}`);
  }
  const type = st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : null;
  if (!type) throw new InvalidParameter(`error gathering device information while adding custom device "${pathOnHost}": not a device node`);
  const rdev = st.rdev;
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return { type, major, minor, mode: Number(st.mode & 0o777n), uid: Number(st.uid), gid: Number(st.gid) };
}

/** Directories of the host's /dev that are not device nodes of the machine (mounts of their own). */
const SKIP_DEV_DIRS = new Set(['pts', 'shm', 'fd', 'mqueue', '.lxc', '.lxd-mounts', '.udev']);

/** Every device node under the host's /dev: what a privileged container sees, as in Docker. */
export function hostDevices(dir = '/dev'): OciDevice[] {
  const out: OciDevice[] = [];
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory()) {
      if (!SKIP_DEV_DIRS.has(e.name)) out.push(...hostDevices(p));
      continue;
    }
    if (e.name === 'console' || !(e.isCharacterDevice() || e.isBlockDevice())) continue;
    try {
      const d = deviceInfo(p);
      out.push({ path: p, type: d.type, major: d.major, minor: d.minor, fileMode: d.mode, uid: d.uid, gid: d.gid });
    } catch {
      // a node that vanished while we looked
    }
  }
  return out;
}

/** Checks and keeps the isolation and resource fields of a create body's HostConfig. */
export function normalizeIsolation(raw: Record<string, unknown>): Partial<HostConfig> {
  const securityOpt = strList(raw, 'SecurityOpt');
  parseSecurityOpt(securityOpt);
  const pidMode = str(raw, 'PidMode');
  const ipcMode = str(raw, 'IpcMode');
  const utsMode = str(raw, 'UTSMode');
  const usernsMode = str(raw, 'UsernsMode');
  checkNamespaceMode('PID', pidMode);
  checkNamespaceMode('IPC', ipcMode);
  checkNamespaceMode('UTS', utsMode);
  if (usernsMode !== '' && usernsMode !== 'host') throw new InvalidParameter(`invalid USER mode: ${usernsMode}`);

  const oomScoreAdj = int(raw, 'OomScoreAdj');
  if (oomScoreAdj < -1000 || oomScoreAdj > 1000) throw new InvalidParameter(`Invalid value ${oomScoreAdj}, range for oom score adj is [-1000, 1000]`);
  const reservation = int(raw, 'MemoryReservation');
  const memory = typeof raw.Memory === 'number' ? raw.Memory : 0;
  if (reservation < 0) throw new InvalidParameter('Minimum memory reservation allowed is 6MB');
  if (reservation > 0 && reservation < MIN_MEMORY) throw new InvalidParameter('Minimum memory reservation allowed is 6MB');
  if (memory > 0 && reservation > 0 && memory < reservation) throw new InvalidParameter('Minimum memory limit can not be less than memory reservation limit, see usage');
  const cpusetCpus = str(raw, 'CpusetCpus');
  const cpusetMems = str(raw, 'CpusetMems');
  checkCpuset(cpusetCpus, 'cpus');
  checkCpuset(cpusetMems, 'mems');

  const ulimits = raw.Ulimits === undefined || raw.Ulimits === null ? [] : raw.Ulimits;
  if (!Array.isArray(ulimits)) throw new InvalidParameter('invalid HostConfig.Ulimits: want a list');
  const devices = raw.Devices === undefined || raw.Devices === null ? [] : raw.Devices;
  if (!Array.isArray(devices)) throw new InvalidParameter('invalid HostConfig.Devices: want a list');
  const kept: DeviceMapping[] = devices.map((d: DeviceMapping) => {
    if (typeof d?.PathOnHost !== 'string' || !d.PathOnHost) throw new InvalidParameter(`invalid device: ${JSON.stringify(d)}`);
    const perms = d.CgroupPermissions || 'rwm';
    if (!/^[rwm]{1,3}$/.test(perms)) throw new InvalidParameter(`invalid device mode: ${perms}`);
    deviceInfo(d.PathOnHost);
    return { PathOnHost: d.PathOnHost, PathInContainer: d.PathInContainer || d.PathOnHost, CgroupPermissions: perms };
  });
  const rules = strList(raw, 'DeviceCgroupRules');
  for (const r of rules ?? []) if (!CGROUP_RULE.test(r)) throw new InvalidParameter(`invalid device cgroup rule format: '${r}'`);
  const groupAdd = strList(raw, 'GroupAdd');
  if (raw.Init !== undefined && raw.Init !== null && typeof raw.Init !== 'boolean') throw new InvalidParameter('invalid HostConfig.Init: want a boolean');

  return {
    SecurityOpt: securityOpt,
    MaskedPaths: strList(raw, 'MaskedPaths'),
    ReadonlyPaths: strList(raw, 'ReadonlyPaths'),
    GroupAdd: groupAdd,
    PidMode: pidMode,
    IpcMode: ipcMode || 'private',
    UTSMode: utsMode,
    UsernsMode: usernsMode,
    Ulimits: checkUlimits(ulimits as Ulimit[]),
    Init: typeof raw.Init === 'boolean' ? raw.Init : null,
    OomScoreAdj: oomScoreAdj,
    OomKillDisable: raw.OomKillDisable === true,
    MemoryReservation: reservation,
    CpusetCpus: cpusetCpus,
    CpusetMems: cpusetMems,
    Devices: kept,
    DeviceCgroupRules: rules,
  };
}

// ---- start: the spec options ------------------------------------------------------------------

export interface IsolationContext {
  /** Another container, by id or name (for container:<id> modes). */
  find(idOrName: string): Container | undefined;
  /** <data-root>/containers/<id> of a container. */
  containerDir(id: string): string;
  /** daemon.json default-ulimits (already clamped to the host). */
  defaultUlimits: Ulimit[];
  /** daemon.json seccomp-profile: unconfined, or a profile's JSON text; undefined = berth's default. */
  seccompProfile?: string;
  /** The init binary bound at /sbin/docker-init for --init. */
  initPath: string;
  /** daemon.json userns-remap, parsed. */
  remap?: Remap;
}

/** The namespace of a running container, for pid/ipc container:<id>. */
function joinNamespace(ctx: IsolationContext, mode: string, kind: 'pid' | 'ipc'): { path: string; donor: Container } {
  const ref = mode.slice('container:'.length);
  const donor = ctx.find(ref);
  if (!donor) throw new NotFound(`No such container: ${ref}`);
  if (donor.state.Status !== 'running' || !donor.state.Pid) {
    throw new Conflict(`cannot join ${kind === 'pid' ? 'PID' : 'IPC'} of a non running container: ${donor.id}`);
  }
  if (kind === 'ipc' && donor.hostConfig.IpcMode !== 'shareable' && donor.hostConfig.IpcMode !== 'host') {
    throw new Conflict(`cannot join IPC of a non running container: non-shareable IPC (hint: use IpcMode:shareable for the donor container)`);
  }
  return { path: `/proc/${donor.state.Pid}/ns/${kind}`, donor };
}

/**
 * userns-remap: a container that joins another's network, PID or IPC namespace joins its user
 * namespace too, as under dockerd (the other's namespaces belong to it: a user namespace of its own
 * would make this container's root nobody there, unable to mount /proc or /sys).
 */
function donorUserns(c: Container, ctx: IsolationContext): string | undefined {
  const h = c.hostConfig;
  const refs = [h.NetworkMode, h.PidMode ?? '', h.IpcMode ?? ''].filter((m) => m.startsWith('container:')).map((m) => m.slice('container:'.length));
  const donors = new Map<string, Container>();
  for (const ref of refs) {
    const donor = ctx.find(ref);
    if (!donor) throw new NotFound(`No such container: ${ref}`);
    donors.set(donor.id, donor);
  }
  if (donors.size === 0) return undefined;
  if (donors.size > 1) throw new InvalidParameter(`with userns-remap, the namespaces joined must all be one container's (joining ${[...donors.keys()].map((id) => id.slice(0, 12)).join(', ')})`);
  const donor = [...donors.values()][0]!;
  if (!isRemapped(donor, ctx.remap)) throw new InvalidParameter(`cannot join the namespaces of container ${donor.id}: it runs in the host's user namespace (--userns host)`);
  if (!isRunning(donor.state) || !donor.state.Pid) throw new Conflict(`cannot join the namespaces of a non running container: ${donor.id}`);
  return `/proc/${donor.state.Pid}/ns/user`;
}

function toRlimits(list: Ulimit[]): OciRlimit[] {
  // An unlimited value (-1) is the kernel's RLIM_INFINITY; JSON numbers cannot carry 2^64-1 exactly,
  // so such an entry is left out and the container inherits the daemon's (unlimited) value.
  return list.filter((u) => u.Soft >= 0 && u.Hard >= 0).map((u) => ({ type: `RLIMIT_${u.Name.toUpperCase()}`, soft: u.Soft, hard: u.Hard }));
}

/** What the OCI spec needs beyond the basics: security, namespaces, ulimits, devices, init. */
export function isolationOptions(c: Container, mounts: OciMount[], ctx: IsolationContext): { mounts: OciMount[]; spec: Partial<SpecOptions> } {
  const h = c.hostConfig;
  const sec = parseSecurityOpt(h.SecurityOpt);
  if (sec.seccomp === 'default' && ctx.seccompProfile) {
    sec.seccomp = ctx.seccompProfile === 'unconfined' ? 'unconfined' : { profile: ctx.seccompProfile };
  }
  let all: OciMount[] = [...mounts];
  const out: Partial<SpecOptions> = {
    seccomp: sec.seccomp,
    noNewPrivileges: sec.noNewPrivileges,
    maskedPaths: h.MaskedPaths ?? null,
    readonlyPaths: h.ReadonlyPaths ?? null,
    namespacePaths: {},
  };
  if (h.PidMode === 'host') out.pidHost = true;
  else if (h.PidMode?.startsWith('container:')) out.namespacePaths!.pid = joinNamespace(ctx, h.PidMode, 'pid').path;
  const shmFrom = (source: string) => {
    all = all.filter((m) => m.destination !== '/dev/shm');
    all.push({ destination: '/dev/shm', type: 'bind', source, options: ['rbind', 'nosuid', 'noexec', 'nodev'] });
  };
  if (h.IpcMode === 'host') {
    out.ipcHost = true;
    shmFrom('/dev/shm');
  } else if (h.IpcMode === 'shareable') {
    shmFrom(sharedShmDir(ctx.containerDir(c.id)));
  } else if (h.IpcMode?.startsWith('container:')) {
    const { path, donor } = joinNamespace(ctx, h.IpcMode, 'ipc');
    out.namespacePaths!.ipc = path;
    shmFrom(donor.hostConfig.IpcMode === 'host' ? '/dev/shm' : sharedShmDir(ctx.containerDir(donor.id)));
  }
  if (h.UTSMode === 'host') out.utsHost = true;

  const byName = new Map<string, Ulimit>();
  for (const u of ctx.defaultUlimits) byName.set(u.Name, u);
  for (const u of h.Ulimits ?? []) byName.set(u.Name, u);
  if (byName.size) out.rlimits = toRlimits([...byName.values()]);
  if (h.OomScoreAdj) out.oomScoreAdj = h.OomScoreAdj;

  if (h.Devices?.length || h.DeviceCgroupRules?.length) {
    const devices: OciDevice[] = [];
    const rules: OciDeviceRule[] = [];
    for (const d of h.Devices ?? []) {
      const info = deviceInfo(d.PathOnHost);
      devices.push({ path: d.PathInContainer, type: info.type, major: info.major, minor: info.minor, fileMode: info.mode, uid: info.uid, gid: info.gid });
      rules.push({ allow: true, type: info.type, major: info.major, minor: info.minor, access: d.CgroupPermissions });
    }
    for (const r of h.DeviceCgroupRules ?? []) {
      const m = CGROUP_RULE.exec(r)!;
      const rule: OciDeviceRule = { allow: true, type: m[1] as 'a' | 'c' | 'b', access: m[4]! };
      if (m[2] !== '*') rule.major = Number(m[2]);
      if (m[3] !== '*') rule.minor = Number(m[3]);
      rules.push(rule);
    }
    out.devices = devices;
    out.deviceRules = rules;
  }

  if (h.Privileged) out.devices = [...hostDevices(), ...(out.devices ?? [])];
  if (isRemapped(c, ctx.remap)) {
    checkRemapped(c);
    out.idMappings = { uid: ctx.remap.uid, gid: ctx.remap.gid };
    const user = donorUserns(c, ctx);
    if (user) out.namespacePaths!.user = user;
  }

  if (h.Init) {
    if (!fs.existsSync(ctx.initPath)) throw new SystemError(`--init: ${ctx.initPath} not found (it comes with Debian's tini package)`);
    all.push({ destination: '/sbin/docker-init', type: 'bind', source: ctx.initPath, options: ['rbind', 'ro'] });
  }
  return { mounts: all, spec: out };
}

/** argv of the container's PID 1: Docker's init in front of the command with --init. */
export function withInit(c: Container, args: string[]): string[] {
  return c.hostConfig.Init ? ['/sbin/docker-init', '--', ...args] : args;
}

/** The spec's resources beyond the lead's basics (memory reservation, OOM killer, cpuset). */
export function extraResources(h: HostConfig): SpecOptions['resources'] {
  const out: SpecOptions['resources'] = {};
  if (h.MemoryReservation) out.memoryReservation = h.MemoryReservation;
  if (h.OomKillDisable) out.oomKillDisable = true;
  if (h.CpusetCpus) out.cpusetCpus = h.CpusetCpus;
  if (h.CpusetMems) out.cpusetMems = h.CpusetMems;
  return out;
}

/** Debian's tini: the static build, since an image need not have a libc. */
export const DEFAULT_INIT = '/usr/bin/tini-static';

/**
 * The daemon-wide settings: default-ulimits checked by name and clamped to the host's hard limits
 * (a default must not make every container fail), seccomp-profile read once at start-up.
 */
export function daemonIsolation(o: { defaultUlimits: Record<string, Ulimit>; seccompProfile: string; usernsRemap: string }): Omit<IsolationContext, 'find' | 'containerDir'> {
  const host = hostRlimits();
  const defaults: Ulimit[] = [];
  for (const u of Object.values(o.defaultUlimits)) {
    if (!(u.Name in RLIMIT_LINES)) throw new InvalidParameter(`invalid default-ulimits: invalid ulimit type: ${u.Name}`);
    let { Soft: soft, Hard: hard } = u;
    if (hard >= 0 && soft > hard) throw new InvalidParameter(`invalid default-ulimits: ulimit soft limit must be less than or equal to hard limit: ${soft} > ${hard}`);
    const limit = host[u.Name];
    if (limit && limit.hard >= 0 && (hard < 0 || hard > limit.hard)) {
      log.warn('default-ulimits above the host hard limit: clamped', { name: u.Name, hard, host: limit.hard });
      hard = limit.hard;
      if (soft < 0 || soft > hard) soft = hard;
    }
    defaults.push({ Name: u.Name, Soft: soft, Hard: hard });
  }
  let seccompProfile: string | undefined;
  if (o.seccompProfile === 'unconfined') seccompProfile = 'unconfined';
  else if (o.seccompProfile && o.seccompProfile !== 'builtin') {
    let text: string;
    try {
      text = fs.readFileSync(o.seccompProfile, 'utf8');
    } catch (err) {
      throw new InvalidParameter(`opening seccomp profile (${o.seccompProfile}) failed: ${(err as Error).message}`);
    }
    parseSeccompProfile(text, []);
    seccompProfile = text;
  }
  const remap = o.usernsRemap ? parseRemap(o.usernsRemap) : undefined;
  return { defaultUlimits: defaults, seccompProfile, initPath: DEFAULT_INIT, remap };
}

/** `docker update` of the fields this module owns: cpuset and the memory reservation, checked as at create. */
export function updateIsolation(next: HostConfig, body: Record<string, unknown>): Partial<HostConfig> {
  const out: Partial<HostConfig> = {};
  const cpus = str(body, 'CpusetCpus');
  const mems = str(body, 'CpusetMems');
  checkCpuset(cpus, 'cpus');
  checkCpuset(mems, 'mems');
  if (cpus) out.CpusetCpus = cpus;
  if (mems) out.CpusetMems = mems;
  const reservation = int(body, 'MemoryReservation');
  if (reservation !== 0) {
    if (reservation < MIN_MEMORY) throw new InvalidParameter('Minimum memory reservation allowed is 6MB');
    if (next.Memory > 0 && next.Memory < reservation) throw new InvalidParameter('Minimum memory limit can not be less than memory reservation limit, see usage');
    out.MemoryReservation = reservation;
  }
  return out;
}
