/**
 * Networking at start: the network namespace the container joins and the /etc/hostname, /etc/hosts
 * and /etc/resolv.conf that go with it, written into the container's own dir (never shared) and
 * bind-mounted. "host" shares the host's stack; "none" gets a new namespace with loopback only;
 * "container:<id>" joins the other container's namespace and files; every other mode is a bridge
 * network of the network service, which builds the netns (veths, addresses, ports) and the files'
 * text, and undoes it all at teardown. The files are a few hundred bytes each: written synchronously,
 * as a thread-pool round trip per file costs more than the write on a loaded machine.
 */
import fs from 'node:fs';
import { Conflict, NotFound } from '../../errors.js';
import type { OciMount } from '../../runtime/index.js';
import type { Container } from '../types.js';
import { LOCAL_HOSTS, hostsFile, resolvConf } from '../../network/files.js';
import { isRunning } from '../state.js';
import type { Provider } from './index.js';

/** The network service as the start seam uses it (src/network/service.ts). */
export interface NetworkBackend {
  /** False for host, none and container:<id> (no stack of the service's). */
  bridged(c: Container): boolean;
  /** runtimeNetns: everything but the netns, which the runtime makes and adoptNetns() then equips. */
  setup(c: Container, opts?: { runtimeNetns?: boolean }): Promise<{ netns: string; hosts: string; resolv: string }>;
  adoptNetns(c: Container, nsPath: string): Promise<void>;
  teardown(c: Container): Promise<void>;
  sandboxOf(containerId: string): { netns: string } | undefined;
  /** At create: checks the networks asked for (unknown network, bad --ip …); record() stores them once the container exists. */
  prepare(c: Container, networkingConfig: unknown): { record(): void; warnings: string[] };
  /** The default bridge's gateway, what --add-host NAME:host-gateway means. */
  hostGateway(): string;
  /** At remove: the container's memberships go. */
  forget(containerId: string): void;
}

function bind(destination: string, source: string): OciMount {
  return { destination, source, type: 'bind', options: ['rbind', 'rprivate'] };
}

function files(c: Container): OciMount[] {
  return [bind('/etc/hostname', c.hostnamePath), bind('/etc/hosts', c.hostsPath), bind('/etc/resolv.conf', c.resolvConfPath)];
}

/** The host's resolv.conf without its loopback resolvers, which the container's own netns cannot reach. */
function isolatedResolv(): string {
  const hostResolv = readOr('/etc/resolv.conf', '');
  return hostResolv.split('\n').filter((l) => !/^\s*nameserver\s+(127\.|::1)/.test(l)).join('\n');
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

/**
 * ownUserns: containers with a user namespace of their own (userns-remap). Their netns must belong
 * to that user namespace (or the remapped root can neither mount /sys nor be joined by exec), so
 * runc makes it and it gets its veths between `runc create` and `runc start`.
 */
export function networkProvider(backend?: NetworkBackend, find?: (idOrName: string) => Container | undefined, ownUserns: (c: Container) => boolean = () => false): Provider {
  return {
    name: 'network',
    async setup({ container: c }) {
      const mode = c.hostConfig.NetworkMode;
      fs.writeFileSync(c.hostnamePath, c.config.Hostname + '\n');
      if (mode.startsWith('container:')) {
        const ref = mode.slice('container:'.length);
        const other = find?.(ref);
        if (!other) throw new NotFound(`No such container: ${ref}`);
        if (!isRunning(other.state) || other.state.Status === 'restarting') throw new Conflict(`cannot join network namespace of a non running container: container ${other.id} is ${other.state.Status}`);
        const netns = backend?.sandboxOf(other.id)?.netns ?? `/proc/${other.state.Pid}/ns/net`;
        return {
          network: { mode: 'netns', path: netns },
          mounts: [bind('/etc/hostname', c.hostnamePath), bind('/etc/hosts', other.hostsPath), bind('/etc/resolv.conf', other.resolvConfPath)],
        };
      }
      if (backend && backend.bridged(c)) {
        const stack = await backend.setup(c, { runtimeNetns: ownUserns(c) });
        try {
          fs.writeFileSync(c.hostsPath, stack.hosts);
          fs.writeFileSync(c.resolvConfPath, stack.resolv);
        } catch (err) {
          await backend.teardown(c);
          throw err;
        }
        return { network: ownUserns(c) ? { mode: 'none' } : { mode: 'netns', path: stack.netns }, mounts: files(c) };
      }
      const host = mode === 'host';
      const h = c.hostConfig;
      let hosts = host ? readOr('/etc/hosts', '127.0.0.1\tlocalhost\n') : LOCAL_HOSTS;
      if (h.ExtraHosts?.length) hosts = hostsFile({ extraHosts: h.ExtraHosts, hostGateway: backend?.hostGateway() ?? '', entries: [], base: hosts });
      fs.writeFileSync(c.hostsPath, hosts);
      const custom = h.Dns?.length || h.DnsSearch?.length || h.DnsOptions?.length;
      const resolv = custom ? resolvConf({ embedded: null, dns: h.Dns ?? [], search: h.DnsSearch ?? [], options: h.DnsOptions ?? [] })
        : host ? readOr('/etc/resolv.conf', '') : isolatedResolv();
      fs.writeFileSync(c.resolvConfPath, resolv);
      return { network: { mode: host ? 'host' : 'none' }, mounts: files(c) };
    },
    async created({ container: c }, pid) {
      if (backend && backend.bridged(c) && ownUserns(c)) await backend.adoptNetns(c, `/proc/${pid}/ns/net`);
    },
    async teardown({ container: c }) {
      if (backend && backend.bridged(c)) await backend.teardown(c);
    },
  };
}
