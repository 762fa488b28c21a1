/**
 * `berth volume create|ls|inspect|rm|prune`, with docker's flags, columns and messages; and
 * `--mount`'s CSV syntax for run and create (docker's opts/mount.go), which turns into
 * HostConfig.Mounts entries.
 */
import type { Command } from '../command.js';
import { filtersJson, renderRows, StatusError } from '../command.js';
import { humanSize, ramInBytes } from '../format.js';
import { ApiError } from '../http.js';
import { confirm, inspectObjects } from './containers.js';

const enc = encodeURIComponent;

interface ApiVolume {
  Name: string;
  Driver: string;
  Mountpoint: string;
  Scope?: string;
  Labels?: Record<string, string> | null;
  CreatedAt?: string;
}

function keyValues(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list) {
    const eq = kv.indexOf('=');
    out[eq < 0 ? kv : kv.slice(0, eq)] = eq < 0 ? '' : kv.slice(eq + 1);
  }
  return out;
}

export const volumeCreate: Command = {
  name: 'create',
  usage: 'create [OPTIONS] [VOLUME]',
  description: 'Create a volume',
  flags: [
    { long: 'driver', short: 'd', kind: 'string', help: 'Specify volume driver name', default: 'local' },
    { long: 'label', kind: 'list', help: 'Set metadata for a volume' },
    { long: 'name', kind: 'string', help: 'Specify volume name' },
    { long: 'opt', short: 'o', kind: 'list', type: 'map', help: 'Set driver specific options' },
  ],
  args: { max: 1 },
  async run(ctx, p) {
    const named = p.str('name');
    if (named !== undefined && p.args[0] !== undefined && named !== p.args[0]) {
      throw new StatusError('conflicting options: either specify --name or provide positional arg, not both', 1);
    }
    const opts: Record<string, string> = {};
    for (const o of p.list('opt')) {
      const eq = o.indexOf('=');
      if (eq <= 0) throw new StatusError(`invalid argument "${o}" for "-o, --opt" flag: bad format for option: ${o}`, 125);
      opts[o.slice(0, eq)] = o.slice(eq + 1);
    }
    const v = await ctx.client.json<ApiVolume>('POST', '/volumes/create', {
      body: { Name: named ?? p.args[0] ?? '', Driver: p.str('driver') ?? 'local', DriverOpts: opts, Labels: keyValues(p.list('label')) },
    });
    ctx.out.write(`${v.Name}\n`);
    return 0;
  },
};

const lsHeaders = { Driver: 'DRIVER', Name: 'VOLUME NAME', Scope: 'SCOPE', Mountpoint: 'MOUNTPOINT', Labels: 'LABELS', Links: 'LINKS', Size: 'SIZE', CreatedAt: 'CREATED AT' };

export const volumeLs: Command = {
  name: 'ls',
  aliases: ['list'],
  usage: 'ls [OPTIONS]',
  description: 'List volumes',
  flags: [
    { long: 'filter', short: 'f', kind: 'list', type: 'filter', help: "Provide filter values (e.g. 'dangling=true')" },
    { long: 'format', kind: 'string', help: "Format output using a custom template:\n'table': Print output in table format with column headers (default)\n'table TEMPLATE': Print output in table format using the given Go template\n'json': Print in JSON format\n'TEMPLATE': Print output using the given Go template" },
    { long: 'quiet', short: 'q', kind: 'bool', help: 'Only display volume names' },
  ],
  args: { max: 0 },
  async run(ctx, p) {
    const r = await ctx.client.json<{ Volumes: ApiVolume[] | null }>('GET', '/volumes', { query: { filters: filtersJson(p.list('filter')) } });
    const vols = [...(r.Volumes ?? [])].sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0));
    const def = 'table {{.Driver}}\t{{.Name}}';
    let format = p.str('format') ?? '';
    if (p.bool('quiet')) format = '{{.Name}}';
    if (format === '' || format === 'table') format = def;
    if (format === 'json') format = '{{json .}}';
    const rows = vols.map((v) => ({
      Name: v.Name,
      Driver: v.Driver,
      Scope: v.Scope ?? 'local',
      Mountpoint: v.Mountpoint,
      Labels: Object.entries(v.Labels ?? {}).map(([k, val]) => `${k}=${val}`).sort().join(','),
      Links: 'N/A',
      Size: 'N/A',
      CreatedAt: v.CreatedAt ?? '',
    }));
    ctx.out.write(renderRows(format, rows, lsHeaders, def));
    return 0;
  },
};

export const volumeInspect: Command = {
  name: 'inspect',
  usage: 'inspect [OPTIONS] VOLUME [VOLUME...]',
  description: 'Display detailed information on one or more volumes',
  flags: [{ long: 'format', short: 'f', kind: 'string', help: "Format output using a custom template:\n'json':             Print in JSON format\n'TEMPLATE':         Print output using the given Go template" }],
  args: { min: 1 },
  run: (ctx, p) => inspectObjects(ctx, p.args, ['volume'], p.str('format'), false),
};

export const volumeRm: Command = {
  name: 'rm',
  aliases: ['remove'],
  usage: 'rm [OPTIONS] VOLUME [VOLUME...]',
  description: 'Remove one or more volumes',
  flags: [{ long: 'force', short: 'f', kind: 'bool', help: 'Force the removal of one or more volumes' }],
  args: { min: 1 },
  async run(ctx, p) {
    const errs: string[] = [];
    for (const n of p.args) {
      try {
        await ctx.client.call('DELETE', `/volumes/${enc(n)}`, { query: { force: p.bool('force') || undefined } });
        ctx.out.write(`${n}\n`);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        errs.push(e.message);
      }
    }
    if (errs.length) throw new StatusError(errs.join('\n'), 1);
    return 0;
  },
};

export const volumePrune: Command = {
  name: 'prune',
  usage: 'prune [OPTIONS]',
  description: 'Remove unused local volumes',
  flags: [
    { long: 'all', short: 'a', kind: 'bool', help: 'Remove all unused volumes, not just anonymous ones' },
    { long: 'filter', kind: 'list', type: 'filter', help: 'Provide filter values (e.g. "label=<label>")' },
    { long: 'force', short: 'f', kind: 'bool', help: 'Do not prompt for confirmation' },
  ],
  args: { max: 0 },
  async run(ctx, p) {
    const warning = p.bool('all')
      ? 'WARNING! This will remove all local volumes not used by at least one container.'
      : 'WARNING! This will remove anonymous local volumes not used by at least one container.';
    if (!p.bool('force') && !(await confirm(ctx, warning))) return 0;
    const filters = [...p.list('filter'), ...(p.bool('all') ? ['all=true'] : [])];
    const r = await ctx.client.json<{ VolumesDeleted?: string[] | null; SpaceReclaimed?: number }>('POST', '/volumes/prune', { query: { filters: filtersJson(filters) } });
    const del = r.VolumesDeleted ?? [];
    if (del.length) ctx.out.write(`Deleted Volumes:\n${del.map((n) => `${n}\n`).join('')}\n`);
    ctx.out.write(`Total reclaimed space: ${humanSize(r.SpaceReclaimed ?? 0)}\n`);
    return 0;
  },
};

export const volumeCommands = [volumeCreate, volumeInspect, volumeLs, volumePrune, volumeRm];

/** A HostConfig.Mounts entry, as the docker CLI builds it from --mount's CSV. */
export interface MountFlag {
  Type: string;
  Source?: string;
  Target?: string;
  ReadOnly?: boolean;
  Consistency?: string;
  BindOptions?: { Propagation?: string; NonRecursive?: boolean; CreateMountpoint?: boolean; ReadOnlyNonRecursive?: boolean; ReadOnlyForceRecursive?: boolean };
  VolumeOptions?: { NoCopy?: boolean; Labels?: Record<string, string>; Subpath?: string; DriverConfig?: { Name?: string; Options?: Record<string, string> } };
  TmpfsOptions?: { SizeBytes?: number; Mode?: number };
}

function flagBool(key: string, v: string | undefined): boolean {
  if (v === undefined) return true;
  const l = v.toLowerCase();
  if (['1', 't', 'true'].includes(l)) return true;
  if (['0', 'f', 'false'].includes(l)) return false;
  throw new Error(`invalid value for ${key}: ${v}`);
}

/** docker's --mount CSV: type=…,source=…,target=…,readonly,… → a Mount; the message is docker's. */
export function parseMountFlag(value: string): MountFlag {
  const m: MountFlag = { Type: 'volume' };
  const vol = () => (m.VolumeOptions ??= {});
  const bind = () => (m.BindOptions ??= {});
  const tmpfs = () => (m.TmpfsOptions ??= {});
  for (const field of value.split(',')) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    const val = eq < 0 ? undefined : field.slice(eq + 1);
    const need = (): string => {
      if (val === undefined) throw new Error(`invalid field '${field}' must be a key=value pair`);
      return val;
    };
    switch (key) {
      case 'type': m.Type = need().toLowerCase(); break;
      case 'source': case 'src': m.Source = need(); break;
      case 'target': case 'dst': case 'destination': m.Target = need(); break;
      case 'readonly': case 'ro': m.ReadOnly = flagBool(key, val); break;
      case 'consistency': m.Consistency = need(); break;
      case 'bind-propagation': bind().Propagation = need().toLowerCase(); break;
      case 'bind-nonrecursive': bind().NonRecursive = flagBool(key, val); break;
      case 'bind-recursive': {
        const r = need();
        if (r === 'disabled') bind().NonRecursive = true;
        else if (r === 'writable') bind().ReadOnlyNonRecursive = true;
        else if (r === 'readonly') bind().ReadOnlyForceRecursive = true;
        else if (r !== 'enabled') throw new Error(`invalid value for ${key}: ${r} (must be "enabled", "disabled", "writable", or "readonly")`);
        break;
      }
      case 'bind-create-mountpoint': bind().CreateMountpoint = flagBool(key, val); break;
      case 'volume-nocopy': vol().NoCopy = flagBool(key, val); break;
      case 'volume-subpath': vol().Subpath = need(); break;
      case 'volume-driver': (vol().DriverConfig ??= {}).Name = need(); break;
      case 'volume-label': {
        const kv = need();
        const i = kv.indexOf('=');
        (vol().Labels ??= {})[i < 0 ? kv : kv.slice(0, i)] = i < 0 ? '' : kv.slice(i + 1);
        break;
      }
      case 'volume-opt': {
        const kv = need();
        const i = kv.indexOf('=');
        if (i < 0) throw new Error(`invalid value for ${key}: ${kv}`);
        ((vol().DriverConfig ??= {}).Options ??= {})[kv.slice(0, i)] = kv.slice(i + 1);
        break;
      }
      case 'tmpfs-size': {
        const s = need();
        try {
          tmpfs().SizeBytes = ramInBytes(s);
        } catch {
          throw new Error(`invalid value for ${key}: ${s}`);
        }
        break;
      }
      case 'tmpfs-mode': {
        const s = need();
        if (!/^[0-7]+$/.test(s)) throw new Error(`invalid value for ${key}: ${s}`);
        tmpfs().Mode = parseInt(s, 8);
        break;
      }
      default:
        throw new Error(`unexpected key '${key}' in '${field}'`);
    }
  }
  if (!m.Target) throw new Error('target is required');
  if (m.VolumeOptions && m.Type !== 'volume') throw new Error(`cannot mix 'volume-*' options with mount type '${m.Type}'`);
  if (m.BindOptions && m.Type !== 'bind') throw new Error(`cannot mix 'bind-*' options with mount type '${m.Type}'`);
  if (m.TmpfsOptions && m.Type !== 'tmpfs') throw new Error(`cannot mix 'tmpfs-*' options with mount type '${m.Type}'`);
  return m;
}
