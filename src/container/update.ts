/**
 * `docker update`: which of Docker's UpdateConfig fields berth changes (limits and the restart
 * policy), checked as dockerd checks them, and the cgroup limits a HostConfig asks for (the same at
 * start and on update). The docker CLI sends every field; those left at zero change nothing.
 */
import os from 'node:os';
import { InvalidParameter } from '../errors.js';
import type { ResourceLimits } from '../runtime/index.js';
import { MIN_MEMORY, checkRestartPolicy, num } from './hostconfig.js';
import type { Container, HostConfig } from './types.js';

export type UpdateBody = Record<string, unknown>;

/** UpdateConfig fields berth cannot change yet, and the docker option that sets them. */
const NOT_YET: Record<string, string> = {
  BlkioWeight: '--blkio-weight',
  CpusetCpus: '--cpuset-cpus',
  CpusetMems: '--cpuset-mems',
  MemoryReservation: '--memory-reservation',
  KernelMemory: '--kernel-memory',
  KernelMemoryTCP: 'KernelMemoryTCP',
  CpuRealtimePeriod: '--cpu-rt-period',
  CpuRealtimeRuntime: '--cpu-rt-runtime',
  MemorySwappiness: '--memory-swappiness',
  OomKillDisable: '--oom-kill-disable',
  Devices: '--device',
  DeviceCgroupRules: '--device-cgroup-rule',
  DeviceRequests: '--gpus',
  Ulimits: '--ulimit',
  BlkioWeightDevice: '--blkio-weight-device',
  BlkioDeviceReadBps: '--device-read-bps',
  BlkioDeviceWriteBps: '--device-write-bps',
  BlkioDeviceReadIOps: '--device-read-iops',
  BlkioDeviceWriteIOps: '--device-write-iops',
  CpuCount: '--cpu-count',
  CpuPercent: '--cpu-percent',
  IOMaximumIOps: '--io-maxiops',
  IOMaximumBandwidth: '--io-maxbandwidth',
  CgroupParent: '--cgroup-parent',
};

function isSet(v: unknown): boolean {
  if (v === undefined || v === null || v === '' || v === 0 || v === false) return false;
  if (v === -1) return false; // MemorySwappiness's "unset"
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

/** The HostConfig after the update, or Docker's error (nothing is changed then). */
export function applyUpdate(c: Container, body: UpdateBody): HostConfig {
  for (const [key, flag] of Object.entries(NOT_YET)) {
    if (isSet(body[key])) throw new InvalidParameter(`${flag} is not supported yet`);
  }
  const cur = c.hostConfig;
  const next: HostConfig = { ...cur, RestartPolicy: { ...cur.RestartPolicy } };
  const memory = num(body, 'Memory');
  const swap = num(body, 'MemorySwap');
  const nano = num(body, 'NanoCpus');
  const quota = num(body, 'CpuQuota');
  const period = num(body, 'CpuPeriod');
  const shares = num(body, 'CpuShares');

  if (memory < 0) throw new InvalidParameter('Invalid value: memory can not be negative');
  if (memory > 0 && memory < MIN_MEMORY) throw new InvalidParameter('Minimum memory limit allowed is 6MB');
  if (memory > 0 && swap === 0 && cur.MemorySwap > 0 && memory > cur.MemorySwap) {
    throw new InvalidParameter('Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time');
  }
  const newMemory = memory || cur.Memory;
  if (swap > 0 && !newMemory) throw new InvalidParameter('You should always set the Memory limit when using Memoryswap limit, see usage');
  if (swap > 0 && swap < newMemory) throw new InvalidParameter('Minimum memoryswap limit should be larger than memory limit, see usage');
  if (memory) next.Memory = memory;
  if (swap) next.MemorySwap = swap;

  if (nano && (quota || period)) throw new InvalidParameter('Conflicting options: Nano CPUs and CPU Period cannot both be set');
  if (nano && (cur.CpuQuota || cur.CpuPeriod)) throw new InvalidParameter('Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set');
  if ((quota || period) && cur.NanoCpus) throw new InvalidParameter('Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set');
  const cpus = os.availableParallelism();
  if (nano < 0 || nano > cpus * 1e9 || (nano > 0 && nano < 1e7)) {
    throw new InvalidParameter(`Range of CPUs is from 0.01 to ${cpus}.00, as there are only ${cpus} CPUs available`);
  }
  if (period && (period < 1000 || period > 1_000_000)) throw new InvalidParameter('CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
  if (quota > 0 && quota < 1000) throw new InvalidParameter('CPU cfs quota can not be less than 1ms (i.e. 1000)');
  if (shares < 0) throw new InvalidParameter('Invalid value: cpu shares can not be negative');
  if (nano) next.NanoCpus = nano;
  if (quota) next.CpuQuota = quota;
  if (period) next.CpuPeriod = period;
  if (shares) next.CpuShares = shares;

  const pids = body.PidsLimit;
  if (pids !== undefined && pids !== null) {
    if (typeof pids !== 'number' || !Number.isInteger(pids)) throw new InvalidParameter(`invalid PidsLimit: ${JSON.stringify(pids)}`);
    next.PidsLimit = pids > 0 ? pids : null;
  }

  const policy = (body.RestartPolicy ?? {}) as { Name?: string; MaximumRetryCount?: number };
  if (policy.Name) {
    checkRestartPolicy(policy);
    if (cur.AutoRemove && policy.Name !== 'no') throw new InvalidParameter('Restart policy cannot be updated because AutoRemove is enabled for the container');
    next.RestartPolicy = { Name: policy.Name, MaximumRetryCount: policy.MaximumRetryCount ?? 0 };
  }
  return next;
}

/** Docker's limits in the runtime's terms: --cpus becomes a quota over a 100 ms period. */
export function resources(h: HostConfig): ResourceLimits {
  const out: ResourceLimits = {};
  if (h.Memory > 0) out.memory = h.Memory;
  if (h.MemorySwap !== 0) out.memorySwap = h.MemorySwap;
  if (h.CpuShares > 0) out.cpuShares = h.CpuShares;
  if (h.NanoCpus > 0) {
    out.cpuPeriod = 100000;
    out.cpuQuota = Math.round((h.NanoCpus / 1e9) * 100000);
  } else {
    if (h.CpuQuota > 0) out.cpuQuota = h.CpuQuota;
    if (h.CpuPeriod > 0) out.cpuPeriod = h.CpuPeriod;
  }
  if (h.PidsLimit !== null && h.PidsLimit > 0) out.pidsLimit = h.PidsLimit;
  return out;
}
