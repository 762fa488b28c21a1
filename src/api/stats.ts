/**
 * What a container uses, in Docker's shapes: `GET /containers/{id}/top` (the host's ps, filtered to
 * the container's cgroup) and `GET /containers/{id}/stats` (a sample per second from the cgroup, each
 * with the one before it as precpu_stats, so clients compute CPU % from the pair).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ContainerService } from '../container/service.js';
import { checkHasProcesses, isRunning } from '../container/state.js';
import type { Container } from '../container/types.js';
import { ZERO_TIME } from '../container/types.js';
import { type CgroupSample, cgroupPids, netCounters, onlineCpus, readCgroupSample, systemCpuNs } from '../runtime/index.js';
import { listProcesses } from '../runtime/top.js';
import type { Router } from './server.js';

const INTERVAL_MS = 1000;

interface CpuStats {
  cpu_usage: { total_usage: number; percpu_usage?: number[]; usage_in_kernelmode: number; usage_in_usermode: number };
  system_cpu_usage?: number;
  online_cpus?: number;
  throttling_data: { periods: number; throttled_periods: number; throttled_time: number };
}

interface Sample { read: string; cpu: CpuStats; raw: CgroupSample | null }

const NO_CPU: CpuStats = { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } };

function sample(svc: ContainerService, c: Container): Sample {
  const cg = svc.cgroupsPath(c);
  if (!cg) return { read: ZERO_TIME, cpu: NO_CPU, raw: null };
  const raw = readCgroupSample(cg);
  const cpu: CpuStats = {
    cpu_usage: { total_usage: raw.cpu.totalNs, usage_in_kernelmode: raw.cpu.kernelNs, usage_in_usermode: raw.cpu.userNs },
    system_cpu_usage: systemCpuNs(),
    online_cpus: onlineCpus(),
    throttling_data: raw.cpu.throttling,
  };
  if (raw.cpu.perCpuNs.length) cpu.cpu_usage.percpu_usage = raw.cpu.perCpuNs;
  return { read: new Date().toISOString(), cpu, raw };
}

/** One stats document, as dockerd writes it (fields it leaves empty on this cgroup version are null). */
function document(c: Container, cur: Sample, pre: Sample | null) {
  const raw = cur.raw;
  const networks = raw && c.state.Pid ? netCounters(c.state.Pid) : {};
  const doc: Record<string, unknown> = {
    read: cur.read,
    preread: pre?.read ?? ZERO_TIME,
    pids_stats: raw ? { current: raw.pids.current, ...(raw.pids.limit ? { limit: raw.pids.limit } : {}) } : {},
    blkio_stats: {
      io_service_bytes_recursive: raw?.blkio.length ? raw.blkio : null,
      io_serviced_recursive: null, io_queue_recursive: null, io_service_time_recursive: null,
      io_wait_time_recursive: null, io_merged_recursive: null, io_time_recursive: null, sectors_recursive: null,
    },
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cur.cpu,
    precpu_stats: pre?.cpu ?? NO_CPU,
    memory_stats: raw ? { usage: raw.memory.usage, max_usage: raw.memory.maxUsage || undefined, stats: raw.memory.stats, failcnt: raw.memory.failcnt, limit: raw.memory.limit } : {},
    name: `/${c.name}`,
    id: c.id,
  };
  if (Object.keys(networks).length) doc.networks = networks;
  return doc;
}

function bool(q: URLSearchParams, key: string, dflt: boolean): boolean {
  const v = q.get(key);
  if (v === null || v === '') return dflt;
  return v !== '0' && v !== 'false';
}

export function statsRoutes(router: Router, svc: ContainerService): void {
  router.get('/containers/{id}/top', async (ctx) => {
    const c = svc.get(ctx.params.id);
    checkHasProcesses(c);
    const cg = svc.cgroupsPath(c);
    return listProcesses(cg ? cgroupPids(cg) : [], ctx.query.get('ps_args') ?? '');
  });

  router.get('/containers/{id}/stats', async (ctx) => {
    const c = svc.get(ctx.params.id);
    const stream = bool(ctx.query, 'stream', true);
    const oneShot = bool(ctx.query, 'one-shot', false);
    const res = ctx.res;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    let closed = false;
    res.on('close', () => (closed = true));
    let pre: Sample | null = null;
    if (!stream && !oneShot && isRunning(c.state)) {
      // stream=false: two samples an interval apart, so the one document carries its own CPU delta.
      pre = sample(svc, c);
      await sleep(INTERVAL_MS);
    }
    for (;;) {
      const cur = svc.list().find((x) => x.id === c.id) ?? c;
      const s = sample(svc, cur);
      res.write(JSON.stringify(document(cur, s, pre)) + '\n');
      if (!stream || !s.raw || closed) break;
      pre = s;
      await sleep(INTERVAL_MS);
      if (closed) break;
    }
    res.end();
  });
}
