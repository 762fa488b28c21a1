/** _ping, version and info (GET /events is in events.ts). */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import type { ContainerService } from '../container/service.js';
import type { ImageStore } from '../image/index.js';
import type { DaemonConfig } from '../daemon/config.js';
import type { EventBus } from '../events/index.js';
import { API_VERSION, MIN_API_VERSION, type Router } from './server.js';

export const BERTH_VERSION = '0.1.0';

export interface SystemDeps {
  config: DaemonConfig;
  containers: ContainerService;
  images: ImageStore;
  events: EventBus;
  daemonId: string;
  /** The snapshotter, for info's Driver and DriverStatus. */
  storage: { driver: string; status(): [string, string][] };
  cgroupVersion: '1' | '2';
  runtimePath: string;
}

function osName(): string {
  try {
    const m = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(fs.readFileSync('/etc/os-release', 'utf8'));
    if (m) return m[1];
  } catch {}
  return 'Linux';
}

export function systemRoutes(router: Router, d: SystemDeps): void {
  const ping = (ctx: { res: import('node:http').ServerResponse }) => {
    ctx.res.setHeader('Cache-Control', 'no-cache, no-store, must-revalidate');
    ctx.res.setHeader('Pragma', 'no-cache');
    ctx.res.setHeader('Builder-Version', '1');
    return 'OK';
  };
  router.get('/_ping', ping);
  router.head('/_ping', ping);

  const version = () => ({
    Platform: { Name: 'berth' },
    Components: [
      {
        Name: 'Engine',
        Version: BERTH_VERSION,
        Details: { ApiVersion: API_VERSION, MinAPIVersion: MIN_API_VERSION, Os: 'linux', Arch: 'amd64', KernelVersion: os.release(), NodeVersion: process.version },
      },
      { Name: 'runc', Version: runtimeVersion(d.runtimePath), Details: { GitCommit: '' } },
    ],
    Version: BERTH_VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: '',
    GoVersion: process.version,
    Os: 'linux',
    Arch: os.arch() === 'x64' ? 'amd64' : os.arch(),
    KernelVersion: os.release(),
    BuildTime: '',
  });
  router.get('/version', version);

  router.get('/info', () => {
    const list = d.containers.list();
    const count = (s: string) => list.filter((c) => c.state.Status === s).length;
    const c = d.config;
    return {
      ID: d.daemonId,
      Containers: list.length,
      ContainersRunning: count('running'),
      ContainersPaused: count('paused'),
      ContainersStopped: list.length - count('running') - count('paused'),
      Images: d.images.list().length,
      Driver: d.storage.driver,
      DriverStatus: d.storage.status(),
      Plugins: { Volume: ['local'], Network: ['host', 'null'], Authorization: null, Log: ['k8s-file'] },
      MemoryLimit: true,
      SwapLimit: fs.existsSync('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes'),
      CpuCfsPeriod: true,
      CpuCfsQuota: true,
      CPUShares: true,
      CPUSet: true,
      PidsLimit: true,
      IPv4Forwarding: true,
      Debug: c.debug,
      NFd: fs.readdirSync('/proc/self/fd').length,
      OomKillDisable: d.cgroupVersion === '1',
      NGoroutines: 0,
      SystemTime: new Date().toISOString(),
      LoggingDriver: 'k8s-file',
      CgroupDriver: 'cgroupfs',
      CgroupVersion: d.cgroupVersion,
      NEventsListener: d.events.listenerCount,
      KernelVersion: os.release(),
      OperatingSystem: osName(),
      OSVersion: '',
      OSType: 'linux',
      Architecture: os.machine(),
      IndexServerAddress: 'https://index.docker.io/v1/',
      RegistryConfig: {
        IndexConfigs: Object.fromEntries(c.insecureRegistries.filter((r) => !r.includes('/')).map((r) => [r, { Name: r, Mirrors: [], Secure: false, Official: false }])),
        InsecureRegistryCIDRs: ['127.0.0.0/8', '::1/128', ...c.insecureRegistries.filter((r) => r.includes('/'))],
        Mirrors: c.registryMirrors,
      },
      NCPU: os.cpus().length,
      MemTotal: os.totalmem(),
      DockerRootDir: c.dataRoot,
      Name: os.hostname(),
      Labels: [],
      ExperimentalBuild: false,
      ServerVersion: BERTH_VERSION,
      Runtimes: { runc: { path: d.runtimePath }, ...c.runtimes },
      DefaultRuntime: c.defaultRuntime,
      Swarm: { LocalNodeState: 'inactive', ControlAvailable: false, NodeID: '', Error: '', RemoteManagers: null },
      LiveRestoreEnabled: true,
      Isolation: '',
      InitBinary: '',
      ContainerdCommit: { ID: '' },
      RuncCommit: { ID: '' },
      InitCommit: { ID: '' },
      SecurityOptions: ['name=cgroupns'],
      Warnings: null,
    };
  });
}

let cachedRuntimeVersion: string | undefined;
function runtimeVersion(runtimePath: string): string {
  if (cachedRuntimeVersion === undefined) {
    try {
      const out = execFileSync(runtimePath, ['--version'], { encoding: 'utf8' });
      cachedRuntimeVersion = /version\s+(\S+)/.exec(out)?.[1] ?? 'unknown';
    } catch {
      cachedRuntimeVersion = 'unknown';
    }
  }
  return cachedRuntimeVersion;
}
