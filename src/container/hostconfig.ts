/**
 * Docker's HostConfig at the edge: the fields berth implements are checked and kept (typed, in
 * HostConfig); any other field that would change what the container does gets a 400 that names the
 * docker option, until the capability that implements it lands. Fields left at the value the docker
 * CLI sends when the option is not used (null, "", 0, false, [], {}) are fine.
 */
import { InvalidParameter, NotFound } from '../errors.js';
import type { HostConfig } from './types.js';

/** Fields berth does not implement yet, and the docker option a user sets them with. */
const NOT_YET: Record<string, string> = {
  Binds: '-v, --volume',
  Mounts: '--mount',
  Tmpfs: '--tmpfs',
  VolumeDriver: '--volume-driver',
  VolumesFrom: '--volumes-from',
  PortBindings: 'publishing ports (-p, -P)',
  PublishAllPorts: 'publishing ports (-p, -P)',
  Links: '--link',
  Dns: '--dns',
  DnsOptions: '--dns-option',
  DnsSearch: '--dns-search',
  ExtraHosts: '--add-host',
  GroupAdd: '--group-add',
  CgroupnsMode: '--cgroupns',
  Cgroup: '--cgroup',
  CgroupParent: '--cgroup-parent',
  IpcMode: '--ipc',
  PidMode: '--pid',
  UTSMode: '--uts',
  UsernsMode: '--userns',
  OomScoreAdj: '--oom-score-adj',
  OomKillDisable: '--oom-kill-disable',
  SecurityOpt: '--security-opt',
  StorageOpt: '--storage-opt',
  Sysctls: '--sysctl',
  Ulimits: '--ulimit',
  Init: '--init',
  Runtime: '--runtime',
  Annotations: '--annotation',
  Devices: '--device',
  DeviceCgroupRules: '--device-cgroup-rule',
  DeviceRequests: '--gpus',
  BlkioWeight: '--blkio-weight',
  BlkioWeightDevice: '--blkio-weight-device',
  BlkioDeviceReadBps: '--device-read-bps',
  BlkioDeviceWriteBps: '--device-write-bps',
  BlkioDeviceReadIOps: '--device-read-iops',
  BlkioDeviceWriteIOps: '--device-write-iops',
  CpuRealtimePeriod: '--cpu-rt-period',
  CpuRealtimeRuntime: '--cpu-rt-runtime',
  CpusetCpus: '--cpuset-cpus',
  CpusetMems: '--cpuset-mems',
  MemoryReservation: '--memory-reservation',
  MemorySwappiness: '--memory-swappiness',
  KernelMemory: '--kernel-memory',
  KernelMemoryTCP: 'KernelMemoryTCP',
  CpuCount: '--cpu-count',
  CpuPercent: '--cpu-percent',
  IOMaximumIOps: '--io-maxiops',
  IOMaximumBandwidth: '--io-maxbandwidth',
  MaskedPaths: '--security-opt systempaths=unconfined',
  ReadonlyPaths: '--security-opt systempaths=unconfined',
};

/** Fields that carry no behaviour of the container's (the CLI's own bookkeeping). */
const INERT = new Set(['ContainerIDFile', 'Isolation']);

/** Config (not HostConfig) fields berth does not implement yet. */
const CONFIG_NOT_YET: Record<string, string> = {
  Volumes: '-v, --volume',
  MacAddress: '--mac-address',
};

/** The value the docker CLI sends for an option that is not used (a map or list with no entries). */
function unset(v: unknown): boolean {
  if (v === undefined || v === null || v === '' || v === 0 || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object') return Object.keys(v as object).length === 0;
  return false;
}

/** A struct whose every field is unset (the CLI sends a full endpoint config for the default network). */
function allUnset(v: unknown): boolean {
  return unset(v) || (typeof v === 'object' && !Array.isArray(v) && Object.values(v as Record<string, unknown>).every(unset));
}

/** Fields whose zero value is a choice, not the default: `[]` masks nothing (null masks Docker's
 *  paths); a swappiness of 0 is a setting (the CLI sends -1 for none). */
const NULL_IS_DEFAULT = new Set(['MaskedPaths', 'ReadonlyPaths', 'MemorySwappiness']);

function notYet(what: string): never {
  throw new InvalidParameter(`${what} is not supported yet`);
}

const RESTART_POLICIES = ['no', 'always', 'unless-stopped', 'on-failure'];
export const MIN_MEMORY = 6 * 1024 * 1024;

/** A restart policy's name and retry count, as create and update check them. */
export function checkRestartPolicy(restart: { Name?: string; MaximumRetryCount?: number }): void {
  if (restart.Name && !RESTART_POLICIES.includes(restart.Name)) {
    throw new InvalidParameter(`invalid restart policy: unknown policy '${restart.Name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'`);
  }
  if (restart.MaximumRetryCount && restart.Name !== 'on-failure') throw new InvalidParameter(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
}

export function num(h: Record<string, unknown>, key: string): number {
  const v = h[key];
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new InvalidParameter(`invalid HostConfig.${key}: ${JSON.stringify(v)}`);
  return v;
}

function strings(h: Record<string, unknown>, key: string): string[] | null {
  const v = h[key];
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new InvalidParameter(`invalid HostConfig.${key}: want a list of strings`);
  return v as string[];
}

/** Docker's create-time checks on HostConfig, and the typed subset berth keeps. */
export function normalizeHostConfig(raw: Record<string, unknown>): HostConfig {
  for (const [key, value] of Object.entries(raw)) {
    if (key in NOT_YET) {
      if (NULL_IS_DEFAULT.has(key) ? value !== null && value !== undefined && value !== -1 : !unset(value)) notYet(NOT_YET[key]!);
    }
  }
  const network = typeof raw.NetworkMode === 'string' && raw.NetworkMode ? raw.NetworkMode : 'bridge';
  checkNetworkMode(network);
  const logConfig = (raw.LogConfig ?? {}) as { Type?: string; Config?: Record<string, string> };
  if (logConfig.Type && logConfig.Type !== 'json-file') throw new InvalidParameter(`log driver ${logConfig.Type} is not supported yet`);
  if (!unset(logConfig.Config)) notYet('--log-opt');

  const nano = num(raw, 'NanoCpus');
  const memory = num(raw, 'Memory');
  const cpuQuota = num(raw, 'CpuQuota');
  const cpuPeriod = num(raw, 'CpuPeriod');
  if (nano && (cpuQuota || cpuPeriod)) throw new InvalidParameter('Conflicting options: Nano CPUs and CPU Period cannot both be set');
  if (memory > 0 && memory < MIN_MEMORY) throw new InvalidParameter('Minimum memory limit allowed is 6MB');
  const shm = num(raw, 'ShmSize');
  if (shm < 0) throw new InvalidParameter('SHM size can not be less than 0');
  const restart = (raw.RestartPolicy ?? {}) as { Name?: string; MaximumRetryCount?: number };
  checkRestartPolicy(restart);
  const autoRemove = raw.AutoRemove === true;
  if (restart.Name && restart.Name !== 'no' && autoRemove) throw new InvalidParameter('can\'t create \'AutoRemove\' container with restart policy');
  const pids = raw.PidsLimit;
  const console = Array.isArray(raw.ConsoleSize) && raw.ConsoleSize.length === 2 && raw.ConsoleSize.every((n) => typeof n === 'number' && n >= 0)
    ? (raw.ConsoleSize as [number, number]) : [0, 0] as [number, number];

  for (const key of Object.keys(raw)) {
    if (!(key in NOT_YET) && !KNOWN.has(key) && !INERT.has(key) && !unset(raw[key])) notYet(`HostConfig.${key}`);
  }
  return {
    AutoRemove: autoRemove,
    NetworkMode: network,
    Memory: memory,
    MemorySwap: num(raw, 'MemorySwap'),
    NanoCpus: nano,
    CpuShares: num(raw, 'CpuShares'),
    CpuQuota: cpuQuota,
    CpuPeriod: cpuPeriod,
    PidsLimit: typeof pids === 'number' && pids !== 0 ? pids : null,
    ShmSize: shm,
    ConsoleSize: console,
    Privileged: raw.Privileged === true,
    ReadonlyRootfs: raw.ReadonlyRootfs === true,
    CapAdd: strings(raw, 'CapAdd'),
    CapDrop: strings(raw, 'CapDrop'),
    RestartPolicy: { Name: restart.Name || 'no', MaximumRetryCount: restart.MaximumRetryCount ?? 0 },
    LogConfig: { Type: 'json-file', Config: {} },
  };
}

/** HostConfig fields normalizeHostConfig reads. */
const KNOWN = new Set([
  'AutoRemove', 'NetworkMode', 'Memory', 'MemorySwap', 'NanoCpus', 'CpuShares', 'CpuQuota', 'CpuPeriod', 'PidsLimit',
  'ShmSize', 'ConsoleSize', 'Privileged', 'ReadonlyRootfs', 'CapAdd', 'CapDrop', 'RestartPolicy', 'LogConfig',
]);

/** The Config fields of a create body that berth does not implement yet. */
export function checkConfig(body: Record<string, unknown>): void {
  for (const [key, what] of Object.entries(CONFIG_NOT_YET)) {
    const v = body[key];
    if (!unset(v)) notYet(what);
  }
  const endpoints = (body.NetworkingConfig as { EndpointsConfig?: Record<string, unknown> } | undefined)?.EndpointsConfig ?? {};
  for (const ep of Object.values(endpoints)) if (!allUnset(ep)) notYet('network endpoint settings (--ip, --network-alias, --link)');
}

/** Until bridge networking lands, "default"/"bridge" containers get their own netns with loopback only. */
function checkNetworkMode(mode: string): void {
  if (mode === 'default' || mode === 'bridge' || mode === 'none' || mode === 'host') return;
  if (mode.startsWith('container:')) notYet('network mode container:<name>');
  throw new NotFound(`network ${mode} not found`);
}

