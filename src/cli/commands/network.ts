/** `berth network …` and `berth port`: docker's commands, flags, columns and messages, over the /networks API. */
import type { Command, Ctx } from '../command.js';
import { StatusError, filtersJson, renderRows } from '../command.js';
import { ApiError } from '../http.js';
import { confirm, inspectObjects } from './containers.js';

const enc = encodeURIComponent;

interface NetworkSummary {
  Id: string;
  Name: string;
  Driver: string;
  Scope: string;
  Created: string;
  Internal: boolean;
  EnableIPv6: boolean;
  Labels: Record<string, string> | null;
}

const headers = { ID: 'NETWORK ID', Name: 'NAME', Driver: 'DRIVER', Scope: 'SCOPE', IPv6: 'IPV6', Internal: 'INTERNAL', Labels: 'LABELS', CreatedAt: 'CREATED AT' };

function labelsOf(l: Record<string, string> | null): string {
  return Object.entries(l ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
}

export const networkLs: Command = {
  name: 'ls',
  aliases: ['list'],
  usage: 'ls [OPTIONS]',
  description: 'List networks',
  flags: [
    { long: 'filter', short: 'f', kind: 'list', type: 'filter', help: 'Provide filter values (e.g. "driver=bridge")' },
    { long: 'format', kind: 'string', help: 'Format output using a custom template' },
    { long: 'no-trunc', kind: 'bool', help: 'Do not truncate the output' },
    { long: 'quiet', short: 'q', kind: 'bool', help: 'Only display network IDs' },
  ],
  args: { max: 0 },
  async run(ctx, p) {
    const list = await ctx.client.json<NetworkSummary[]>('GET', '/networks', { query: { filters: filtersJson(p.list('filter')) } });
    list.sort((a, b) => a.Name.localeCompare(b.Name));
    const trunc = !p.bool('no-trunc');
    const rows = list.map((n) => ({
      ID: trunc ? n.Id.slice(0, 12) : n.Id, Name: n.Name, Driver: n.Driver, Scope: n.Scope, IPv6: String(n.EnableIPv6),
      Internal: String(n.Internal), Labels: labelsOf(n.Labels), CreatedAt: n.Created,
    }));
    if (p.bool('quiet')) {
      for (const r of rows) ctx.out.write(`${r.ID}\n`);
      return 0;
    }
    ctx.out.write(renderRows(p.str('format') ?? 'table', rows, headers, 'table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}'));
    return 0;
  },
};

/** "k=v" options (--label, --opt) into a map. */
function keyValues(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list) {
    const eq = l.indexOf('=');
    out[eq < 0 ? l : l.slice(0, eq)] = eq < 0 ? '' : l.slice(eq + 1);
  }
  return out;
}

export const networkCreate: Command = {
  name: 'create',
  usage: 'create [OPTIONS] NETWORK',
  description: 'Create a network',
  flags: [
    { long: 'attachable', kind: 'bool', help: 'Enable manual container attachment' },
    { long: 'driver', short: 'd', kind: 'string', help: 'Driver to manage the Network', default: 'bridge' },
    { long: 'gateway', kind: 'list', help: 'IPv4 or IPv6 Gateway for the master subnet' },
    { long: 'internal', kind: 'bool', help: 'Restrict external access to the network' },
    { long: 'ip-range', kind: 'list', help: 'Allocate container ip from a sub-range' },
    { long: 'ipv6', kind: 'bool', help: 'Enable or disable IPv6 networking' },
    { long: 'label', kind: 'list', help: 'Set metadata on a network' },
    { long: 'opt', short: 'o', kind: 'list', help: 'Set driver specific options' },
    { long: 'subnet', kind: 'list', help: 'Subnet in CIDR format that represents a network segment' },
  ],
  args: { min: 1, max: 1 },
  async run(ctx, p) {
    const subnets = p.list('subnet');
    const gateways = p.list('gateway');
    const ranges = p.list('ip-range');
    if (gateways.length > subnets.length || ranges.length > subnets.length) throw new StatusError('every ip-range or gateway must have a corresponding subnet', 1);
    const config = subnets.map((s, i) => ({ Subnet: s, ...(gateways[i] ? { Gateway: gateways[i] } : {}), ...(ranges[i] ? { IPRange: ranges[i] } : {}) }));
    const r = await ctx.client.json<{ Id: string }>('POST', '/networks/create', {
      body: {
        Name: p.args[0], Driver: p.str('driver') ?? 'bridge', Internal: p.bool('internal'), Attachable: p.bool('attachable'),
        EnableIPv6: p.bool('ipv6'), Labels: keyValues(p.list('label')), Options: keyValues(p.list('opt')),
        IPAM: { Driver: 'default', Config: config, Options: {} },
      },
    });
    ctx.out.write(`${r.Id}\n`);
    return 0;
  },
};

export const networkInspect: Command = {
  name: 'inspect',
  usage: 'inspect [OPTIONS] NETWORK [NETWORK...]',
  description: 'Display detailed information on one or more networks',
  flags: [
    { long: 'format', short: 'f', kind: 'string', help: 'Format output using a custom template' },
    { long: 'verbose', short: 'v', kind: 'bool', help: 'Verbose output for diagnostics' },
  ],
  args: { min: 1 },
  run: (ctx, p) => inspectObjects(ctx, p.args, ['network'], p.str('format'), false),
};

export const networkRm: Command = {
  name: 'rm',
  aliases: ['remove'],
  usage: 'rm NETWORK [NETWORK...]',
  description: 'Remove one or more networks',
  flags: [{ long: 'force', short: 'f', kind: 'bool', help: 'Do not error if the network does not exist' }],
  args: { min: 1 },
  async run(ctx, p) {
    const errs: string[] = [];
    for (const n of p.args) {
      try {
        await ctx.client.json('DELETE', `/networks/${enc(n)}`);
        ctx.out.write(`${n}\n`);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        if (p.bool('force') && e.status === 404) continue;
        errs.push(`Error response from daemon: ${e.message}`);
      }
    }
    if (errs.length) throw new StatusError(errs.join('\n'), 1);
    return 0;
  },
};

export const networkConnect: Command = {
  name: 'connect',
  usage: 'connect [OPTIONS] NETWORK CONTAINER',
  description: 'Connect a container to a network',
  flags: [
    { long: 'alias', kind: 'list', help: 'Add network-scoped alias for the container' },
    { long: 'ip', kind: 'string', help: 'IPv4 address (e.g., "172.30.100.104")' },
    { long: 'link', kind: 'list', help: 'Add link to another container' },
  ],
  args: { min: 2, max: 2 },
  async run(ctx, p) {
    const ip = p.str('ip');
    await ctx.client.json('POST', `/networks/${enc(p.args[0]!)}/connect`, {
      body: { Container: p.args[1], EndpointConfig: { Aliases: p.list('alias'), Links: p.list('link'), ...(ip ? { IPAMConfig: { IPv4Address: ip } } : {}) } },
    });
    return 0;
  },
};

export const networkDisconnect: Command = {
  name: 'disconnect',
  usage: 'disconnect [OPTIONS] NETWORK CONTAINER',
  description: 'Disconnect a container from a network',
  flags: [{ long: 'force', short: 'f', kind: 'bool', help: 'Force the container to disconnect from a network' }],
  args: { min: 2, max: 2 },
  async run(ctx, p) {
    await ctx.client.json('POST', `/networks/${enc(p.args[0]!)}/disconnect`, { body: { Container: p.args[1], Force: p.bool('force') } });
    return 0;
  },
};

export const networkPrune: Command = {
  name: 'prune',
  usage: 'prune [OPTIONS]',
  description: 'Remove all unused networks',
  flags: [
    { long: 'filter', kind: 'list', type: 'filter', help: 'Provide filter values (e.g. "until=<timestamp>")' },
    { long: 'force', short: 'f', kind: 'bool', help: 'Do not prompt for confirmation' },
  ],
  args: { max: 0 },
  async run(ctx, p) {
    if (!p.bool('force') && !(await confirm(ctx, 'WARNING! This will remove all custom networks not used by at least one container.'))) return 0;
    const r = await ctx.client.json<{ NetworksDeleted: string[] | null }>('POST', '/networks/prune', { query: { filters: filtersJson(p.list('filter')) } });
    const del = r.NetworksDeleted ?? [];
    if (del.length) ctx.out.write(`Deleted Networks:\n${del.map((n) => `${n}\n`).join('')}`);
    return 0;
  },
};

type PortMap = Record<string, { HostIp: string; HostPort: string }[] | null>;

/** `port CONTAINER [PRIVATE_PORT[/PROTO]]`, as docker prints it. */
export const port: Command = {
  name: 'port',
  usage: 'port CONTAINER [PRIVATE_PORT[/PROTO]]',
  description: 'List port mappings or a specific mapping for the container',
  flags: [],
  args: { min: 1, max: 2 },
  async run(ctx: Ctx, p) {
    const [name, want] = p.args;
    const c = await ctx.client.json<{ Name: string; NetworkSettings: { Ports: PortMap | null } }>('GET', `/containers/${enc(name!)}/json`);
    const ports = c.NetworkSettings.Ports ?? {};
    const hostOf = (b: { HostIp: string; HostPort: string }) => `${b.HostIp.includes(':') ? `[${b.HostIp}]` : b.HostIp}:${b.HostPort}`;
    if (want) {
      const key = want.includes('/') ? want : `${want}/tcp`;
      const bindings = ports[key];
      if (!bindings?.length) throw new StatusError(`Error: No public port '${key}' published for ${c.Name.replace(/^\//, '')}`, 1);
      for (const b of bindings) ctx.out.write(`${hostOf(b)}\n`);
      return 0;
    }
    const keys = Object.keys(ports).sort((a, b) => parseInt(a) - parseInt(b) || a.localeCompare(b));
    for (const k of keys) for (const b of ports[k] ?? []) ctx.out.write(`${k} -> ${hostOf(b)}\n`);
    return 0;
  },
};
