/**
 * Volumes, binds and tmpfs mounts of a container.
 *
 * At create, prepare() turns HostConfig.VolumesFrom, Binds, Mounts and the image's and the user's
 * Config.Volumes into the container's mount table (Container.mounts), in docker's order: mounts
 * copied from --volumes-from first, then -v and --mount (which win over them on the same path),
 * then an anonymous volume for every Config.Volumes path nothing else covers. Named volumes are
 * made on first use; whatever this create made is removed again if the create fails.
 *
 * populate() then copies the image's content into each empty volume (unless nocopy), as docker
 * does at create (owned, for a remapped container, by the host ids its owners map to). At start (the provider, after rootfs): each volume is activated (its filesystem
 * mounted, for `-o type=…` volumes), a -v bind source that is missing is made, and every mount
 * goes into the OCI spec, parents before children. Teardown deactivates the volumes. remove
 * releases them, and with `rm -v` (or --rm) removes the anonymous ones no other container uses.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Conflict, InvalidParameter, NotFound, SystemError, errorMessage } from '../../errors.js';
import type { EventBus } from '../../events/index.js';
import { log } from '../../log.js';
import { safeJoin } from '../../archive/index.js';
import type { OciMount } from '../../runtime/index.js';
import { ANONYMOUS_LABEL, LOCAL_DRIVER, type VolumeService, copyIntoEmpty, isEmptyDir, mountOf } from '../../volume/index.js';
import { type MountPoint, parseBind, parseMountSpec, parseVolumesFrom, tmpfsOptions } from '../../volume/spec.js';
import type { Container } from '../types.js';
import { type Remap, isRemapped, toHost } from '../userns.js';
import type { Provider } from './index.js';

export interface ContainerLookup {
  find(idOrName: string): Container | undefined;
}

/** What a create reserved or made, to keep (done) or undo (rollback). */
export interface PreparedMounts {
  done(): void;
  rollback(): Promise<void>;
}

/** Where a path inside a container lives when a mount covers it (for cp into and out of volumes). */
export interface MountedPath {
  mount: MountPoint;
  /** The host directory the mount shows at mount.Destination; null for a tmpfs (no host path). */
  hostRoot: string | null;
  /** The rest of the path below mount.Destination, relative ("" for the mount point itself). */
  rel: string;
  readOnly: boolean;
}

function depth(p: string): number {
  return p.split('/').filter(Boolean).length;
}

function within(dest: string, p: string): boolean {
  return dest === '/' || p === dest || p.startsWith(dest + '/');
}

/** Docker's rule: a shared bind needs a shared source mount, a slave one a shared or slave source. */
function checkPropagation(source: string, propagation: string): void {
  const shared = propagation === 'shared' || propagation === 'rshared';
  const slave = propagation === 'slave' || propagation === 'rslave';
  if (!shared && !slave) return;
  const m = mountOf(source);
  if (!m) return;
  if (shared && !m.shared) throw new SystemError(`path ${source} is mounted on ${m.mountPoint} but it is not a shared mount`);
  if (slave && !m.shared && !m.slave) throw new SystemError(`path ${source} is mounted on ${m.mountPoint} but it is not a shared or slave mount`);
}

export class VolumeMounts {
  /** Containers whose `mount` events were published by this daemon, so teardown answers each once. */
  private readonly mounted = new Set<string>();

  constructor(
    private readonly volumes: VolumeService,
    private readonly containers: ContainerLookup,
    private readonly events: EventBus,
    /** userns-remap: what the image gives a remapped container's volume is owned by the host ids it sees. */
    private readonly remap?: Remap,
  ) {}

  /** Builds c.mounts (and the union of the image's and the user's Config.Volumes) for a new container. */
  async prepare(c: Container, imageVolumes: Record<string, unknown> | null | undefined): Promise<PreparedMounts> {
    const h = c.hostConfig;
    const table = new Map<string, MountPoint>();
    // Everything is parsed and checked before the first volume is made.
    for (const spec of h.VolumesFrom ?? []) {
      const { container, rw } = parseVolumesFrom(spec);
      const src = this.containers.find(container);
      if (!src) throw new NotFound(`No such container: ${container}`);
      for (const m of src.mounts ?? []) {
        if (m.Type === 'volume' && m.Name && !this.volumes.has(m.Name)) throw new NotFound(`get ${m.Name}: no such volume`);
        table.set(m.Destination, { ...m, RW: m.RW && rw, Mode: '', CopyData: false });
      }
    }
    const own: MountPoint[] = [...(h.Binds ?? []).map((b) => parseBind(b, h.VolumeDriver)), ...(h.Mounts ?? []).map(parseMountSpec)];
    for (const m of own) {
      if (m.Type === 'volume' && m.Driver && m.Driver !== LOCAL_DRIVER) throw new NotFound(`error looking up volume plugin ${m.Driver}: plugin "${m.Driver}" not found`);
      table.set(m.Destination, m);
    }
    const tmpfs = new Set(Object.keys(h.Tmpfs ?? {}).map((d) => path.posix.normalize(d)));
    const volumesCfg = { ...(imageVolumes ?? {}), ...(c.config.Volumes ?? {}) } as Record<string, object>;
    if (Object.keys(volumesCfg).length) c.config.Volumes = volumesCfg;
    const anonymous: string[] = [];
    for (const spec of Object.keys(volumesCfg)) {
      if (!spec.startsWith('/')) throw new InvalidParameter(`invalid mount path: '${spec}' mount path must be absolute`);
      const dest = path.posix.normalize(spec).replace(/(.)\/$/, '$1');
      if (!table.has(dest) && !tmpfs.has(dest)) anonymous.push(dest);
    }

    const made: string[] = [];
    const reserved: string[] = [];
    const use = (name: string | undefined, labels: Record<string, string>, driverOpts?: Record<string, string>) => {
      const r = this.volumes.create(name, { labels, driverOpts, reference: c.id });
      reserved.push(r.volume.Name);
      if (r.created) made.push(r.volume.Name);
      return r.volume;
    };
    const rollback = async () => {
      for (const n of reserved) this.volumes.unreserve(n, c.id);
      for (const n of made) await this.volumes.remove(n).catch((err) => log.warn('removing a volume of a failed create', { name: n, error: errorMessage(err) }));
    };
    try {
      for (const m of table.values()) {
        if (m.Type !== 'volume') continue;
        if (m.Name && !m.VolumeLabels && !m.VolumeDriverOpts && this.volumes.has(m.Name)) {
          this.volumes.reserve(m.Name, c.id);
          reserved.push(m.Name);
        } else {
          const v = use(m.Name, m.Name ? { ...(m.VolumeLabels ?? {}) } : { ...(m.VolumeLabels ?? {}), [ANONYMOUS_LABEL]: '' }, m.VolumeDriverOpts);
          m.Name = v.Name;
        }
        m.Source = this.volumes.mountpointOf(m.Name);
        m.Driver = LOCAL_DRIVER;
        delete m.VolumeLabels;
        delete m.VolumeDriverOpts;
      }
      for (const dest of anonymous) {
        const v = use(undefined, { [ANONYMOUS_LABEL]: '' });
        table.set(dest, { Type: 'volume', Name: v.Name, Source: v.Mountpoint, Destination: dest, Driver: LOCAL_DRIVER, Mode: '', RW: true, Propagation: '', Named: false, CopyData: true });
      }
    } catch (err) {
      await rollback();
      throw err;
    }
    c.mounts = [...table.values()].sort((a, b) => (a.Destination < b.Destination ? -1 : a.Destination > b.Destination ? 1 : 0));
    return {
      done: () => {
        for (const n of reserved) this.volumes.unreserve(n, c.id);
      },
      rollback,
    };
  }

  /**
   * At create, as docker: each volume still empty gets the image's content at its path (unless
   * nocopy), read from the container's new rootfs, which `withRootfs` mounts for the while.
   */
  async populate(c: Container, withRootfs: (fn: (dir: string) => Promise<void>) => Promise<void>): Promise<void> {
    const todo = (c.mounts ?? []).filter((m) => m.Type === 'volume' && m.CopyData && !m.Subpath && m.Name);
    if (!todo.length) return;
    const shift = isRemapped(c, this.remap) ? toHost(this.remap) : undefined;
    await withRootfs(async (rootfs) => {
      for (const m of todo) {
        const src = safeJoin(rootfs, m.Destination);
        const st = fs.statSync(src, { throwIfNoEntry: false });
        if (!st) continue;
        if (!st.isDirectory()) {
          if (!m.Named) throw new InvalidParameter(`cannot mount volume over existing file, file exists ${m.Destination}`);
          continue;
        }
        const dst = this.volumes.activate(m.Name!);
        try {
          if (await isEmptyDir(dst)) await copyIntoEmpty(src, dst, shift);
        } finally {
          this.volumes.deactivate(m.Name!, c.id);
        }
      }
    });
  }

  /** After the container's record is gone: with `removeAnonymous`, its anonymous volumes that nothing else uses. */
  async release(c: Container, removeAnonymous: boolean): Promise<void> {
    if (!removeAnonymous) return;
    for (const m of c.mounts ?? []) {
      if (m.Type !== 'volume' || m.Named || !m.Name) continue;
      try {
        await this.volumes.remove(m.Name);
      } catch (err) {
        // Another container referring to it is docker's "implementation detail", not an error.
        if (!(err instanceof Conflict || err instanceof NotFound)) log.warn('removing an anonymous volume failed', { name: m.Name, error: errorMessage(err) });
      }
    }
  }

  /** Which host directory backs `containerPath` of container c, if a mount (not the rootfs) holds it. */
  mountFor(c: Container, containerPath: string): MountedPath | null {
    const p = path.posix.normalize('/' + containerPath);
    let best: MountPoint | null = null;
    const candidates: MountPoint[] = [
      ...(c.mounts ?? []),
      ...Object.keys(c.hostConfig.Tmpfs ?? {}).map((d): MountPoint => ({ Type: 'tmpfs', Source: '', Destination: path.posix.normalize(d), Mode: '', RW: true, Propagation: '' })),
    ];
    for (const m of candidates) if (within(m.Destination, p) && (!best || depth(m.Destination) >= depth(best.Destination))) best = m;
    if (!best) return null;
    const rel = path.posix.relative(best.Destination, p);
    let hostRoot: string | null = null;
    if (best.Type === 'bind') hostRoot = best.Source;
    else if (best.Type === 'volume' && best.Name) hostRoot = best.Subpath ? path.join(this.volumes.mountpointOf(best.Name), best.Subpath) : this.volumes.mountpointOf(best.Name);
    return { mount: best, hostRoot, rel, readOnly: !best.RW };
  }

  provider(): Provider {
    return {
      name: 'volumes',
      setup: async ({ container: c }) => {
        const activated: string[] = [];
        const mounts: OciMount[] = [];
        try {
          for (const m of c.mounts ?? []) {
            if (m.Type === 'volume') {
              let src = this.volumes.activate(m.Name!);
              activated.push(m.Name!);
              if (m.Subpath) {
                src = safeJoin(src, m.Subpath);
                if (!fs.existsSync(src)) throw new InvalidParameter(`cannot access path ${src}: lstat ${src}: no such file or directory`);
              }
              mounts.push({ destination: m.Destination, source: src, type: 'bind', options: ['rbind', m.RW ? 'rw' : 'rro', 'rprivate'] });
            } else if (m.Type === 'bind') {
              if (!fs.existsSync(m.Source)) {
                if (!m.CreateSource) throw new InvalidParameter(`invalid mount config for type "bind": bind source path does not exist: ${m.Source}`);
                await fsp.mkdir(m.Source, { recursive: true, mode: 0o755 });
              }
              checkPropagation(m.Source, m.Propagation);
              // Read-only reaches the submounts too ("rro"), as with docker ≥ 25, unless asked otherwise.
              const ro = m.NonRecursive || m.ReadOnlyNonRecursive ? 'ro' : 'rro';
              mounts.push({ destination: m.Destination, source: m.Source, type: 'bind', options: [m.NonRecursive ? 'bind' : 'rbind', m.RW ? 'rw' : ro, m.Propagation || 'rprivate'] });
            } else {
              mounts.push({ destination: m.Destination, source: 'tmpfs', type: 'tmpfs', options: tmpfsOptions(m.TmpfsData ?? '') });
            }
          }
        } catch (err) {
          for (const n of activated) this.volumes.deactivate(n, c.id);
          throw err;
        }
        for (const [dest, data] of Object.entries(c.hostConfig.Tmpfs ?? {})) {
          mounts.push({ destination: path.posix.normalize(dest), source: 'tmpfs', type: 'tmpfs', options: tmpfsOptions(data) });
        }
        mounts.sort((a, b) => depth(a.destination) - depth(b.destination));
        for (const m of c.mounts ?? []) {
          if (m.Type !== 'volume') continue;
          this.events.publish('volume', 'mount', m.Name!, { container: c.id, destination: m.Destination, driver: LOCAL_DRIVER, propagation: m.Propagation, 'read/write': String(m.RW) });
        }
        this.mounted.add(c.id);
        return { mounts };
      },
      teardown: async ({ container: c }) => {
        for (const m of c.mounts ?? []) if (m.Type === 'volume' && m.Name) this.volumes.deactivate(m.Name, c.id);
        if (!this.mounted.delete(c.id)) return;
        for (const m of c.mounts ?? []) if (m.Type === 'volume') this.events.publish('volume', 'unmount', m.Name!, { container: c.id, driver: LOCAL_DRIVER });
      },
    };
  }
}
