/**
 * Container commands other than run/create/start: ps, stop, kill, restart, rm,
 * logs, wait, inspect, container prune. Each per-container loop keeps going past
 * a failure and reports all errors at the end with exit 1, as docker does.
 */
import type { Command, Ctx } from '../command.js';
import { filtersJson, renderRows, StatusError } from '../command.js';
import type { Parsed } from '../flags.js';
import { ellipsis, goQuote, humanSize, since, truncateId } from '../format.js';
import { ApiError, Demuxer } from '../http.js';
import { Template } from '../template.js';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';

const enc = encodeURIComponent;

interface Port {
  IP?: string;
  PrivatePort: number;
  PublicPort?: number;
  Type: string;
}
export interface ContainerSummary {
  Id: string;
  Names?: string[];
  Image?: string;
  ImageID?: string;
  Command?: string;
  Created?: number;
  Ports?: Port[] | null;
  Labels?: Record<string, string> | null;
  State?: string;
  Status?: string;
  SizeRw?: number;
  SizeRootFs?: number;
  Mounts?: Array<{ Name?: string; Source?: string; Driver?: string }> | null;
  NetworkSettings?: { Networks?: Record<string, unknown> | null } | null;
}

/**
 * docker's DisplayablePorts: sorted, consecutive ports of one ip/proto grouped into
 * ranges ("8000-8002/tcp", "0.0.0.0:80-81->80-81/tcp"), remapped ports listed last.
 */
export function displayPorts(ports: Port[] | null | undefined): string {
  const sorted = [...(ports ?? [])].sort(
    (a, b) =>
      a.PrivatePort - b.PrivatePort ||
      (a.IP ?? '').localeCompare(b.IP ?? '') ||
      (a.PublicPort ?? 0) - (b.PublicPort ?? 0) ||
      a.Type.localeCompare(b.Type),
  );
  const groups = new Map<string, { first: number; last: number }>();
  const result: string[] = [];
  const hostMappings: string[] = [];
  const form = (key: string, g: { first: number; last: number }): string => {
    const slash = key.lastIndexOf('/');
    const ip = slash >= 0 ? key.slice(0, slash) : '';
    const type = slash >= 0 ? key.slice(slash + 1) : key;
    let group = String(g.first);
    if (g.first !== g.last) group += `-${g.last}`;
    if (ip) group = `${ip}:${group}->${group}`;
    return `${group}/${type}`;
  };
  for (const p of sorted) {
    const cur = p.PrivatePort;
    let key = p.Type;
    if (p.IP) {
      if (p.PublicPort !== cur) {
        const host = p.IP.includes(':') ? `[${p.IP}]` : p.IP;
        hostMappings.push(`${host}:${p.PublicPort ?? 0}->${cur}/${p.Type}`);
        continue;
      }
      key = `${p.IP}/${p.Type}`;
    }
    const g = groups.get(key);
    if (!g) {
      groups.set(key, { first: cur, last: cur });
      continue;
    }
    if (cur === g.last + 1) {
      g.last = cur;
      continue;
    }
    result.push(form(key, g));
    // Go re-inserts the key; map order is insertion order of first creation, kept by Map.set.
    groups.set(key, { first: cur, last: cur });
  }
  for (const [key, g] of groups) result.push(form(key, g));
  return [...result, ...hostMappings].join(', ');
}

function createdAt(unix: number): string {
  const d = new Date(unix * 1000).toISOString();
  return `${d.slice(0, 10)} ${d.slice(11, 19)} +0000 UTC`;
}

export function containerRow(c: ContainerSummary, trunc: boolean, now = Date.now()): Record<string, string> {
  let names = (c.Names ?? []).map((n) => n.replace(/^\//, ''));
  if (trunc) {
    const plain = names.find((n) => !n.includes('/'));
    if (plain !== undefined) names = [plain];
  }
  let image = c.Image ?? '';
  if (image === '') image = '<no image>';
  else if (trunc) {
    if (c.ImageID && truncateId(c.ImageID) === truncateId(image)) image = truncateId(image);
    else image = image.replace(/@sha256:[0-9a-f]+$/, '');
  }
  const command = c.Command ?? '';
  const srw = humanSize(c.SizeRw ?? 0, 3);
  const mounts = (c.Mounts ?? []).map((m) => (m.Name ? (trunc ? ellipsis(m.Name, 15) : m.Name) : (m.Source ?? '')));
  return {
    ID: trunc ? truncateId(c.Id) : c.Id,
    Image: image,
    Command: goQuote(trunc ? ellipsis(command, 20) : command),
    CreatedAt: createdAt(c.Created ?? 0),
    RunningFor: since(c.Created ?? 0, now),
    Ports: displayPorts(c.Ports),
    State: c.State ?? '',
    Status: c.Status ?? '',
    Size: c.SizeRootFs ? `${srw} (virtual ${humanSize(c.SizeRootFs, 3)})` : srw,
    Names: names.join(','),
    Labels: Object.entries(c.Labels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .sort()
      .join(','),
    Mounts: mounts.join(','),
    Networks: Object.keys(c.NetworkSettings?.Networks ?? {})
      .sort()
      .join(','),
    LocalVolumes: String((c.Mounts ?? []).filter((m) => m.Driver === 'local').length),
  };
}

const psHeaders: Record<string, string> = {
  ID: 'CONTAINER ID',
  Image: 'IMAGE',
  Command: 'COMMAND',
  CreatedAt: 'CREATED AT',
  RunningFor: 'CREATED',
  Ports: 'PORTS',
  State: 'STATE',
  Status: 'STATUS',
  Size: 'SIZE',
  Names: 'NAMES',
  Labels: 'LABELS',
  Mounts: 'MOUNTS',
  Networks: 'NETWORKS',
  LocalVolumes: 'LOCAL VOLUMES',
};

const formatHelp = "Format output using a custom template:\n'table': Print output in table format with column headers (default)\n'table TEMPLATE': Print output in table format using the given Go template\n'json': Print in JSON format\n'TEMPLATE': Print output using the given Go template";

export const ps: Command = {
  name: 'ps',
  aliases: ['ls', 'list'],
  usage: 'ps [OPTIONS]',
  description: 'List containers',
  flags: [
    { long: 'all', short: 'a', kind: 'bool', help: 'Show all containers (default shows just running)' },
    { long: 'filter', short: 'f', kind: 'list', type: 'filter', help: 'Filter output based on conditions provided' },
    { long: 'format', kind: 'string', help: formatHelp },
    { long: 'last', short: 'n', kind: 'int', help: 'Show n last created containers (includes all states)', default: '-1' },
    { long: 'latest', short: 'l', kind: 'bool', help: 'Show the latest created container (includes all states)' },
    { long: 'no-trunc', kind: 'bool', help: "Don't truncate output" },
    { long: 'quiet', short: 'q', kind: 'bool', help: 'Only display container IDs' },
    { long: 'size', short: 's', kind: 'bool', help: 'Display total file sizes' },
  ],
  args: { max: 0 },
  async run(ctx, p) {
    let format = p.str('format') ?? '';
    if (p.bool('quiet')) format = '{{.ID}}';
    const size = p.bool('size');
    const def = `table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}${size ? '\t{{.Size}}' : ''}`;
    if (format === '' || format === 'table') format = def;
    const last = p.int('last') ?? -1;
    const list = await ctx.client.json<ContainerSummary[]>('GET', '/containers/json', {
      query: {
        all: p.bool('all') || undefined,
        limit: p.bool('latest') ? 1 : last !== -1 ? last : undefined,
        size: size || format.includes('.Size') || undefined,
        filters: filtersJson(p.list('filter')),
      },
    });
    const now = Date.now();
    const rows = list.map((c) => containerRow(c, !p.bool('no-trunc'), now));
    ctx.out.write(renderRows(format, rows, psHeaders, def));
    return 0;
  },
};

/** Runs op on each container, printing its name on success; errors are joined at the end (exit 1). */
export async function each(ctx: Ctx, names: string[], op: (name: string) => Promise<void>, ignoreNotFound = false): Promise<number> {
  const errs: string[] = [];
  for (const name of names) {
    try {
      await op(name);
      ctx.out.write(`${name}\n`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (ignoreNotFound && e.status === 404) {
        ctx.err.write(`${e.message}\n`);
        continue;
      }
      errs.push(e.message);
    }
  }
  if (errs.length) throw new StatusError(errs.join('\n'), 1);
  return 0;
}

const timeoutFlags = [
  { long: 'signal', short: 's', kind: 'string' as const, help: 'Signal to send to the container' },
  { long: 'timeout', short: 't', kind: 'int' as const, help: 'Seconds to wait before killing the container' },
  { long: 'time', kind: 'int' as const, help: 'Seconds to wait before killing the container (deprecated: use --timeout)' },
];
const timeQuery = (p: Parsed) => ({ t: p.int('timeout') ?? p.int('time'), signal: p.str('signal') });

export const stop: Command = {
  name: 'stop',
  usage: 'stop [OPTIONS] CONTAINER [CONTAINER...]',
  description: 'Stop one or more running containers',
  flags: timeoutFlags,
  args: { min: 1 },
  run: (ctx, p) => each(ctx, p.args, async (n) => void (await ctx.client.call('POST', `/containers/${enc(n)}/stop`, { query: timeQuery(p) }))),
};

export const restart: Command = {
  name: 'restart',
  usage: 'restart [OPTIONS] CONTAINER [CONTAINER...]',
  description: 'Restart one or more containers',
  flags: timeoutFlags,
  args: { min: 1 },
  run: (ctx, p) => each(ctx, p.args, async (n) => void (await ctx.client.call('POST', `/containers/${enc(n)}/restart`, { query: timeQuery(p) }))),
};

export const kill: Command = {
  name: 'kill',
  usage: 'kill [OPTIONS] CONTAINER [CONTAINER...]',
  description: 'Kill one or more running containers',
  flags: [{ long: 'signal', short: 's', kind: 'string', help: 'Signal to send to the container' }],
  args: { min: 1 },
  run: (ctx, p) => each(ctx, p.args, async (n) => void (await ctx.client.call('POST', `/containers/${enc(n)}/kill`, { query: { signal: p.str('signal') } }))),
};

export const rm: Command = {
  name: 'rm',
  aliases: ['remove'],
  usage: 'rm [OPTIONS] CONTAINER [CONTAINER...]',
  description: 'Remove one or more containers',
  flags: [
    { long: 'force', short: 'f', kind: 'bool', help: 'Force the removal of a running container (uses SIGKILL)' },
    { long: 'link', short: 'l', kind: 'bool', help: 'Remove the specified link' },
    { long: 'volumes', short: 'v', kind: 'bool', help: 'Remove anonymous volumes associated with the container' },
  ],
  args: { min: 1 },
  run: (ctx, p) =>
    each(
      ctx,
      p.args,
      async (n) => {
        if (n.replace(/^\//, '') === '') throw new ApiError(400, 'Container name cannot be empty');
        await ctx.client.call('DELETE', `/containers/${enc(n)}`, { query: { force: p.bool('force') || undefined, v: p.bool('volumes') || undefined, link: p.bool('link') || undefined } });
      },
      p.bool('force'),
    ),
};

export const wait: Command = {
  name: 'wait',
  usage: 'wait CONTAINER [CONTAINER...]',
  description: 'Block until one or more containers stop, then print their exit codes',
  flags: [],
  args: { min: 1 },
  async run(ctx, p) {
    const errs: string[] = [];
    for (const n of p.args) {
      try {
        const r = await ctx.client.json<{ StatusCode: number; Error?: { Message?: string } | null }>('POST', `/containers/${enc(n)}/wait`);
        if (r.Error?.Message) errs.push(r.Error.Message);
        else ctx.out.write(`${r.StatusCode}\n`);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        errs.push(e.message);
      }
    }
    if (errs.length) throw new StatusError(errs.join('\n'), 1);
    return 0;
  },
};

/** Go's time.ParseDuration subset for --since 10m / 1h30m. */
function goDuration(s: string): number | undefined {
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(s)) return undefined;
  const mult: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };
  let ms = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(m[1]) * mult[m[2]];
  return ms;
}

/** docker's timetypes.GetTimestamp: durations are relative to now, dates absolute, numbers as-is. */
export function timestampArg(value: string, now = Date.now()): string {
  const d = goDuration(value);
  if (d !== undefined) return ((now - d) / 1000).toFixed(9);
  if (/^\d+(\.\d+)?$/.test(value)) return value;
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new StatusError(`invalid value for "since": failed to parse value as time or duration: "${value}"`, 1);
  return (t / 1000).toFixed(9);
}

export const logs: Command = {
  name: 'logs',
  usage: 'logs [OPTIONS] CONTAINER',
  description: 'Fetch the logs of a container',
  flags: [
    { long: 'details', kind: 'bool', help: 'Show extra details provided to logs' },
    { long: 'follow', short: 'f', kind: 'bool', help: 'Follow log output' },
    { long: 'since', kind: 'string', help: 'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)' },
    { long: 'tail', short: 'n', kind: 'string', help: 'Number of lines to show from the end of the logs', default: 'all' },
    { long: 'timestamps', short: 't', kind: 'bool', help: 'Show timestamps' },
    { long: 'until', kind: 'string', help: 'Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)' },
  ],
  args: { min: 1, max: 1 },
  async run(ctx, p) {
    const name = p.args[0];
    const info = await ctx.client.json<{ Config?: { Tty?: boolean } }>('GET', `/containers/${enc(name)}/json`);
    const res = await ctx.client.request('GET', `/containers/${enc(name)}/logs`, {
      query: {
        stdout: true,
        stderr: true,
        since: p.str('since') ? timestampArg(p.str('since') as string) : undefined,
        until: p.str('until') ? timestampArg(p.str('until') as string) : undefined,
        timestamps: p.bool('timestamps') || undefined,
        follow: p.bool('follow') || undefined,
        tail: p.str('tail') ?? 'all',
        details: p.bool('details') || undefined,
      },
    });
    if (info.Config?.Tty) {
      await pipeline(
        res,
        new Writable({
          write: (c: Buffer, _e, cb) => (ctx.out.write(c) ? cb() : ctx.out.once('drain', () => cb())),
        }),
      );
    } else await pipeline(res, new Demuxer(ctx.out, ctx.err));
    return 0;
  },
};

/** The objects `inspect` knows, in the order docker's generic `inspect` tries them. */
const INSPECTABLE = {
  container: (n: string) => `/containers/${enc(n)}/json`,
  image: (n: string) => `/images/${enc(n)}/json`,
  network: (n: string) => `/networks/${enc(n)}`,
  volume: (n: string) => `/volumes/${enc(n)}`,
};
export type InspectKind = keyof typeof INSPECTABLE;
export const INSPECT_KINDS = Object.keys(INSPECTABLE) as InspectKind[];

/** Shared by `inspect` and each object's own `inspect` (`container`, `image`, `network`, `volume`). */
export async function inspectObjects(ctx: Ctx, names: string[], kinds: InspectKind[], format: string | undefined, generic: boolean): Promise<number> {
  const found: unknown[] = [];
  const errs: string[] = [];
  for (const n of names) {
    let obj: unknown;
    let message = '';
    for (const k of kinds) {
      try {
        obj = await ctx.client.json('GET', INSPECTABLE[k](n));
        break;
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 404) throw e;
        message ||= e.message;
      }
    }
    if (obj === undefined) errs.push(generic ? `Error: No such object: ${n}` : message);
    else found.push(obj);
  }
  if (format) {
    const f = format === 'json' ? '{{json .}}' : format;
    const tpl = Template.compile(f.replace(/\\t/g, '\t').replace(/\\n/g, '\n'));
    if (found.length === 0) ctx.out.write('\n');
    for (const o of found) {
      try {
        ctx.out.write(tpl.execute(o) + '\n');
      } catch (e) {
        throw new StatusError(`template parsing error: ${(e as Error).message}`, 1);
      }
    }
  } else {
    ctx.out.write(found.length ? JSON.stringify(found, null, 4) + '\n' : '[]\n');
  }
  if (errs.length) throw new StatusError(errs.join('\n'), 1);
  return 0;
}

export const inspectFlags = [
  { long: 'format', short: 'f', kind: 'string' as const, help: formatHelp },
  { long: 'size', short: 's', kind: 'bool' as const, help: 'Display total file sizes' },
];

export const containerInspect: Command = {
  name: 'inspect',
  usage: 'inspect [OPTIONS] CONTAINER [CONTAINER...]',
  description: 'Display detailed information on one or more containers',
  flags: inspectFlags,
  args: { min: 1 },
  run: (ctx, p) => inspectObjects(ctx, p.args, ['container'], p.str('format'), false),
};

export const inspect: Command = {
  name: 'inspect',
  usage: 'inspect [OPTIONS] NAME|ID [NAME|ID...]',
  description: 'Return low-level information on Docker objects',
  flags: [...inspectFlags, { long: 'type', kind: 'string', help: 'Only inspect objects of the given type' }],
  args: { min: 1 },
  run(ctx, p) {
    const type = p.str('type');
    if (type !== undefined && !(INSPECT_KINDS as string[]).includes(type)) throw new StatusError(`"${type}" is not a valid value for --type`, 1);
    return inspectObjects(ctx, p.args, type ? [type as InspectKind] : INSPECT_KINDS, p.str('format'), !type);
  },
};

/** Reads one line from stdin and says whether it is y/yes, like docker's prompt. */
export async function confirm(ctx: Ctx, warning: string): Promise<boolean> {
  ctx.out.write(`${warning}\nAre you sure you want to continue? [y/N] `);
  const line = await new Promise<string>((resolve) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\n')) finish();
    };
    const finish = () => {
      ctx.stdin.off('data', onData);
      ctx.stdin.off('end', finish);
      ctx.stdin.pause();
      resolve(buf.split('\n')[0]);
    };
    ctx.stdin.on('data', onData);
    ctx.stdin.once('end', finish);
    ctx.stdin.resume();
  });
  return /^\s*(y|yes)\s*$/i.test(line);
}

export const containerPrune: Command = {
  name: 'prune',
  usage: 'prune [OPTIONS]',
  description: 'Remove all stopped containers',
  flags: [
    { long: 'filter', kind: 'list', type: 'filter', help: 'Provide filter values (e.g. "until=<timestamp>")' },
    { long: 'force', short: 'f', kind: 'bool', help: 'Do not prompt for confirmation' },
  ],
  args: { max: 0 },
  async run(ctx, p) {
    if (!p.bool('force') && !(await confirm(ctx, 'WARNING! This will remove all stopped containers.'))) return 0;
    const r = await ctx.client.json<{ ContainersDeleted?: string[] | null; SpaceReclaimed?: number }>('POST', '/containers/prune', {
      query: { filters: filtersJson(p.list('filter')) },
    });
    const del = r.ContainersDeleted ?? [];
    if (del.length) ctx.out.write(`Deleted Containers:\n${del.map((d) => d + '\n').join('')}\n`);
    ctx.out.write(`Total reclaimed space: ${humanSize(r.SpaceReclaimed ?? 0)}\n`);
    return 0;
  },
};
