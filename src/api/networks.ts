/** /networks routes, and the NetworkSettings / Ports parts of container inspect and list, in Docker's shapes. */
import { InvalidParameter, NotFound } from '../errors.js';
import type { ContainerService } from '../container/service.js';
import type { Container } from '../container/types.js';
import { isRunning } from '../container/state.js';
import type { CreateNetworkRequest, EndpointSettingsIn, NetworkService } from '../network/service.js';
import { portMap } from '../network/ports.js';
import type { NetworkRecord } from '../network/types.js';
import { type Router } from './server.js';
import { parseFilters, matchLabels, untilTime } from './filters.js';

function networkJSON(net: NetworkService, n: NetworkRecord, withContainers: boolean, names: (id: string) => string) {
  const containers: Record<string, unknown> = {};
  if (withContainers) {
    for (const a of net.endpointsOn(n.id)) {
      const e = a.live!;
      containers[a.containerId] = { Name: names(a.containerId), EndpointID: e.id, MacAddress: e.mac, IPv4Address: `${e.ip}/${e.prefixLen}`, IPv6Address: '' };
    }
  }
  const bridged = n.driver === 'bridge';
  return {
    Name: n.name,
    Id: n.id,
    Created: n.builtin && !bridged ? '0001-01-01T00:00:00Z' : n.created,
    Scope: 'local',
    Driver: n.driver,
    EnableIPv4: bridged,
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: bridged && !n.builtin ? {} : null, Config: n.ipam.map((p) => ({ ...p })) },
    Internal: n.internal,
    Attachable: n.attachable,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    ...(withContainers ? { Containers: containers } : {}),
    Options: n.options,
    Labels: n.labels,
  };
}

/** NetworkSettings of container inspect, as dockerd fills it. */
export function containerNetworkSettings(net: NetworkService, c: Container) {
  const views = net.view(c);
  const sandbox = net.sandboxOf(c.id);
  const mode = c.hostConfig.NetworkMode === 'default' ? 'bridge' : c.hostConfig.NetworkMode;
  const networks: Record<string, unknown> = {};
  for (const { network: n, attachment: a } of views) {
    const e = a.live;
    networks[n.name] = {
      IPAMConfig: a.request.ipv4 ? { IPv4Address: a.request.ipv4 } : null,
      Links: a.request.links.length ? a.request.links : null,
      Aliases: a.request.aliases.length ? a.request.aliases : null,
      MacAddress: e?.mac ?? '',
      DriverOpts: null,
      GwPriority: 0,
      NetworkID: n.id,
      EndpointID: e?.id ?? '',
      Gateway: e?.gateway ?? '',
      IPAddress: e?.ip ?? '',
      IPPrefixLen: e?.prefixLen ?? 0,
      IPv6Gateway: '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      DNSNames: e && !n.builtin ? e.names : null,
    };
  }
  if (!views.length && !mode.startsWith('container:')) {
    networks[mode] = {
      IPAMConfig: null, Links: null, Aliases: null, MacAddress: '', DriverOpts: null, GwPriority: 0,
      NetworkID: net.find(mode)?.id ?? '', EndpointID: '', Gateway: '', IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '',
      GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, DNSNames: null,
    };
  }
  // The deprecated top-level fields mirror the default bridge, as in dockerd.
  const onBridge = views.find((v) => v.network.builtin && v.attachment.live)?.attachment.live;
  return {
    Bridge: '',
    SandboxID: sandbox ? c.id : '',
    SandboxKey: sandbox?.netns ?? '',
    Ports: sandbox && isRunning(c.state) ? portMap(sandbox.ports, c.config.ExposedPorts) : {},
    HairpinMode: false,
    LinkLocalIPv6Address: '',
    LinkLocalIPv6PrefixLen: 0,
    SecondaryIPAddresses: null,
    SecondaryIPv6Addresses: null,
    EndpointID: onBridge?.id ?? '',
    Gateway: onBridge?.gateway ?? '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    IPAddress: onBridge?.ip ?? '',
    IPPrefixLen: onBridge?.prefixLen ?? 0,
    IPv6Gateway: '',
    MacAddress: onBridge?.mac ?? '',
    Networks: networks,
  };
}

/** The Ports of GET /containers/json: published ports with their host side, exposed ones without. */
export function containerPorts(net: NetworkService, c: Container): { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[] {
  const sandbox = isRunning(c.state) ? net.sandboxOf(c.id) : undefined;
  const out: { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[] = [];
  for (const [key, bindings] of Object.entries(portMap(sandbox?.ports ?? [], c.config.ExposedPorts))) {
    const [port, proto] = key.split('/');
    if (!bindings) out.push({ PrivatePort: Number(port), Type: proto! });
    else for (const b of bindings) out.push({ IP: b.HostIp, PrivatePort: Number(port), PublicPort: Number(b.HostPort), Type: proto! });
  }
  return out;
}

/** docker ps --filter network=NAME|ID, publish=PORT[/PROTO], expose=PORT[/PROTO] (container ports, ranges too). */
export function containerMatches(net: NetworkService, c: Container, f: Map<string, string[]>): boolean {
  const nets = f.get('network');
  if (nets && !net.view(c).some(({ network: n }) => nets.some((v) => n.name === v || n.id.startsWith(v)))) return false;
  const portsOf = (published: boolean) => containerPorts(net, c).filter((p) => !published || p.PublicPort !== undefined)
    .map((p) => [p.PrivatePort, p.Type] as const);
  const test = (key: string, published: boolean) => {
    const want = f.get(key);
    if (!want) return true;
    const have = portsOf(published);
    return want.some((w) => {
      const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/.exec(w);
      if (!m) throw new InvalidParameter(`invalid filter '${key}=${w}'`);
      const lo = Number(m[1]);
      const hi = Number(m[2] ?? m[1]);
      return have.some(([port, proto]) => port >= lo && port <= hi && (!m[3] || m[3] === proto));
    });
  };
  return test('publish', true) && test('expose', false);
}

const listFilters = ['dangling', 'driver', 'id', 'label', 'name', 'scope', 'type'];

function matches(net: NetworkService, n: NetworkRecord, f: Map<string, string[]>): boolean {
  const any = (key: string, test: (v: string) => boolean) => !f.has(key) || f.get(key)!.some(test);
  return any('driver', (v) => n.driver === v) &&
    any('id', (v) => n.id.startsWith(v)) &&
    any('name', (v) => n.name.includes(v)) &&
    any('scope', (v) => v === 'local') &&
    any('type', (v) => {
      if (v !== 'custom' && v !== 'builtin') throw new InvalidParameter(`invalid filter: 'type'='${v}'`);
      return v === 'builtin' ? n.builtin : !n.builtin;
    }) &&
    any('dangling', (v) => {
      const dangling = !n.builtin && net.store.attachmentsOn(n.id).length === 0;
      if (!['true', '1', 'false', '0'].includes(v)) throw new InvalidParameter(`invalid filter 'dangling=${v}'`);
      return (v === 'true' || v === '1') === dangling;
    }) &&
    matchLabels(n.labels, f.get('label') ?? []);
}

export function networkRoutes(router: Router, net: NetworkService, containers: ContainerService): void {
  const nameOf = (id: string) => {
    try {
      return containers.get(id).name;
    } catch {
      return '';
    }
  };

  router.get('/networks', (ctx) => {
    const f = parseFilters(ctx.query.get('filters'), listFilters);
    return net.list().filter((n) => matches(net, n, f)).map((n) => networkJSON(net, n, false, nameOf));
  });

  router.get('/networks/{id}', (ctx) => networkJSON(net, net.get(ctx.params.id), true, nameOf));

  router.post('/networks/create', async (ctx) => {
    const body = await ctx.json<CreateNetworkRequest>();
    for (const key of ['Ingress', 'ConfigOnly'] as const) if (body[key]) throw new InvalidParameter(`${key} networks are not supported`);
    if (body.Scope && body.Scope !== 'local') throw new InvalidParameter(`scope ${String(body.Scope)} is not supported: berth has local networks only`);
    if ((body.ConfigFrom as { Network?: string } | undefined)?.Network) throw new InvalidParameter('--config-from is not supported');
    if (body.EnableIPv4 === false) throw new InvalidParameter('networks without IPv4 are not supported');
    return net.create(body);
  });

  router.delete('/networks/{id}', async (ctx) => {
    await net.remove(ctx.params.id);
  });

  router.post('/networks/prune', async (ctx) => {
    const f = parseFilters(ctx.query.get('filters'), ['until', 'label', 'label!']);
    const until = (f.get('until') ?? []).map(untilTime);
    const deleted = await net.prune((n) =>
      until.every((t) => Date.parse(n.created) < t) &&
      matchLabels(n.labels, f.get('label') ?? []) &&
      !(f.get('label!') ?? []).some((l) => matchLabels(n.labels, [l])));
    return { NetworksDeleted: deleted };
  });

  router.post('/networks/{id}/connect', async (ctx) => {
    const body = await ctx.json<{ Container?: string; EndpointConfig?: EndpointSettingsIn }>();
    if (!body.Container) throw new InvalidParameter('a container name or id is required');
    net.get(ctx.params.id);
    await containers.exclusive(body.Container, (c) => net.connect(c, ctx.params.id, body.EndpointConfig, isRunning(c.state)));
  });

  router.post('/networks/{id}/disconnect', async (ctx) => {
    const body = await ctx.json<{ Container?: string; Force?: boolean }>();
    if (!body.Container) throw new InvalidParameter('a container name or id is required');
    net.get(ctx.params.id);
    try {
      containers.get(body.Container);
    } catch (err) {
      if (err instanceof NotFound) throw new NotFound(`No such container: ${body.Container}`);
      throw err;
    }
    await containers.exclusive(body.Container, (c) => net.disconnect(c, ctx.params.id));
  });
}
