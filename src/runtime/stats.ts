/**
 * What a container uses, read from its cgroup (v1: one directory per controller; v2: the unified
 * one) and from its network namespace (/proc/<pid>/net/dev), in the units the kernel gives:
 * nanoseconds of CPU, bytes of memory and I/O. api/stats.ts turns a sample into Docker's JSON.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cgroupVersion } from './cgroups.js';

const CGROUP_ROOT = '/sys/fs/cgroup';
/** USER_HZ: /proc/stat and cpuacct.stat count in these ticks on every Linux that Node runs on. */
const TICKS_PER_SECOND = 100;
const NS_PER_TICK = 1e9 / TICKS_PER_SECOND;

export interface BlkioEntry { major: number; minor: number; op: string; value: number }
export interface NetCounters {
  rx_bytes: number; rx_packets: number; rx_errors: number; rx_dropped: number;
  tx_bytes: number; tx_packets: number; tx_errors: number; tx_dropped: number;
}

export interface CgroupSample {
  cpu: {
    totalNs: number;
    perCpuNs: number[];
    userNs: number;
    kernelNs: number;
    throttling: { periods: number; throttled_periods: number; throttled_time: number };
  };
  memory: { usage: number; maxUsage: number; limit: number; failcnt: number; stats: Record<string, number> };
  pids: { current: number; limit: number };
  blkio: BlkioEntry[];
}

function read(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function readNum(file: string): number {
  const n = Number((read(file) ?? '').trim());
  return Number.isFinite(n) ? n : 0;
}

/** "key value" lines (memory.stat, cpu.stat, cpuacct.stat) as a map. */
function keyValues(text: string | null): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (text ?? '').split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

function rel(cgroupsPath: string): string {
  return path.posix.normalize(`/${cgroupsPath}`).slice(1);
}

/** A controller's directory of this cgroup on v1 (cpu and cpuacct may be one mount under either name). */
function v1(controller: string, cgroupsPath: string): string {
  return path.join(CGROUP_ROOT, controller, rel(cgroupsPath));
}

/** The cgroup's processes and threads' owners: host pids, in the order the kernel lists them. */
export function cgroupPids(cgroupsPath: string): number[] {
  const dir = cgroupVersion() === 2 ? path.join(CGROUP_ROOT, rel(cgroupsPath)) : v1('pids', cgroupsPath);
  const text = read(path.join(dir, 'cgroup.procs')) ?? read(path.join(v1('memory', cgroupsPath), 'cgroup.procs')) ?? '';
  return text.split('\n').filter((l) => l.trim() !== '').map(Number);
}

export function readCgroupSample(cgroupsPath: string): CgroupSample {
  return cgroupVersion() === 2 ? sampleV2(path.join(CGROUP_ROOT, rel(cgroupsPath))) : sampleV1(cgroupsPath);
}

/** An unlimited v1 memory cgroup reports a page-rounded 2^63; Docker reports the host's memory then. */
function memoryLimit(raw: number): number {
  const host = os.totalmem();
  return raw <= 0 || raw > host ? host : raw;
}

function sampleV1(cg: string): CgroupSample {
  const cpuacct = v1('cpuacct', cg);
  const cpuStat = keyValues(read(path.join(cpuacct, 'cpuacct.stat')));
  const throttle = keyValues(read(path.join(v1('cpu', cg), 'cpu.stat')));
  const mem = v1('memory', cg);
  const pids = v1('pids', cg);
  const pidsMax = (read(path.join(pids, 'pids.max')) ?? '').trim();
  return {
    cpu: {
      totalNs: readNum(path.join(cpuacct, 'cpuacct.usage')),
      perCpuNs: (read(path.join(cpuacct, 'cpuacct.usage_percpu')) ?? '').trim().split(/\s+/).filter(Boolean).map(Number),
      userNs: (cpuStat.user ?? 0) * NS_PER_TICK,
      kernelNs: (cpuStat.system ?? 0) * NS_PER_TICK,
      throttling: { periods: throttle.nr_periods ?? 0, throttled_periods: throttle.nr_throttled ?? 0, throttled_time: throttle.throttled_time ?? 0 },
    },
    memory: {
      usage: readNum(path.join(mem, 'memory.usage_in_bytes')),
      maxUsage: readNum(path.join(mem, 'memory.max_usage_in_bytes')),
      limit: memoryLimit(readNum(path.join(mem, 'memory.limit_in_bytes'))),
      failcnt: readNum(path.join(mem, 'memory.failcnt')),
      stats: keyValues(read(path.join(mem, 'memory.stat'))),
    },
    pids: { current: readNum(path.join(pids, 'pids.current')), limit: /^\d+$/.test(pidsMax) ? Number(pidsMax) : 0 },
    blkio: blkioV1(read(path.join(v1('blkio', cg), 'blkio.throttle.io_service_bytes_recursive'))),
  };
}

/** "8:0 Read 4096" lines; the "Total" summary line has no device. */
function blkioV1(text: string | null): BlkioEntry[] {
  const out: BlkioEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const m = /^(\d+):(\d+) (\w+) (\d+)$/.exec(line.trim());
    if (m) out.push({ major: Number(m[1]), minor: Number(m[2]), op: m[3], value: Number(m[4]) });
  }
  return out;
}

function sampleV2(dir: string): CgroupSample {
  const cpu = keyValues(read(path.join(dir, 'cpu.stat')));
  const maxText = (read(path.join(dir, 'memory.max')) ?? '').trim();
  const pidsMax = (read(path.join(dir, 'pids.max')) ?? '').trim();
  const events = keyValues(read(path.join(dir, 'memory.events')));
  return {
    cpu: {
      totalNs: (cpu.usage_usec ?? 0) * 1000,
      perCpuNs: [],
      userNs: (cpu.user_usec ?? 0) * 1000,
      kernelNs: (cpu.system_usec ?? 0) * 1000,
      throttling: { periods: cpu.nr_periods ?? 0, throttled_periods: cpu.nr_throttled ?? 0, throttled_time: (cpu.throttled_usec ?? 0) * 1000 },
    },
    memory: {
      usage: readNum(path.join(dir, 'memory.current')),
      maxUsage: readNum(path.join(dir, 'memory.peak')),
      limit: memoryLimit(/^\d+$/.test(maxText) ? Number(maxText) : 0),
      failcnt: events.max ?? 0,
      stats: keyValues(read(path.join(dir, 'memory.stat'))),
    },
    pids: { current: readNum(path.join(dir, 'pids.current')), limit: /^\d+$/.test(pidsMax) ? Number(pidsMax) : 0 },
    blkio: blkioV2(read(path.join(dir, 'io.stat'))),
  };
}

/** "8:0 rbytes=4096 wbytes=0 rios=1 …" lines → Docker's Read/Write entries. */
function blkioV2(text: string | null): BlkioEntry[] {
  const out: BlkioEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const [dev, ...fields] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!m) continue;
    const kv = Object.fromEntries(fields.map((f) => f.split('=')).map(([k, v]) => [k, Number(v)]));
    out.push({ major: Number(m[1]), minor: Number(m[2]), op: 'read', value: kv.rbytes ?? 0 });
    out.push({ major: Number(m[1]), minor: Number(m[2]), op: 'write', value: kv.wbytes ?? 0 });
  }
  return out;
}

/** The host's CPU time since boot in nanoseconds (the first line of /proc/stat, as dockerd sums it). */
export function systemCpuNs(): number {
  const line = (read('/proc/stat') ?? '').split('\n', 1)[0] ?? '';
  const ticks = line.trim().split(/\s+/).slice(1, 8).map(Number);
  return ticks.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0) * NS_PER_TICK;
}

export function onlineCpus(): number {
  return os.availableParallelism();
}

/** Counters of every interface but loopback in the network namespace of process `pid`. */
export function netCounters(pid: number): Record<string, NetCounters> {
  const out: Record<string, NetCounters> = {};
  const lines = (read(`/proc/${pid}/net/dev`) ?? '').split('\n').slice(2);
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (name === 'lo') continue;
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    out[name] = {
      rx_bytes: f[0], rx_packets: f[1], rx_errors: f[2], rx_dropped: f[3],
      tx_bytes: f[8], tx_packets: f[9], tx_errors: f[10], tx_dropped: f[11],
    };
  }
  return out;
}
