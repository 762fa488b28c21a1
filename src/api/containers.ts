/** /containers routes: Docker's JSON shapes on top of the container service. */
import { InvalidParameter } from '../errors.js';
import { humanDuration } from '../util/units.js';
import type { ContainerService, WaitCondition } from '../container/service.js';
import type { Container } from '../container/types.js';
import { ZERO_TIME } from '../container/types.js';
import { isRunning } from '../container/state.js';
import { HEALTH_FILTER_VALUES, healthFilterValue, healthSuffix } from '../container/health.js';
import { type Router } from './server.js';
import { parseFilters, matchLabels, untilOf } from './filters.js';
import { frame, writeChunk, MULTIPLEXED, RAW } from './streams.js';
import { dockerMountPoint } from '../volume/spec.js';

function bool(q: URLSearchParams, key: string): boolean {
  const v = q.get(key);
  return v !== null && v !== '' && v !== '0' && v !== 'false';
}

function intParam(q: URLSearchParams, key: string): number | undefined {
  const v = q.get(key);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidParameter(`invalid value for ${key}: ${v}`);
  return n;
}

/** Docker's State.String(): "Up 3 minutes", "Exited (0) 2 seconds ago", "Created". */
export function statusString(c: Container): string {
  const s = c.state;
  switch (s.Status) {
    case 'running':
      return `Up ${humanDuration(Date.now() - Date.parse(s.StartedAt))}${healthSuffix(c)}`;
    case 'paused':
      return `Up ${humanDuration(Date.now() - Date.parse(s.StartedAt))} (Paused)`;
    case 'restarting':
      return `Restarting (${s.ExitCode}) ${humanDuration(Date.now() - Date.parse(s.FinishedAt))} ago`;
    case 'removing':
      return 'Removal In Progress';
    case 'dead':
      return 'Dead';
    case 'created':
      return 'Created';
    case 'exited':
      if (s.FinishedAt === ZERO_TIME) return '';
      return `Exited (${s.ExitCode}) ${humanDuration(Date.now() - Date.parse(s.FinishedAt))} ago`;
  }
}

/** The rest of Docker's HostConfig, as dockerd reports it for options berth leaves at their defaults. */
const HOST_CONFIG_DEFAULTS = {
  Binds: null, ContainerIDFile: '', LogConfig: {Type: '', Config: {}}, NetworkMode: 'default', PortBindings: {},
  RestartPolicy: {Name: 'no', MaximumRetryCount: 0}, AutoRemove: false, VolumeDriver: '', VolumesFrom: null,
  ConsoleSize: [0, 0], CapAdd: null, CapDrop: null, CgroupnsMode: '', Dns: [], DnsOptions: [], DnsSearch: [],
  ExtraHosts: null, GroupAdd: null, IpcMode: '', Cgroup: '', Links: null, OomScoreAdj: 0, PidMode: '',
  Privileged: false, PublishAllPorts: false, ReadonlyRootfs: false, SecurityOpt: null, UTSMode: '', UsernsMode: '',
  ShmSize: 0, Isolation: '', CpuShares: 0, Memory: 0, NanoCpus: 0, CgroupParent: '', BlkioWeight: 0,
  BlkioWeightDevice: [], BlkioDeviceReadBps: [], BlkioDeviceWriteBps: [], BlkioDeviceReadIOps: [],
  BlkioDeviceWriteIOps: [], CpuPeriod: 0, CpuQuota: 0, CpuRealtimePeriod: 0, CpuRealtimeRuntime: 0, CpusetCpus: '',
  CpusetMems: '', Devices: [], DeviceCgroupRules: null, DeviceRequests: null, MemoryReservation: 0, MemorySwap: 0,
  MemorySwappiness: -1, OomKillDisable: false, PidsLimit: 0, Ulimits: [], CpuCount: 0, CpuPercent: 0,
  IOMaximumIOps: 0, IOMaximumBandwidth: 0, MaskedPaths: null, ReadonlyPaths: null,
};

/** Like dockerd: path and args joined by spaces, unquoted (the CLI quotes the whole string). */
function commandLine(c: Container): string {
  return [c.path, ...c.args].join(' ');
}

/** How a container's networks show (src/api/networks.ts when the daemon has a network service). */
export interface NetworkView {
  settings(c: Container): unknown;
  ports(c: Container): unknown[];
  /** The network, publish and expose filters of GET /containers/json. */
  matches(c: Container, filters: Map<string, string[]>): boolean;
}

function networkSettings(c: Container, view?: NetworkView) {
  if (view) return view.settings(c) as ReturnType<typeof loopbackSettings>;
  return loopbackSettings(c);
}

function loopbackSettings(c: Container) {
  const mode = c.hostConfig.NetworkMode === 'default' ? 'bridge' : c.hostConfig.NetworkMode;
  return {
    Bridge: '',
    SandboxID: '',
    SandboxKey: '',
    Ports: {},
    HairpinMode: false,
    LinkLocalIPv6Address: '',
    LinkLocalIPv6PrefixLen: 0,
    SecondaryIPAddresses: null,
    SecondaryIPv6Addresses: null,
    EndpointID: '',
    Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    IPAddress: '',
    IPPrefixLen: 0,
    IPv6Gateway: '',
    MacAddress: '',
    Networks: {
      [mode]: {
        IPAMConfig: null, Links: null, Aliases: null, MacAddress: '', DriverOpts: null, GwPriority: 0,
        NetworkID: '', EndpointID: '', Gateway: '', IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '',
        GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, DNSNames: null,
      },
    },
  };
}

export function inspectJSON(svc: ContainerService, c: Container, storageDriver: string, execIds: string[], sizeRw?: number, graphData: Record<string, string> = {}, view?: NetworkView) {
  const s = c.state;
  return {
    Id: c.id,
    Created: c.created,
    Path: c.path,
    Args: c.args,
    State: {
      Status: s.Status,
      Running: isRunning(s),
      Paused: s.Status === 'paused',
      Restarting: s.Status === 'restarting',
      OOMKilled: s.OOMKilled,
      Dead: s.Status === 'dead',
      Pid: s.Pid,
      ExitCode: s.ExitCode,
      Error: s.Error,
      StartedAt: s.StartedAt,
      FinishedAt: s.FinishedAt,
      ...(s.Health ? { Health: s.Health } : {}),
    },
    Image: c.imageId,
    ResolvConfPath: c.resolvConfPath,
    HostnamePath: c.hostnamePath,
    HostsPath: c.hostsPath,
    LogPath: c.logPath,
    Name: `/${c.name}`,
    RestartCount: c.restartCount,
    Driver: storageDriver,
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: execIds.length ? execIds : null,
    HostConfig: { ...HOST_CONFIG_DEFAULTS, ...c.hostConfig },
    GraphDriver: { Name: storageDriver, Data: { ...graphData, MergedDir: svc.rootfs(c) } },
    ...(sizeRw !== undefined ? { SizeRw: sizeRw, SizeRootFs: sizeRw + (svc.image(c)?.size ?? 0) } : {}),
    Mounts: (c.mounts ?? []).map(dockerMountPoint),
    Config: c.config,
    NetworkSettings: networkSettings(c, view),
  };
}

export function listJSON(svc: ContainerService, c: Container, sizeRw?: number, view?: NetworkView) {
  const net = networkSettings(c, view);
  return {
    Id: c.id,
    Names: [`/${c.name}`],
    Image: c.config.Image,
    ImageID: c.imageId,
    Command: commandLine(c),
    Created: Math.floor(Date.parse(c.created) / 1000),
    Ports: view?.ports(c) ?? [],
    Labels: c.config.Labels ?? {},
    State: c.state.Status,
    Status: statusString(c),
    HostConfig: { NetworkMode: c.hostConfig.NetworkMode },
    NetworkSettings: { Networks: net.Networks },
    Mounts: (c.mounts ?? []).map(dockerMountPoint),
    ...(sizeRw !== undefined ? { SizeRw: sizeRw, SizeRootFs: sizeRw + (svc.image(c)?.size ?? 0) } : {}),
  };
}

const listFilters = ['status', 'name', 'label', 'id', 'ancestor', 'exited', 'before', 'since', 'health', 'volume', 'network', 'publish', 'expose'];
const statuses = ['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'];

export function containerRoutes(router: Router, svc: ContainerService, opts: { storageDriver: string; graphData?: (containerId: string) => Record<string, string>; imageIdOf: (ref: string) => string | null; execIdsOf: (containerId: string) => string[]; network?: NetworkView }): void {
  router.get('/containers/json', async (ctx) => {
    const q = ctx.query;
    const filters = parseFilters(q.get('filters'), listFilters);
    for (const st of filters.get('status') ?? []) {
      if (!statuses.includes(st)) throw new InvalidParameter(`invalid filter 'status=${st}'`);
    }
    for (const h of filters.get('health') ?? []) {
      if (!HEALTH_FILTER_VALUES.includes(h)) throw new InvalidParameter(`Unrecognised filter value for health: ${h}`);
    }
    const all = bool(q, 'all');
    const limit = intParam(q, 'limit') ?? -1;
    let list = svc.list();
    if (!all && limit <= 0 && !filters.has('status') && !filters.has('exited')) list = list.filter((c) => isRunning(c.state));
    const ancestors = (filters.get('ancestor') ?? []).map((a) => opts.imageIdOf(a) ?? `<unknown:${a}>`);
    const beforeAt = (filters.get('before') ?? []).map((b) => svc.get(b).created);
    const sinceAt = (filters.get('since') ?? []).map((b) => svc.get(b).created);
    list = list.filter((c) => {
      const f = (key: string, test: (v: string) => boolean) => !filters.has(key) || filters.get(key)!.some(test);
      return (
        f('status', (v) => c.state.Status === v) &&
        f('name', (v) => new RegExp(v.replace(/^\//, '')).test(c.name)) &&
        f('id', (v) => c.id.startsWith(v)) &&
        f('health', (v) => healthFilterValue(c) === v) &&
        f('exited', (v) => c.state.Status === 'exited' && c.state.ExitCode === Number(v)) &&
        f('volume', (v) => (c.mounts ?? []).some((m) => m.Name === v || m.Destination === v)) &&
        (!filters.has('ancestor') || ancestors.includes(c.imageId)) &&
        beforeAt.every((t) => c.created < t) &&
        sinceAt.every((t) => c.created > t) &&
        matchLabels(c.config.Labels, filters.get('label') ?? []) &&
        (!opts.network || opts.network.matches(c, filters))
      );
    });
    if (limit > 0) list = list.slice(0, limit);
    const withSize = bool(q, 'size');
    return Promise.all(list.map(async (c) => listJSON(svc, c, withSize ? await svc.sizeRw(c) : undefined, opts.network)));
  });

  router.post('/containers/create', async (ctx) => {
    const body = await ctx.json();
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidParameter('invalid JSON: container config must be an object');
    return svc.create(body, ctx.query.get('name'));
  });

  router.get('/containers/{id}/json', async (ctx) => {
    const c = svc.get(ctx.params.id);
    return inspectJSON(svc, c, opts.storageDriver, opts.execIdsOf(c.id), bool(ctx.query, 'size') ? await svc.sizeRw(c) : undefined, opts.graphData?.(c.id), opts.network);
  });

  router.post('/containers/{id}/start', async (ctx) => {
    await svc.start(ctx.params.id);
  });

  router.post('/containers/{id}/stop', async (ctx) => {
    await svc.stop(ctx.params.id, { timeout: intParam(ctx.query, 't'), signal: ctx.query.get('signal') ?? undefined });
  });

  router.post('/containers/{id}/restart', async (ctx) => {
    await svc.restart(ctx.params.id, { timeout: intParam(ctx.query, 't'), signal: ctx.query.get('signal') ?? undefined });
  });

  router.post('/containers/{id}/kill', async (ctx) => {
    await svc.kill(ctx.params.id, ctx.query.get('signal') || 'SIGKILL');
  });

  router.post('/containers/{id}/wait', async (ctx) => {
    const condition = (ctx.query.get('condition') || 'not-running') as WaitCondition;
    if (!['not-running', 'next-exit', 'removed'].includes(condition)) throw new InvalidParameter(`invalid condition: "${condition}"`);
    svc.get(ctx.params.id);
    const result = svc.wait(ctx.params.id, condition);
    // Headers go out at once: the docker CLI waits for them before it starts the container.
    ctx.res.writeHead(200, { 'Content-Type': 'application/json' });
    ctx.res.flushHeaders();
    try {
      ctx.res.end(JSON.stringify(await result) + '\n');
    } catch (err) {
      ctx.res.end(JSON.stringify({ StatusCode: -1, Error: { Message: (err as Error).message } }) + '\n');
    }
  });

  router.delete('/containers/{id}', async (ctx) => {
    await svc.remove(ctx.params.id, { force: bool(ctx.query, 'force'), volumes: bool(ctx.query, 'v') });
  });

  router.post('/containers/prune', async (ctx) => {
    const filters = parseFilters(ctx.query.get('filters'), ['until', 'label', 'label!']);
    const until = untilOf(filters);
    return svc.prune((c) => Date.parse(c.created) < until && matchLabels(c.config.Labels, filters.get('label') ?? []) && !(filters.get('label!') ?? []).some((l) => matchLabels(c.config.Labels, [l])));
  });

  router.post('/containers/{id}/resize', async (ctx) => {
    const c = svc.get(ctx.params.id);
    await svc.streams.resize(c, intParam(ctx.query, 'h') ?? 24, intParam(ctx.query, 'w') ?? 80);
    return '';
  });

  router.get('/containers/{id}/logs', async (ctx) => {
    const q = ctx.query;
    const c = svc.get(ctx.params.id);
    const stdout = bool(q, 'stdout');
    const stderr = bool(q, 'stderr');
    if (!stdout && !stderr) throw new InvalidParameter('Bad parameters: you must choose at least one stream');
    const tailRaw = q.get('tail');
    const tail = tailRaw === null || tailRaw === '' || tailRaw === 'all' ? -1 : Number(tailRaw);
    const since = parseTime(q.get('since'));
    const until = parseTime(q.get('until'));
    const timestamps = bool(q, 'timestamps');
    const abort = new AbortController();
    ctx.res.on('close', () => abort.abort());
    ctx.res.writeHead(200, { 'Content-Type': c.config.Tty ? RAW : MULTIPLEXED });
    ctx.res.flushHeaders();
    for await (const entry of svc.streams.logs(c, { follow: bool(q, 'follow'), since, until, tail, signal: abort.signal })) {
      if ((entry.stream === 'stdout' && !stdout) || (entry.stream === 'stderr' && !stderr)) continue;
      const data = timestamps ? Buffer.concat([Buffer.from(toRFC3339Nano(entry.time) + ' '), entry.data]) : entry.data;
      if (!(await writeChunk(ctx.res, c.config.Tty ? data : frame(entry.stream, data)))) break;
    }
    ctx.res.end();
  });

  router.post('/containers/{id}/pause', async (ctx) => {
    await svc.pause(ctx.params.id);
  });

  router.post('/containers/{id}/unpause', async (ctx) => {
    await svc.unpause(ctx.params.id);
  });

  router.post('/containers/{id}/rename', async (ctx) => {
    await svc.rename(ctx.params.id, ctx.query.get('name') ?? '');
  });

  router.post('/containers/{id}/update', async (ctx) => {
    const body = await ctx.json();
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidParameter('invalid JSON: update config must be an object');
    return svc.update(ctx.params.id, body as Record<string, unknown>);
  });
}

function parseTime(v: string | null): number | undefined {
  if (v === null || v === '' || v === '0') return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new InvalidParameter(`invalid time value: ${v}`);
  return t / 1000;
}

/** conmon writes "2026-11-29T09:41:45.136031607+00:00"; docker prints "...Z". */
function toRFC3339Nano(t: string): string {
  return t.replace(/\+00:00$/, 'Z');
}
