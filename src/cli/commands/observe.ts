/**
 * pause, unpause, top, stats, rename, update: docker's commands for a container that runs, with
 * docker's columns (stats: CPU % from the daemon's pair of samples, memory without the page cache).
 */
import type { Command, Ctx } from '../command.js';
import { renderRows, StatusError } from '../command.js';
import type { Parsed } from '../flags.js';
import { bytesSize, humanSize, ramInBytes, tabwrite, truncateId } from '../format.js';
import { ApiError } from '../http.js';
import { each, type ContainerSummary } from './containers.js';

const enc = encodeURIComponent;

export const pause: Command = {
  name: 'pause',
  usage: 'pause CONTAINER [CONTAINER...]',
  description: 'Pause all processes within one or more containers',
  flags: [],
  args: { min: 1 },
  run: (ctx, p) => each(ctx, p.args, async (n) => void (await ctx.client.call('POST', `/containers/${enc(n)}/pause`))),
};

export const unpause: Command = {
  name: 'unpause',
  usage: 'unpause CONTAINER [CONTAINER...]',
  description: 'Unpause all processes within one or more containers',
  flags: [],
  args: { min: 1 },
  run: (ctx, p) => each(ctx, p.args, async (n) => void (await ctx.client.call('POST', `/containers/${enc(n)}/unpause`))),
};

export const rename: Command = {
  name: 'rename',
  usage: 'rename CONTAINER NEW_NAME',
  description: 'Rename a container',
  flags: [],
  args: { min: 2, max: 2 },
  async run(ctx, p) {
    const [old, name] = p.args as [string, string];
    if (!name.trim()) throw new StatusError('Error: Neither old nor new names may be empty', 1);
    await ctx.client.call('POST', `/containers/${enc(old)}/rename`, { query: { name } });
    return 0;
  },
};

export const top: Command = {
  name: 'top',
  usage: 'top CONTAINER [ps OPTIONS]',
  description: 'Display the running processes of a container',
  flags: [],
  interspersed: false,
  args: { min: 1 },
  async run(ctx, p) {
    const [name, ...psArgs] = p.args as [string, ...string[]];
    const list = await ctx.client.json<{ Titles: string[]; Processes: string[][] }>('GET', `/containers/${enc(name)}/top`, {
      query: { ps_args: psArgs.length ? psArgs.join(' ') : undefined },
    });
    ctx.out.write(tabwrite([list.Titles.join('\t'), ...list.Processes.map((r) => r.join('\t'))], 20, 3));
    return 0;
  },
};

function bytesFlag(p: Parsed, long: string, label: string): number | undefined {
  const v = p.str(long);
  if (v === undefined) return undefined;
  if (long === 'memory-swap' && v === '-1') return -1;
  try {
    return ramInBytes(v);
  } catch (e) {
    throw new StatusError(`invalid argument "${v}" for "${label}" flag: ${(e as Error).message}`, 125);
  }
}

export const update: Command = {
  name: 'update',
  usage: 'update [OPTIONS] CONTAINER [CONTAINER...]',
  description: 'Update configuration of one or more containers',
  flags: [
    { long: 'blkio-weight', kind: 'int', help: 'Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)' },
    { long: 'cpu-period', kind: 'int', help: 'Limit CPU CFS (Completely Fair Scheduler) period' },
    { long: 'cpu-quota', kind: 'int', help: 'Limit CPU CFS (Completely Fair Scheduler) quota' },
    { long: 'cpu-shares', short: 'c', kind: 'int', help: 'CPU shares (relative weight)' },
    { long: 'cpus', kind: 'string', type: 'decimal', help: 'Number of CPUs' },
    { long: 'cpuset-cpus', kind: 'string', help: 'CPUs in which to allow execution (0-3, 0,1)' },
    { long: 'cpuset-mems', kind: 'string', help: 'MEMs in which to allow execution (0-3, 0,1)' },
    { long: 'memory', short: 'm', kind: 'string', type: 'bytes', help: 'Memory limit' },
    { long: 'memory-reservation', kind: 'string', type: 'bytes', help: 'Memory soft limit' },
    { long: 'memory-swap', kind: 'string', type: 'bytes', help: 'Swap limit equal to memory plus swap: -1 to enable unlimited swap' },
    { long: 'pids-limit', kind: 'int', help: 'Tune container pids limit (set -1 for unlimited)' },
    { long: 'restart', kind: 'string', help: 'Restart policy to apply when a container exits' },
  ],
  args: { min: 1 },
  async run(ctx, p) {
    const body: Record<string, unknown> = {};
    const memory = bytesFlag(p, 'memory', '-m, --memory');
    if (memory !== undefined) body.Memory = memory;
    const swap = bytesFlag(p, 'memory-swap', '--memory-swap');
    if (swap !== undefined) body.MemorySwap = swap;
    const reservation = bytesFlag(p, 'memory-reservation', '--memory-reservation');
    if (reservation !== undefined) body.MemoryReservation = reservation;
    if (p.has('cpus')) {
      const n = Number(p.str('cpus'));
      if (!Number.isFinite(n) || n < 0) throw new StatusError(`invalid argument "${p.str('cpus')}" for "--cpus" flag: failed to parse ${p.str('cpus')} as a rational number`, 125);
      body.NanoCpus = Math.round(n * 1e9);
    }
    for (const [flag, key] of [['cpu-period', 'CpuPeriod'], ['cpu-quota', 'CpuQuota'], ['cpu-shares', 'CpuShares'], ['blkio-weight', 'BlkioWeight'], ['pids-limit', 'PidsLimit']] as const) {
      if (p.has(flag)) body[key] = p.int(flag);
    }
    if (p.has('cpuset-cpus')) body.CpusetCpus = p.str('cpuset-cpus');
    if (p.has('cpuset-mems')) body.CpusetMems = p.str('cpuset-mems');
    if (p.has('restart')) {
      const [name, count] = (p.str('restart') ?? '').split(':');
      body.RestartPolicy = { Name: name, MaximumRetryCount: count ? Number(count) : 0 };
    }
    if (Object.keys(body).length === 0) throw new StatusError('you must provide one or more flags when using this command', 1);
    const warnings: string[] = [];
    const code = await each(ctx, p.args, async (n) => {
      const r = await ctx.client.json<{ Warnings?: string[] | null }>('POST', `/containers/${enc(n)}/update`, { body });
      warnings.push(...(r?.Warnings ?? []));
    });
    for (const w of warnings) ctx.err.write(`${w}\n`);
    return code;
  },
};

// ---- stats -----------------------------------------------------------------------------------------

interface CpuStats { cpu_usage?: { total_usage?: number; percpu_usage?: number[] }; system_cpu_usage?: number; online_cpus?: number }
export interface StatsDoc {
  read: string;
  id: string;
  name: string;
  cpu_stats?: CpuStats;
  precpu_stats?: CpuStats;
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
  blkio_stats?: { io_service_bytes_recursive?: Array<{ op: string; value: number }> | null };
  pids_stats?: { current?: number };
  networks?: Record<string, { rx_bytes: number; tx_bytes: number }>;
}

/** The figures docker's stats table shows, computed as the docker CLI does on Linux. */
export function statsRow(s: StatsDoc) {
  const cur = s.cpu_stats ?? {};
  const pre = s.precpu_stats ?? {};
  const cpuDelta = (cur.cpu_usage?.total_usage ?? 0) - (pre.cpu_usage?.total_usage ?? 0);
  const systemDelta = (cur.system_cpu_usage ?? 0) - (pre.system_cpu_usage ?? 0);
  const cpus = cur.online_cpus || cur.cpu_usage?.percpu_usage?.length || 0;
  const cpu = systemDelta > 0 && cpuDelta > 0 ? (cpuDelta / systemDelta) * cpus * 100 : 0;
  const m = s.memory_stats ?? {};
  const stats = m.stats ?? {};
  // The page cache the kernel can drop is not the container's: v1 total_inactive_file, v2 inactive_file.
  const inactive = stats.total_inactive_file ?? stats.inactive_file ?? 0;
  const usage = Math.max(0, (m.usage ?? 0) - (inactive < (m.usage ?? 0) ? inactive : 0));
  const limit = m.limit ?? 0;
  let read = 0;
  let write = 0;
  for (const e of s.blkio_stats?.io_service_bytes_recursive ?? []) {
    if (e.op.toLowerCase() === 'read') read += e.value;
    else if (e.op.toLowerCase() === 'write') write += e.value;
  }
  let rx = 0;
  let tx = 0;
  for (const n of Object.values(s.networks ?? {})) {
    rx += n.rx_bytes;
    tx += n.tx_bytes;
  }
  const running = s.read !== '0001-01-01T00:00:00Z';
  return {
    ID: truncateId(s.id),
    Name: s.name.replace(/^\//, ''),
    CPUPerc: running ? `${cpu.toFixed(2)}%` : '0.00%',
    MemUsage: `${bytesSize(usage)} / ${bytesSize(limit)}`,
    MemPerc: `${(limit ? (usage / limit) * 100 : 0).toFixed(2)}%`,
    NetIO: `${humanSize(rx, 3)} / ${humanSize(tx, 3)}`,
    BlockIO: `${humanSize(read, 3)} / ${humanSize(write, 3)}`,
    PIDs: String(s.pids_stats?.current ?? 0),
  };
}

const statsHeaders = {
  Container: 'CONTAINER', ID: 'CONTAINER ID', Name: 'NAME', CPUPerc: 'CPU %', MemUsage: 'MEM USAGE / LIMIT',
  MemPerc: 'MEM %', NetIO: 'NET I/O', BlockIO: 'BLOCK I/O', PIDs: 'PIDS',
};
const STATS_TABLE = 'table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}';

async function statsOf(ctx: Ctx, names: string[]): Promise<{ rows: Record<string, unknown>[]; errors: string[] }> {
  const errors: string[] = [];
  const docs = await Promise.all(names.map(async (n) => {
    try {
      const d = await ctx.client.json<StatsDoc>('GET', `/containers/${enc(n)}/stats`, { query: { stream: 'false' } });
      return { ...statsRow(d), Container: n };
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      errors.push(e.message);
      return null;
    }
  }));
  return { rows: docs.filter((d) => d !== null), errors };
}

export const stats: Command = {
  name: 'stats',
  usage: 'stats [OPTIONS] [CONTAINER...]',
  description: 'Display a live stream of container(s) resource usage statistics',
  flags: [
    { long: 'all', short: 'a', kind: 'bool', help: 'Show all containers (default shows just running)' },
    { long: 'format', kind: 'string', help: 'Format output using a custom template' },
    { long: 'no-stream', kind: 'bool', help: 'Disable streaming stats and only pull the first result' },
    { long: 'no-trunc', kind: 'bool', help: 'Do not truncate output' },
  ],
  async run(ctx, p) {
    const format = p.str('format') || STATS_TABLE;
    const names = async (): Promise<string[]> => {
      if (p.args.length) return p.args;
      const list = await ctx.client.json<ContainerSummary[]>('GET', '/containers/json', { query: { all: p.bool('all') || undefined } });
      return list.map((c) => c.Id.slice(0, 12));
    };
    const render = (rows: Record<string, unknown>[]) => renderRows(format, rows, statsHeaders, STATS_TABLE);
    if (p.bool('no-stream')) {
      const { rows, errors } = await statsOf(ctx, await names());
      ctx.out.write(render(rows));
      if (errors.length) throw new StatusError(errors.join('\n'), 1);
      return 0;
    }
    for (;;) {
      const { rows, errors } = await statsOf(ctx, await names());
      if (errors.length && p.args.length) throw new StatusError(errors.join('\n'), 1);
      // Each frame replaces the last on a terminal, as docker's does.
      ctx.out.write((ctx.out.isTTY ? '\x1b[2J\x1b[H' : '') + render(rows));
    }
  },
};
