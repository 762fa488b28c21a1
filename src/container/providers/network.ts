/**
 * Networking at start: the network namespace the container joins and the /etc/hostname, /etc/hosts
 * and /etc/resolv.conf that go with it, written into the container's own dir (never shared) and
 * bind-mounted. Today: "host" shares the host's stack; every other mode gets a new namespace with
 * loopback only. Bridge networks will plug in here.
 */
import fsp from 'node:fs/promises';
import type { OciMount } from '../../runtime/index.js';
import type { Provider } from './index.js';

const LOCAL_HOSTS = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n';

function bind(destination: string, source: string): OciMount {
  return { destination, source, type: 'bind', options: ['rbind', 'rprivate'] };
}

export function networkProvider(): Provider {
  return {
    name: 'network',
    async setup({ container: c }) {
      const host = c.hostConfig.NetworkMode === 'host';
      const hosts = host ? await fsp.readFile('/etc/hosts', 'utf8').catch(() => '127.0.0.1\tlocalhost\n') : LOCAL_HOSTS;
      const hostResolv = await fsp.readFile('/etc/resolv.conf', 'utf8').catch(() => '');
      // A loopback resolver of the host is unreachable from the container's own netns.
      const resolv = host ? hostResolv : hostResolv.split('\n').filter((l) => !/^\s*nameserver\s+(127\.|::1)/.test(l)).join('\n');
      await fsp.writeFile(c.hostnamePath, c.config.Hostname + '\n');
      await fsp.writeFile(c.hostsPath, hosts);
      await fsp.writeFile(c.resolvConfPath, resolv);
      return {
        network: { mode: host ? 'host' : 'none' },
        mounts: [bind('/etc/hostname', c.hostnamePath), bind('/etc/hosts', c.hostsPath), bind('/etc/resolv.conf', c.resolvConfPath)],
      };
    },
    async teardown() {},
  };
}
