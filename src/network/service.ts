/**
 * The network service: networks (the default `bridge`, `host`, `none` and user-defined bridges),
 * containers' memberships of them, and the stack each running container gets.
 *
 *   register(c)   at create: the container's networks (NetworkMode + EndpointsConfig), checked
 *   setup(c)      at start: leases saved first (unique per network), the sandbox record, then the
 *                 netns with one veth per network (link.ts), published ports (proxy + DNAT), and
 *                 the /etc/hosts and resolv.conf text; a failure undoes what was done
 *   teardown(c)   at exit / remove / failed start / recovery: proxies closed, veths and netns
 *                 gone, leases released, rules rewritten; idempotent, from the stored records only
 *   restore()     at daemon start: rules rewritten, proxies and DNS servers reopened for what still
 *                 runs, leftovers of what does not released
 * Records (store.ts) are saved before each side effect, so a killed daemon's leftovers can be found.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Conflict, Forbidden, InvalidParameter, NotFound, SystemError, errorMessage } from '../errors.js';
import type { EventBus } from '../events/index.js';
import { log } from '../log.js';
import { type DnsServer, hostNameservers, serveDns } from './dns.js';
import { hostsFile, parseExtraHost, resolvConf } from './files.js';
import { type Cidr, contains, formatCidr, hostRoutes, intToIp, ipToInt, macFromIp, nextFree, overlaps, parseCidr, pickSubnet } from './ipam.js';
import { Iptables, type BridgeNet, type Forward } from './iptables.js';
import { type VethSpec, addVeth, adoptSandbox, createSandbox, deleteLink, destroySandbox, ensureBridge } from './link.js';
import { deleteLinkByName } from './netlink.js';
import { type PortBindings, checkPortBindings, wantedPorts } from './ports.js';
import { type Proxy, openProxy } from './proxy.js';
import { NetworkStore } from './store.js';
import type { Attachment, Endpoint, EndpointRequest, NetworkRecord, PortMapping, Sandbox } from './types.js';
import type { Database } from 'better-sqlite3';

export interface NetworkConfig {
  execRoot: string;
  /** The default bridge's device. */
  bridge: string;
  /** The default bridge's address and prefix ("" = pick from the pools). */
  bip: string;
  mtu: number;
  icc: boolean;
  iptables: boolean;
  ipForward: boolean;
  /** Published ports relayed by berthd (true), or DNAT alone, loopback included (false). */
  userlandProxy: boolean;
  pools: { base: string; size: number }[];
}

/** What the service reads of a container record (container/types.ts fits it). */
export interface NetContainer {
  id: string;
  name: string;
  config: { Hostname: string; Domainname: string; ExposedPorts?: Record<string, object>; [k: string]: unknown };
  hostConfig: {
    NetworkMode: string;
    PortBindings?: PortBindings;
    PublishAllPorts?: boolean;
    Dns?: string[] | null;
    DnsSearch?: string[] | null;
    DnsOptions?: string[] | null;
    ExtraHosts?: string[] | null;
    Links?: string[] | null;
  };
}

/** Docker's EndpointSettings, the parts a request may set. */
export interface EndpointSettingsIn {
  IPAMConfig?: { IPv4Address?: string; IPv6Address?: string } | null;
  Aliases?: string[] | null;
  Links?: string[] | null;
  MacAddress?: string;
  [k: string]: unknown;
}

export interface CreateNetworkRequest {
  Name?: string;
  Driver?: string;
  Internal?: boolean;
  Attachable?: boolean;
  EnableIPv6?: boolean;
  Labels?: Record<string, string>;
  Options?: Record<string, string>;
  IPAM?: { Driver?: string; Config?: { Subnet?: string; Gateway?: string; IPRange?: string }[] | null; Options?: Record<string, string> | null } | null;
  CheckDuplicate?: boolean;
  [k: string]: unknown;
}

export interface StackFiles {
  netns: string;
  hosts: string;
  resolv: string;
}

const BUILTIN = ['bridge', 'host', 'none'];
const DOCKER0_DEFAULT = '172.17.0.0/16';
const MAX_IFNAME = 15;

function randomId(): string {
  return crypto.randomBytes(32).toString('hex');
}

function isBridgeMode(mode: string): boolean {
  return mode === 'default' || mode === 'bridge';
}

function shortId(id: string): string {
  return id.slice(0, 12);
}

function cidrOf(n: NetworkRecord): Cidr {
  return parseCidr(n.ipam[0]!.Subnet);
}

export class NetworkService {
  readonly store: NetworkStore;
  private readonly iptables: Iptables | null;
  /** Open proxies per container. */
  private readonly proxies = new Map<string, Proxy[]>();
  private readonly dns = new Map<string, DnsServer>();
  private defaultId = '';

  constructor(db: Database, private readonly events: EventBus, private readonly cfg: NetworkConfig,
    /** Container name or id → its id and name, for --link and network connect. */
    private readonly lookup: (idOrName: string) => { id: string; name: string } | null) {
    this.store = new NetworkStore(db);
    this.iptables = cfg.iptables ? new Iptables(`BERTH-${cfg.bridge}`, !cfg.userlandProxy) : null;
  }

  // ---- daemon start and stop ---------------------------------------------------------------------

  /** The built-in networks and their bridge, before any container is recovered. */
  async init(): Promise<void> {
    if (this.cfg.bridge.length > MAX_IFNAME) throw new InvalidParameter(`bridge name ${this.cfg.bridge} is longer than ${MAX_IFNAME} characters`);
    const byName = new Map(this.store.networks().map((n) => [n.name, n]));
    for (const name of ['host', 'none']) {
      if (!byName.has(name)) this.store.saveNetwork(this.record(name, name === 'host' ? 'host' : 'null', { builtin: true }));
    }
    let bridge = byName.get('bridge');
    const want = this.defaultPool(bridge);
    if (!bridge) bridge = this.record('bridge', 'bridge', { builtin: true });
    bridge = { ...bridge, bridge: this.cfg.bridge, ipam: [want], mtu: this.cfg.mtu, icc: this.cfg.icc, options: this.defaultOptions() };
    this.store.saveNetwork(bridge);
    this.defaultId = bridge.id;
    if (this.cfg.ipForward) {
      try {
        if (fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim() !== '1') fs.writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
      } catch (err) {
        log.warn('could not enable IP forwarding', { error: errorMessage(err) });
      }
    }
    for (const n of this.store.networks()) if (n.driver === 'bridge') await this.bringUp(n);
    await this.syncRules();
  }

  private defaultOptions(): Record<string, string> {
    return {
      'com.docker.network.bridge.default_bridge': 'true',
      'com.docker.network.bridge.enable_icc': String(this.cfg.icc),
      'com.docker.network.bridge.enable_ip_masquerade': 'true',
      'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0',
      'com.docker.network.bridge.name': this.cfg.bridge,
      'com.docker.network.driver.mtu': String(this.cfg.mtu),
    };
  }

  /** The default bridge's subnet: bip, else what it had, else a pool subnet nothing on the host uses. */
  private defaultPool(existing: NetworkRecord | undefined): { Subnet: string; Gateway: string } {
    if (this.cfg.bip) {
      const m = /^([^/]+)\/(\d+)$/.exec(this.cfg.bip);
      const gw = m ? ipToInt(m[1]!) : null;
      if (!m || gw === null) throw new InvalidParameter(`invalid bip: ${this.cfg.bip}`);
      const c = parseCidr(this.cfg.bip);
      return { Subnet: formatCidr(c), Gateway: m[1]! };
    }
    if (existing?.ipam[0]) return { Subnet: existing.ipam[0].Subnet, Gateway: existing.ipam[0].Gateway };
    // 172.17.0.0/16 is docker0's default even before a dockerd has made it.
    const taken = [...hostRoutes(), parseCidr(DOCKER0_DEFAULT), ...this.store.networks().filter((n) => n.ipam[0]).map(cidrOf)];
    const c = pickSubnet(this.cfg.pools, taken);
    if (!c) throw new SystemError('could not find an available, non-overlapping IPv4 address pool for the default bridge');
    return { Subnet: formatCidr(c), Gateway: intToIp(c.base + 1) };
  }

  private record(name: string, driver: NetworkRecord['driver'], extra: Partial<NetworkRecord> = {}): NetworkRecord {
    return {
      id: randomId(), name, driver, created: new Date().toISOString(), internal: false, attachable: false, labels: {},
      options: {}, ipam: [], bridge: '', mtu: this.cfg.mtu, icc: true, builtin: false, ...extra,
    };
  }

  private async bringUp(n: NetworkRecord): Promise<void> {
    const pool = n.ipam[0]!;
    ensureBridge(n.bridge, `${pool.Gateway}/${parseCidr(pool.Subnet).bits}`, n.mtu);
    // Without the proxy, loopback traffic is DNATed onto the bridge, which the kernel refuses unless told.
    if (!this.cfg.userlandProxy) fs.writeFileSync(`/proc/sys/net/ipv4/conf/${n.bridge}/route_localnet`, '1');
    if (!n.builtin && !this.dns.has(n.id)) {
      try {
        this.dns.set(n.id, await serveDns(pool.Gateway, (name) => this.resolve(n.id, name), () => this.upstream(n.id)));
      } catch (err) {
        log.warn('embedded DNS server could not start', { network: n.name, error: errorMessage(err) });
      }
    }
  }

  /**
   * After the containers are recovered: what still runs gets its proxies back; sandboxes and leases
   * of containers that do not run (or no longer exist) are released.
   */
  async restore(running: (containerId: string) => boolean): Promise<void> {
    for (const s of this.store.sandboxes()) {
      // A container a restart policy has just started has its proxies already.
      if (this.proxies.has(s.containerId)) continue;
      if (running(s.containerId)) await this.openPorts(s).catch((err) => log.warn('reopening published ports failed', { id: s.containerId, error: errorMessage(err) }));
      else await this.teardownId(s.containerId);
    }
    for (const a of this.store.allAttachments()) {
      if (a.live && !this.store.sandbox(a.containerId)) this.store.saveAttachment({ ...a, live: null });
      if (!this.lookup(a.containerId)) this.store.deleteAttachment(a.containerId, a.networkId);
    }
    await this.syncRules();
  }

  /** Daemon stop: proxies and DNS servers close; berth's chains go (containers keep running). */
  async close(): Promise<void> {
    for (const list of this.proxies.values()) for (const p of list) await p.close().catch(() => {});
    this.proxies.clear();
    for (const d of this.dns.values()) await d.close().catch(() => {});
    this.dns.clear();
    await this.iptables?.remove().catch((err) => log.warn('removing iptables chains failed', { error: errorMessage(err) }));
    // Bridges no running container is plugged into go too (init brings every one back); the others stay with their containers.
    const inUse = new Set(this.store.sandboxes().flatMap((s) => this.store.attachmentsOf(s.containerId).filter((a) => a.live).map((a) => a.networkId)));
    for (const n of this.store.networks()) {
      if (n.driver === 'bridge' && !inUse.has(n.id)) await deleteLink(n.bridge).catch((err) => log.warn('removing a bridge failed', { bridge: n.bridge, error: errorMessage(err) }));
    }
  }

  private async syncRules(): Promise<void> {
    if (!this.iptables) return;
    const nets: BridgeNet[] = this.store.networks().filter((n) => n.driver === 'bridge')
      .map((n) => ({ bridge: n.bridge, subnet: n.ipam[0]!.Subnet, internal: n.internal, icc: n.icc, masquerade: n.options['com.docker.network.bridge.enable_ip_masquerade'] !== 'false' }));
    const forwards: Forward[] = [];
    for (const s of this.store.sandboxes()) {
      const primary = this.store.attachmentsOf(s.containerId).find((a) => a.live);
      const n = primary && this.store.network(primary.networkId);
      if (!n) continue;
      for (const p of s.ports) forwards.push({ proto: p.proto, hostIp: p.hostIp, hostPort: p.hostPort, containerIp: s.target, containerPort: p.containerPort, bridge: n.bridge });
    }
    await this.iptables.sync(nets, forwards);
  }

  // ---- networks ----------------------------------------------------------------------------------

  list(): NetworkRecord[] {
    return this.store.networks().sort((a, b) => (a.created < b.created ? -1 : 1));
  }

  /** Docker's lookup: full id, exact name, then unique id prefix. */
  find(idOrName: string): NetworkRecord | undefined {
    const all = this.store.networks();
    const exact = all.find((n) => n.id === idOrName) ?? all.find((n) => n.name === idOrName);
    if (exact) return exact;
    const hits = all.filter((n) => n.id.startsWith(idOrName));
    if (hits.length > 1) throw new NotFound(`network ${idOrName} is ambiguous (${hits.length} matches found based on ID prefix)`);
    return hits[0];
  }

  get(idOrName: string): NetworkRecord {
    const n = this.find(idOrName);
    if (!n) throw new NotFound(`network ${idOrName} not found`);
    return n;
  }

  /** Live endpoints of a network, by container id. */
  endpointsOn(networkId: string): Attachment[] {
    return this.store.attachmentsOn(networkId).filter((a) => a.live);
  }

  async create(req: CreateNetworkRequest): Promise<{ Id: string; Warning: string }> {
    const name = req.Name ?? '';
    if (!name) throw new InvalidParameter('network name is required');
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) throw new InvalidParameter(`invalid network name "${name}"`);
    const driver = req.Driver || 'bridge';
    if (driver === 'host' || driver === 'null') throw new Forbidden(`only one instance of "${driver}" network is allowed`);
    if (driver !== 'bridge') throw new NotFound(`plugin "${driver}" not found`);
    if (this.find(name)?.name === name || BUILTIN.includes(name)) throw new Conflict(`network with name ${name} already exists`);
    if (req.EnableIPv6) throw new InvalidParameter('IPv6 networks (--ipv6) are not supported yet');
    if (req.IPAM?.Driver && req.IPAM.Driver !== 'default') throw new NotFound(`plugin "${req.IPAM.Driver}" not found`);
    const pools = req.IPAM?.Config ?? [];
    if (req.IPAM?.Options && Object.keys(req.IPAM.Options).length) throw new InvalidParameter('IPAM driver options (--ipam-opt) are not supported yet');
    if (pools.some((p) => Object.keys((p as { AuxiliaryAddresses?: object }).AuxiliaryAddresses ?? {}).length)) throw new InvalidParameter('auxiliary addresses (--aux-address) are not supported yet');
    if (pools.length > 1) throw new InvalidParameter('more than one IPAM pool per network is not supported yet');
    const opts = { ...(req.Options ?? {}) };
    const known = ['com.docker.network.bridge.name', 'com.docker.network.driver.mtu', 'com.docker.network.bridge.enable_icc', 'com.docker.network.bridge.enable_ip_masquerade'];
    for (const k of Object.keys(opts)) if (!known.includes(k)) throw new InvalidParameter(`network option ${k} is not supported yet`);

    const id = randomId();
    const others = this.store.networks().filter((n) => n.ipam[0]).map(cidrOf);
    let subnet: Cidr;
    const p = pools[0] ?? {};
    if (p.Subnet) {
      subnet = parseCidr(p.Subnet, true);
      if (others.some((o) => overlaps(o, subnet))) throw new Forbidden('invalid pool request: Pool overlaps with other one on this address space');
    } else {
      if (p.Gateway || p.IPRange) throw new InvalidParameter('a gateway or ip-range needs a subnet (--subnet)');
      const picked = pickSubnet(this.cfg.pools, [...hostRoutes(), ...others]);
      if (!picked) throw new Forbidden('all predefined address pools have been fully subnetted');
      subnet = picked;
    }
    let gateway = intToIp(subnet.base + 1);
    if (p.Gateway) {
      const g = ipToInt(p.Gateway);
      if (g === null) throw new InvalidParameter(`invalid gateway address ${p.Gateway}`);
      if (!contains(subnet, g)) throw new Forbidden(`invalid pool request: gateway ${p.Gateway} is not in subnet ${formatCidr(subnet)}`);
      gateway = p.Gateway;
    }
    if (p.IPRange) {
      const r = parseCidr(p.IPRange, true);
      if (!contains(subnet, r.base) || r.bits < subnet.bits) throw new InvalidParameter(`invalid ip-range ${p.IPRange}: not in subnet ${formatCidr(subnet)}`);
    }
    const bridge = opts['com.docker.network.bridge.name'] || `br-${shortId(id)}`;
    if (bridge.length > MAX_IFNAME) throw new InvalidParameter(`bridge name ${bridge} is longer than ${MAX_IFNAME} characters`);
    if (this.store.networks().some((n) => n.bridge === bridge)) throw new Conflict(`bridge name ${bridge} is already in use`);
    const mtu = opts['com.docker.network.driver.mtu'] ? Number(opts['com.docker.network.driver.mtu']) : this.cfg.mtu;
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new InvalidParameter(`invalid MTU ${opts['com.docker.network.driver.mtu']}`);
    const n = this.record(name, 'bridge', {
      id, internal: req.Internal === true, attachable: req.Attachable === true, labels: req.Labels ?? {}, options: opts, bridge, mtu,
      icc: opts['com.docker.network.bridge.enable_icc'] !== 'false',
      ipam: [{ Subnet: formatCidr(subnet), Gateway: gateway, ...(p.IPRange ? { IPRange: p.IPRange } : {}) }],
    });
    this.store.saveNetwork(n);
    try {
      await this.bringUp(n);
      await this.syncRules();
    } catch (err) {
      await this.destroyNetwork(n);
      throw err;
    }
    this.events.publish('network', 'create', n.id, { name: n.name, type: n.driver });
    return { Id: n.id, Warning: '' };
  }

  private async destroyNetwork(n: NetworkRecord): Promise<void> {
    await this.dns.get(n.id)?.close().catch(() => {});
    this.dns.delete(n.id);
    this.store.deleteNetwork(n.id);
    for (const a of this.store.attachmentsOn(n.id)) this.store.deleteAttachment(a.containerId, n.id);
    // Side by side: the rules name the bridge only by name, and its deletion waits ~40 ms for the kernel.
    await Promise.all([
      this.syncRules().catch((err) => log.warn('rewriting rules failed', { error: errorMessage(err) })),
      deleteLink(n.bridge).catch((err) => log.warn('deleting a bridge failed', { bridge: n.bridge, error: errorMessage(err) })),
    ]);
  }

  async remove(idOrName: string): Promise<void> {
    const n = this.get(idOrName);
    if (n.builtin) throw new Forbidden(`${n.name} is a pre-defined network and cannot be removed`);
    const active = this.endpointsOn(n.id);
    if (active.length) throw new Forbidden(`error while removing network: network ${n.name} id ${n.id} has active endpoints`);
    await this.destroyNetwork(n);
    this.events.publish('network', 'destroy', n.id, { name: n.name, type: n.driver });
  }

  async prune(filter: (n: NetworkRecord) => boolean): Promise<string[]> {
    const deleted: string[] = [];
    for (const n of this.list()) {
      if (n.builtin || !filter(n) || this.store.attachmentsOn(n.id).length) continue;
      await this.destroyNetwork(n);
      this.events.publish('network', 'destroy', n.id, { name: n.name, type: n.driver });
      deleted.push(n.name);
    }
    return deleted;
  }

  // ---- memberships -------------------------------------------------------------------------------

  private request(n: NetworkRecord, s: EndpointSettingsIn | undefined): EndpointRequest {
    const ipam = (s?.IPAMConfig ?? {}) as { LinkLocalIPs?: unknown[] | null };
    if (ipam.LinkLocalIPs?.length) throw new InvalidParameter('link-local addresses (--link-local-ip) are not supported yet');
    if (s?.DriverOpts && Object.keys(s.DriverOpts as object).length) throw new InvalidParameter('endpoint driver options (--driver-opt) are not supported yet');
    if (s?.GwPriority) throw new InvalidParameter('gateway priority (gw-priority) is not supported yet');
    const ipv4 = s?.IPAMConfig?.IPv4Address ?? '';
    const aliases = s?.Aliases ?? [];
    if (s?.IPAMConfig?.IPv6Address) throw new InvalidParameter('IPv6 addresses (--ip6) are not supported yet');
    if (ipv4) {
      const ip = ipToInt(ipv4);
      if (ip === null) throw new InvalidParameter(`invalid IPv4 address: ${ipv4}`);
      if (n.builtin || !n.ipam[0]) throw new InvalidParameter('user specified IP address is supported on user defined networks only');
      if (!contains(cidrOf(n), ip)) throw new InvalidParameter(`no configured subnet or ip-range contain the IP address ${ipv4}`);
    }
    if (aliases.length && n.builtin) throw new InvalidParameter('network-scoped alias is supported only for containers in user defined networks');
    const mac = s?.MacAddress ?? '';
    if (mac && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) throw new InvalidParameter(`invalid MAC address: ${mac}`);
    return { aliases, ipv4, mac: mac.toLowerCase(), links: s?.Links ?? [] };
  }

  /** The networks a new container asks for, checked; nothing is stored. */
  plan(c: NetContainer, endpoints: Record<string, EndpointSettingsIn>, macAddress = ''): { network: NetworkRecord; request: EndpointRequest }[] {
    const mode = c.hostConfig.NetworkMode;
    checkPortBindings(c.hostConfig.PortBindings);
    for (const h of c.hostConfig.ExtraHosts ?? []) parseExtraHost(h);
    if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) {
      if (mode.startsWith('container:') && !mode.slice('container:'.length)) throw new InvalidParameter('container mode needs a container name or id');
      if (mode !== 'host' && Object.keys(c.hostConfig.PortBindings ?? {}).length) throw new InvalidParameter('conflicting options: port publishing and the container type network mode');
      if (mode.startsWith('container:') && (c.hostConfig.Dns?.length || c.hostConfig.ExtraHosts?.length)) throw new InvalidParameter('conflicting options: dns and the network mode');
      return [];
    }
    const primary = isBridgeMode(mode) ? this.get('bridge') : this.get(mode);
    if (primary.driver !== 'bridge') return [];
    const first = this.request(primary, endpoints[primary.name] ?? endpoints[mode] ?? endpoints[primary.id]);
    const out = [{ network: primary, request: { ...first, links: first.links.length ? first.links : c.hostConfig.Links ?? [] } }];
    if (macAddress) out[0]!.request.mac = this.request(primary, { MacAddress: macAddress }).mac;
    for (const [key, s] of Object.entries(endpoints)) {
      if (key === mode || (isBridgeMode(key) && isBridgeMode(mode))) continue;
      const n = this.get(key);
      if (n.id === primary.id) continue;
      if (n.driver !== 'bridge') throw new InvalidParameter(`container cannot be connected to network ${n.name} and ${primary.name}`);
      out.push({ network: n, request: this.request(n, s) });
    }
    return out;
  }

  /** At create: the plan checked now, recorded by record() once the container exists. */
  prepare(c: NetContainer, networkingConfig: unknown): { record(): void; warnings: string[] } {
    const nc = (networkingConfig ?? {}) as { EndpointsConfig?: Record<string, EndpointSettingsIn> | null };
    const mac = typeof c.config.MacAddress === 'string' ? c.config.MacAddress : '';
    let plan: ReturnType<NetworkService['plan']>;
    try {
      plan = this.plan(c, nc.EndpointsConfig ?? {}, mac);
    } catch (err) {
      // dockerd finds the network only at start; a 404 from create would make the docker CLI pull the image.
      if (err instanceof NotFound) throw new InvalidParameter(err.message);
      throw err;
    }
    // dockerd's warning, word for word: the docker CLI prints it.
    const warnings = c.hostConfig.NetworkMode === 'host' && Object.keys(c.hostConfig.PortBindings ?? {}).length ? ['Published ports are discarded when using host network mode'] : [];
    return { record: () => this.register(c, plan), warnings };
  }

  /** At create, once the container record exists. */
  register(c: NetContainer, plan: { network: NetworkRecord; request: EndpointRequest }[]): void {
    for (const p of plan) this.store.saveAttachment({ containerId: c.id, networkId: p.network.id, request: p.request, live: null });
  }

  /** At remove: the container's memberships go too. */
  forget(containerId: string): void {
    this.store.deleteAttachmentsOf(containerId);
  }

  private allocate(n: NetworkRecord, a: Attachment, c: NetContainer, ifname: string): Endpoint {
    const subnet = cidrOf(n);
    const pool = n.ipam[0]!;
    let ip: string;
    if (a.request.ipv4) {
      ip = a.request.ipv4;
      if (this.store.leases(n.id).includes(ip) || ip === pool.Gateway) throw new Conflict(`Address already in use: ${ip} on network ${n.name}`);
    } else {
      const used = new Set([...this.store.leases(n.id), pool.Gateway].map((s) => ipToInt(s)!));
      for (const other of this.store.attachmentsOn(n.id)) if (other.request.ipv4 && other.containerId !== c.id) used.add(ipToInt(other.request.ipv4)!);
      const got = nextFree(subnet, pool.IPRange ? parseCidr(pool.IPRange) : subnet, used);
      if (got === null) throw new SystemError(`no available IPv4 addresses on network ${n.name}`);
      ip = intToIp(got);
    }
    // Random, not derived from the ids: the veth of the container's last run may still be on its way out.
    const veth = `veth${crypto.randomBytes(6).toString('hex').slice(0, MAX_IFNAME - 4)}`;
    return { id: randomId(), ip, prefixLen: subnet.bits, gateway: pool.Gateway, mac: a.request.mac || macFromIp(ip), ifname, veth, names: this.dnsNames(c, a), upstream: c.hostConfig.Dns ?? [] };
  }

  private dnsNames(c: NetContainer, a: Attachment): string[] {
    return [c.name, shortId(c.id), ...a.request.aliases];
  }

  /** Leases the address (a row unique per network) before anything touches the host. */
  private lease(a: Attachment, live: Endpoint): Attachment {
    const next = { ...a, live };
    try {
      this.store.saveAttachment(next);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new Conflict(`Address already in use: ${live.ip}`);
      throw err;
    }
    return next;
  }

  private vethSpec(n: NetworkRecord, e: Endpoint, withRoute: boolean): VethSpec {
    return { ifname: e.ifname, veth: e.veth, bridge: n.bridge, mac: e.mac, ip: e.ip, prefixLen: e.prefixLen, gateway: withRoute && !n.internal ? e.gateway : null, mtu: n.mtu };
  }

  private netnsPath(containerId: string): string {
    return path.join(this.cfg.execRoot, 'netns', containerId);
  }

  /** Does the container get a stack of berth's (a bridge network), or host/none/container mode? */
  bridged(c: NetContainer): boolean {
    const mode = c.hostConfig.NetworkMode;
    return !(mode === 'host' || mode === 'none' || mode.startsWith('container:'));
  }

  /**
   * With `runtimeNetns`, the netns is left to the runtime (made inside the container's user
   * namespace) and gets its veths from adoptNetns() once it exists; all else is done here.
   */
  async setup(c: NetContainer, opts: { runtimeNetns?: boolean } = {}): Promise<StackFiles> {
    let attachments = this.store.attachmentsOf(c.id);
    if (!attachments.length) {
      this.register(c, this.plan(c, {}));
      attachments = this.store.attachmentsOf(c.id);
    }
    const live: { n: NetworkRecord; a: Attachment }[] = [];
    try {
      for (const a of attachments) {
        const n = this.store.network(a.networkId);
        if (!n) throw new NotFound(`network ${a.networkId} not found`);
        // A bridge deleted behind the daemon's back (`ip link del`) is made again, as at daemon start.
        if (n.driver === 'bridge' && !fs.existsSync(`/sys/class/net/${n.bridge}`)) await this.bringUp(n);
        live.push({ n, a: this.lease(a, this.allocate(n, a, c, `eth${live.length}`)) });
      }
      const first = live[0]!;
      const sandbox: Sandbox = { containerId: c.id, netns: this.netnsPath(c.id), target: first.a.live!.ip, ports: [] };
      this.store.saveSandbox(sandbox);
      if (!opts.runtimeNetns) endpointFailure(c, live[0]!.n, () => createSandbox(sandbox.netns, live.map(({ n, a }, i) => this.vethSpec(n, a.live!, i === 0))));
      const wanted = wantedPorts(c.hostConfig.PortBindings, c.hostConfig.PublishAllPorts === true, c.config.ExposedPorts);
      if (wanted.length) {
        sandbox.ports = await this.bindPorts(c, sandbox, wanted);
        this.store.saveSandbox(sandbox);
        await this.syncRules();
      }
      for (const { n } of live) this.events.publish('network', 'connect', n.id, { container: c.id, name: n.name, type: n.driver });
      return { netns: sandbox.netns, hosts: this.hostsFor(c, live.map((l) => l.a)), resolv: this.resolvFor(c, first.n) };
    } catch (err) {
      await this.teardownId(c.id);
      throw err;
    }
  }

  /**
   * The netns at `nsPath` (the runtime's, of a container set up with runtimeNetns) bound to the
   * sandbox's file, so it outlives the daemon as any other, and given the container's veths. A
   * failure leaves the rest to teardown().
   */
  async adoptNetns(c: NetContainer, nsPath: string): Promise<void> {
    const s = this.store.sandbox(c.id);
    if (!s) throw new SystemError(`no network sandbox for container ${c.id}`);
    const live = this.store.attachmentsOf(c.id).filter((a) => a.live).sort((a, b) => Number(a.live!.ifname.slice(3)) - Number(b.live!.ifname.slice(3)));
    const nets = live.map((a) => {
      const n = this.store.network(a.networkId);
      if (!n) throw new NotFound(`network ${a.networkId} not found`);
      return n;
    });
    endpointFailure(c, nets[0]!, () => adoptSandbox(s.netns, nsPath, live.map((a, i) => this.vethSpec(nets[i]!, a.live!, i === 0))));
  }

  /** Opens each wanted port (a range takes its first free port); records what was bound. */
  private async bindPorts(c: NetContainer, s: Sandbox, wanted: ReturnType<typeof wantedPorts>): Promise<PortMapping[]> {
    const out: PortMapping[] = [];
    const opened: Proxy[] = [];
    this.proxies.set(c.id, opened);
    for (const w of wanted) {
      const [lo, hi] = w.hostPorts;
      let lastErr: unknown;
      let bound: Proxy | null = null;
      for (let port = lo; port <= hi && !bound; port++) {
        if (w.proto === 'sctp') throw new InvalidParameter('publishing sctp ports is not supported yet');
        try {
          bound = await openProxy({ proto: w.proto, relay: this.cfg.userlandProxy, hostIp: w.hostIp, hostPort: port, containerIp: s.target, containerPort: w.containerPort });
        } catch (err) {
          lastErr = err;
        }
      }
      if (!bound) throw new SystemError(`driver failed programming external connectivity on endpoint ${c.name} (${shortId(c.id)}): ${errorMessage(lastErr)}`);
      opened.push(bound);
      out.push({ proto: w.proto, containerPort: w.containerPort, hostIp: w.hostIp, hostPort: bound.port });
    }
    return out;
  }

  /** After a daemon restart: the proxies of a running container again, on the ports it had. */
  private async openPorts(s: Sandbox): Promise<void> {
    const opened: Proxy[] = [];
    this.proxies.set(s.containerId, opened);
    for (const p of s.ports) {
      if (p.proto === 'sctp') continue;
      opened.push(await openProxy({ proto: p.proto, relay: this.cfg.userlandProxy, hostIp: p.hostIp, hostPort: p.hostPort, containerIp: s.target, containerPort: p.containerPort }));
    }
  }

  teardown(c: NetContainer): Promise<void> {
    return this.teardownId(c.id, c);
  }

  private async teardownId(containerId: string, c?: NetContainer): Promise<void> {
    for (const p of this.proxies.get(containerId) ?? []) await p.close().catch(() => {});
    this.proxies.delete(containerId);
    const s = this.store.sandbox(containerId);
    const attachments = this.store.attachmentsOf(containerId);
    const veths = attachments.flatMap((a) => (a.live ? [a.live.veth] : []));
    if (s) destroySandbox(s.netns);
    else for (const v of veths) deleteLinkByName(v);
    for (const a of attachments) {
      if (!a.live) continue;
      this.store.saveAttachment({ ...a, live: null });
      const n = this.store.network(a.networkId);
      if (n && c) this.events.publish('network', 'disconnect', n.id, { container: containerId, name: n.name, type: n.driver });
    }
    if (s) {
      this.store.deleteSandbox(containerId);
      if (s.ports.length) await this.syncRules().catch((err) => log.warn('rewriting rules failed', { error: errorMessage(err) }));
    }
  }

  /** network connect: a new membership; a running container gets the veth at once. */
  async connect(c: NetContainer, idOrName: string, settings: EndpointSettingsIn | undefined, running: boolean): Promise<void> {
    const n = this.get(idOrName);
    if (!this.bridged(c)) throw new Forbidden(`container sharing network namespace with another container or host cannot be connected to any other network`);
    if (n.driver !== 'bridge') throw new Forbidden(`container cannot be disconnected from host network or connected to host network`);
    const existing = this.store.attachmentsOf(c.id);
    if (existing.some((a) => a.networkId === n.id)) throw new Forbidden(`endpoint with name ${c.name} already exists in network ${n.name}`);
    const a: Attachment = { containerId: c.id, networkId: n.id, request: this.request(n, settings), live: null };
    const s = running ? this.store.sandbox(c.id) : undefined;
    if (!s) {
      this.store.saveAttachment(a);
      return;
    }
    const ifname = `eth${Math.max(-1, ...existing.filter((x) => x.live).map((x) => Number(x.live!.ifname.slice(3)))) + 1}`;
    const leased = this.lease(a, this.allocate(n, a, c, ifname));
    try {
      addVeth(s.netns, this.vethSpec(n, leased.live!, false));
    } catch (err) {
      this.store.deleteAttachment(c.id, n.id);
      throw err;
    }
    this.events.publish('network', 'connect', n.id, { container: c.id, name: n.name, type: n.driver });
  }

  async disconnect(c: NetContainer, idOrName: string): Promise<void> {
    const n = this.get(idOrName);
    const a = this.store.attachmentsOf(c.id).find((x) => x.networkId === n.id);
    if (!a) throw new Forbidden(`container ${c.id} is not connected to network ${n.name}`);
    if (a.live) deleteLinkByName(a.live.veth);
    this.store.deleteAttachment(c.id, n.id);
    if (a.live) this.events.publish('network', 'disconnect', n.id, { container: c.id, name: n.name, type: n.driver });
  }

  // ---- the container's files and DNS -------------------------------------------------------------

  private hostsFor(c: NetContainer, live: Attachment[]): string {
    // dockerd's: the full name, then its first label if it has several (-h a.b gives "a.b a", like -h a --domainname b).
    const fqdn = c.config.Domainname ? `${c.config.Hostname}.${c.config.Domainname}` : c.config.Hostname;
    const dot = fqdn.indexOf('.');
    const names = dot > 0 ? [fqdn, fqdn.slice(0, dot)] : [fqdn];
    const entries: [string, ...string[]][] = [];
    // A link names another container of the same network: on the default bridge the legacy way,
    // on a user network as an alias only the linking container sees (both through /etc/hosts).
    for (const a of live) {
      for (const link of a.request.links) {
        const [target, alias] = link.replace(/^\//, '').split(':');
        const other = this.lookup(target!);
        const ep = other && this.store.attachmentsOf(other.id).find((x) => x.networkId === a.networkId && x.live);
        if (!other || !ep) throw new InvalidParameter(`could not get container for ${target}`);
        const aliasName = (alias ?? target!).split('/').pop()!;
        entries.push([ep.live!.ip, ...new Set([aliasName, shortId(other.id), other.name])]);
      }
    }
    for (const a of live) entries.push([a.live!.ip, ...names]);
    return hostsFile({ extraHosts: c.hostConfig.ExtraHosts ?? [], hostGateway: this.hostGateway(), entries });
  }

  private resolvFor(c: NetContainer, primary: NetworkRecord): string {
    const h = c.hostConfig;
    return resolvConf({ embedded: primary.builtin ? null : primary.ipam[0]!.Gateway, dns: h.Dns ?? [], search: h.DnsSearch ?? [], options: h.DnsOptions ?? [] });
  }

  /** The addresses of a name of the network's (container name, short id, alias), or null. */
  private resolve(networkId: string, name: string): string[] | null {
    const q = name.replace(/\.$/, '').toLowerCase();
    const ips: string[] = [];
    for (const a of this.endpointsOn(networkId)) {
      const names = a.live!.names;
      if (names.some((n) => n.toLowerCase() === q) || a.containerId === q) ips.push(a.live!.ip);
    }
    return ips.length ? ips : null;
  }

  /** Where the embedded DNS sends other names: the containers' --dns servers, else the host's. */
  private upstream(networkId: string): string[] {
    for (const a of this.endpointsOn(networkId)) {
      if (a.live!.upstream.length) return a.live!.upstream;
    }
    return hostNameservers();
  }

  hostGateway(): string {
    return this.store.network(this.defaultId)?.ipam[0]?.Gateway ?? '';
  }

  /** What inspect shows of a container's networks. */
  view(c: NetContainer): { network: NetworkRecord; attachment: Attachment }[] {
    const out: { network: NetworkRecord; attachment: Attachment }[] = [];
    for (const a of this.store.attachmentsOf(c.id)) {
      const n = this.store.network(a.networkId);
      if (n) out.push({ network: n, attachment: a });
    }
    return out;
  }

  sandboxOf(containerId: string): Sandbox | undefined {
    return this.store.sandbox(containerId);
  }
}

/** A stack that could not be made, in dockerd's words: "failed to create endpoint <container> on network <name>: …". */
function endpointFailure(c: NetContainer, n: NetworkRecord, make: () => void): void {
  try {
    make();
  } catch (err) {
    throw new SystemError(`failed to create endpoint ${c.name.replace(/^\//, '')} on network ${n.name}: ${errorMessage(err)}`);
  }
}
