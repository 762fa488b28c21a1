/**
 * berthd: wires the stores, the runtime and the container service behind the
 * Engine API on a unix socket. Start-up recovers whatever a killed daemon left
 * (half-written blobs and layers, exits that happened while it was away, removals
 * half done) before it accepts a request.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type http from 'node:http';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { errorMessage } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { log, setLevel } from '../log.js';
import { loadConfig, type DaemonConfig } from './config.js';
import { openContentStore } from '../content/index.js';
import { driversHolding, graphDriverData, openSnapshotter, removeExtracts } from '../storage/index.js';
import { chooseDriver } from '../storage/registry.js';
import { openImageStore, publishImageEvents } from '../image/index.js';
import { EventBus } from '../events/index.js';
import { createRuntime, createExecRuntime, cgroupParentCleanup, cgroupVersion } from '../runtime/index.js';
import { ContainerStore } from '../container/store.js';
import { ContainerService } from '../container/service.js';
import { daemonIsolation } from '../container/isolation.js';
import { Router, createApiServer } from '../api/server.js';
import { systemRoutes, BERTH_VERSION } from '../api/system.js';
import { eventRoutes } from '../api/events.js';
import { containerRoutes } from '../api/containers.js';
import { statsRoutes } from '../api/stats.js';
import { execRoutes } from '../api/exec.js';
import { ExecService } from '../container/exec.js';
import { HealthMonitor } from '../container/health.js';
import { imageRoutes } from '../api/images.js';
import { commitRoutes } from '../api/commit.js';
import { buildRoutes } from '../api/build.js';
import { BuildCache } from '../build/cache.js';
import { archiveRoutes } from '../api/archive.js';
import { saveLoadRoutes } from '../api/saveload.js';
import { dfRoutes } from '../api/df.js';
import { ContainerFiles } from '../container/archive.js';
import { isRemapped, toContainer, toHost } from '../container/userns.js';
import { createRegistryClient } from '../registry/client/index.js';
import { trimWhenQuiet, tuneMalloc } from './memory.js';
import { VolumeService } from '../volume/index.js';
import { volumeRoutes } from '../api/volumes.js';
import { NetworkService } from '../network/service.js';
import { DEFAULT_POOLS } from '../network/ipam.js';
import { containerMatches, containerNetworkSettings, containerPorts, networkRoutes } from '../api/networks.js';
import { isRunning } from '../container/state.js';
import { absentRoutes } from '../api/absent.js';
import { attachRoutes } from '../api/attach.js';

const usage = `Usage:	berthd [OPTIONS]

A Docker-compatible container engine daemon

Options:
      --config-file string     Daemon configuration file (default "/etc/berth/daemon.json")
      --data-root string       Root directory of persistent state (default "/var/lib/berth")
      --exec-root string       Root directory for execution state files (default "/run/berth")
  -H, --host list              Daemon socket to listen on (unix:///path)
  -G, --group string           Group for the unix socket (default "berth")
  -p, --pidfile string         Path to use for daemon PID file (default "<exec-root>/berthd.pid")
  -s, --storage-driver string  Storage driver to use (default: the best this host supports)
      --storage-opt list       Storage driver options
      --cgroup-parent string   Parent cgroup for all containers (default "berth")
  -b, --bridge string          Attach containers to a network bridge
      --bip string             Network bridge IP
      --default-runtime string Default OCI runtime for containers (default "runc")
  -D, --debug                  Enable debug mode
`;

function which(name: string, extra: string[] = []): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/bin', '/sbin', ...extra]) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {}
  }
  return null;
}

function groupId(name: string): number | null {
  try {
    for (const line of fs.readFileSync('/etc/group', 'utf8').split('\n')) {
      const [g, , gid] = line.split(':');
      if (g === name) return Number(gid);
    }
  } catch {}
  return /^\d+$/.test(name) ? Number(name) : null;
}


function takePidfile(file: string): void {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    if (pid && pid !== process.pid) {
      try {
        process.kill(pid, 0);
        const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (cmdline.includes('berthd') || cmdline.includes('daemon/main')) {
          throw new Error(`pid file found, ensure berthd is not running or delete ${file}`);
        }
      } catch (err) {
        if ((err as Error).message.startsWith('pid file found')) throw err;
      }
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, `${process.pid}`);
}

function daemonId(dataRoot: string): string {
  const file = path.join(dataRoot, 'engine-id');
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    const id = crypto.randomUUID();
    writeFileAtomic(file, id);
    return id;
  }
}

async function listen(server: http.Server, host: string, group: string): Promise<string> {
  const socket = host.slice('unix://'.length);
  fs.mkdirSync(path.dirname(socket), { recursive: true });
  try {
    fs.unlinkSync(socket);
  } catch {}
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const gid = groupId(group);
  if (gid === null) log.warn(`could not change group ${socket} to ${group}: group ${group} not found`);
  else fs.chownSync(socket, 0, gid);
  fs.chmodSync(socket, 0o660);
  return socket;
}

export async function runDaemon(config: DaemonConfig): Promise<{ close(): Promise<void> }> {
  if (config.debug) setLevel('debug');
  // Checked before anything is created: default-ulimits, seccomp-profile, userns-remap.
  const isolation = daemonIsolation(config);
  for (const dir of [config.dataRoot, config.execRoot]) fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
  takePidfile(config.pidfile);

  const runtimeEntry = config.runtimes[config.defaultRuntime];
  const runtimePath = runtimeEntry?.path ?? which(config.defaultRuntime);
  if (!runtimePath) throw new Error(`failed to find the OCI runtime "${config.defaultRuntime}" in PATH (install the Debian package runc)`);
  const conmonPath = which('conmon', ['/usr/libexec/podman']);
  if (!conmonPath) throw new Error('failed to find conmon in PATH (install the Debian package conmon)');

  const db = new Database(path.join(config.dataRoot, 'berth.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');

  const content = openContentStore(path.join(config.dataRoot, 'content'));
  if (!config.storageDriver) {
    const chosen = chooseDriver(config.dataRoot);
    log.info(`[graphdriver] using ${chosen.name}: ${chosen.reason}`);
    config.storageDriver = chosen.name;
  }
  const storage = openSnapshotter(config.storageDriver, config.dataRoot, db, { options: config.storageOpts });
  // The one event bus: every service publishes what it changes; GET /events and waiters read it.
  const events = new EventBus();
  // Image records and container listings are the driver's own; an old shared record goes to the driver holding its layers.
  const images = publishImageEvents(openImageStore(db, content, storage, { layerOwners: (chain) => driversHolding(db, chain) }), events);
  const runtime = createRuntime({
    runtimePath,
    conmonPath,
    stateDir: path.join(config.execRoot, 'c'),
    runtimeRoot: path.join(config.execRoot, 'runc'),
  });
  const containersRoot = path.join(config.dataRoot, 'containers');
  fs.mkdirSync(containersRoot, { recursive: true, mode: 0o710 });
  const remapRoot = isolation.remap && { uid: isolation.remap.rootUid, gid: isolation.remap.rootGid };
  const volumes = new VolumeService(db, path.join(config.dataRoot, 'volumes'), events, remapRoot);
  const containerStore = new ContainerStore(db, storage.driver, (id) => driversHolding(db, [id]));
  const networks = new NetworkService(db, events, {
    execRoot: config.execRoot, bridge: config.bridge || 'berth0', bip: config.bip, mtu: config.mtu, icc: config.icc,
    iptables: config.iptables, ipForward: config.ipForward, userlandProxy: config.userlandProxy, pools: config.defaultAddressPools.length ? config.defaultAddressPools : DEFAULT_POOLS,
  }, (ref) => {
    try {
      // Another driver's container keeps its attachments and leases.
      return containerStore.find(ref) ?? containerStore.findAnyById(ref) ?? null;
    } catch {
      return null;
    }
  });
  await networks.init();
  const containers = new ContainerService({
    store: containerStore,
    network: networks,
    images,
    storage,
    runtime,
    root: containersRoot,
    cgroupParent: config.cgroupParent,
    events,
    isolation,
    volumes,
  });

  await content.recover();
  await storage.recover();
  await removeExtracts(storage);
  const execs = new ExecService(containers, createExecRuntime({ runtimePath, conmonPath, runtimeRoot: path.join(config.execRoot, 'runc'), bundlesDir: path.join(config.execRoot, 'c') }));
  const health = new HealthMonitor(containers, execs);
  containers.useHealth(health);
  // Scratch space for cp and load spools; what a killed daemon left there is thrown away, once the
  // containers it froze for a copy are thawed (before container recovery, which would take them for paused).
  const tmp = path.join(config.dataRoot, 'tmp');
  // Paths inside a container's volumes and binds are read and written in their sources (tmpfs mounts live only in the running container).
  const files = new ContainerFiles(containers, storage, tmp, runtime, (c) => (c.mounts ?? [])
    .filter((m) => m.Type !== 'tmpfs')
    .map((m) => ({ destination: m.Destination, source: m.Type === 'volume' && m.Name ? path.join(volumes.mountpointOf(m.Name), m.Subpath ?? '') : m.Source, readOnly: !m.RW })),
  (c) => (isRemapped(c, isolation.remap) ? { toHost: toHost(isolation.remap), toContainer: toContainer(isolation.remap) } : undefined));
  await files.recover();
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { mode: 0o700 });
  await volumes.recover();
  await containers.recover();
  await networks.restore((id) => {
    const c = containerStore.findAnyById(id);
    return c !== undefined && isRunning(c.state);
  });

  const router = new Router();
  systemRoutes(router, {
    config,
    containers,
    images,
    events,
    daemonId: daemonId(config.dataRoot),
    storage,
    cgroupVersion: cgroupVersion() === 2 ? '2' : '1',
    runtimePath,
  });
  statsRoutes(router, containers);
  attachRoutes(router, containers);
  execRoutes(router, execs);
  containerRoutes(router, containers, {
    storageDriver: storage.driver,
    graphData: (id) => { try { return graphDriverData(storage.mounts(id)); } catch { return {}; } },
    execIdsOf: (id) => execs.idsOf(id),
    network: { settings: (c) => containerNetworkSettings(networks, c), ports: (c) => containerPorts(networks, c), matches: (c, f) => containerMatches(networks, c, f) },
    imageIdOf: (ref) => {
      try {
        return images.resolve(ref).id;
      } catch {
        return null;
      }
    },
  });
  const registry = createRegistryClient({ content, storage, images, options: { mirrors: config.registryMirrors, insecure: config.insecureRegistries }, events });
  imageRoutes(router, { images, content, storage, containers, registry, storageDriver: storage.driver, events });
  eventRoutes(router, events);
  volumeRoutes(router, volumes);
  networkRoutes(router, networks, containers);
  commitRoutes(router, { images, content, storage, containers, events });
  const buildRoot = path.join(config.dataRoot, 'build');
  // Contexts of builds a crash interrupted are of no use to anyone.
  fs.rmSync(path.join(buildRoot, 'contexts'), { recursive: true, force: true });
  buildRoutes(router, { images, content, storage, containers, registry, events, cache: new BuildCache(path.join(buildRoot, 'cache')), workRoot: path.join(buildRoot, 'contexts') });
  archiveRoutes(router, files);
  absentRoutes(router);
  saveLoadRoutes(router, { images, content, storage, events, tmp });
  dfRoutes(router, {
    images, containers,
    volumes: () => Promise.all(volumes.list().map(async (v) => ({ ...v, UsageData: { Size: await volumes.size(v.Name), RefCount: volumes.refs(v.Name).length } }))),
  });

  const servers: http.Server[] = [];
  const sockets: string[] = [];
  for (const host of config.hosts) {
    const server = createApiServer(router, `berth/${BERTH_VERSION} (linux)`);
    sockets.push(await listen(server, host, config.group));
    servers.push(server);
  }
  trimWhenQuiet(servers);
  log.info('berthd has completed initialization', { version: BERTH_VERSION, sockets, dataRoot: config.dataRoot });

  return {
    async close() {
      // Containers keep running under their monitors (live restore); the next berthd adopts them.
      await Promise.all(servers.map((s) => new Promise<void>((r) => { s.close(() => r()); s.closeAllConnections(); })));
      for (const s of sockets) fs.rmSync(s, { force: true });
      await networks.close();
      fs.rmSync(config.pidfile, { force: true });
      health.shutdown();
      db.close();
      // The parent cgroup goes where no container is left in it (runc made it in every hierarchy).
      cgroupParentCleanup(config.cgroupParent);
    },
  };
}

/**
 * ps, top and pgrep show "berthd" rather than "node …/dist/src/daemon/main.js". The title
 * (/proc/PID/cmdline, which cannot grow past the original command line) keeps the arguments, by
 * which tools and tests tell one daemon from another (its data and exec roots); the command name
 * (/proc/PID/comm, what `pgrep -x` matches, 15 bytes at most) is just "berthd".
 */
function nameProcess(): void {
  process.title = ['berthd', ...process.argv.slice(2)].join(' ');
  fs.writeFileSync('/proc/self/comm', 'berthd');
}

async function main(): Promise<void> {
  nameProcess();
  tuneMalloc();
  let parsed;
  try {
    parsed = loadConfig(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`berthd: ${errorMessage(err)}\n`);
    process.exit(1);
  }
  if (parsed.help) {
    process.stdout.write(usage);
    return;
  }
  if (parsed.version) {
    process.stdout.write(`berthd version ${BERTH_VERSION}\n`);
    return;
  }
  let daemon: { close(): Promise<void> };
  try {
    daemon = await runDaemon(parsed.config);
  } catch (err) {
    log.error(`failed to start daemon: ${errorMessage(err)}`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info('processing signal', { signal: sig });
    const force = setTimeout(() => process.exit(0), 5000);
    force.unref();
    void daemon.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGPIPE', () => {});
}

if (process.argv[1] && import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href) void main();
