/**
 * A container's files from outside: the archive API and `cp` (stat, tar out, tar in), `export`
 * and `diff`. Every path is resolved inside the container's root: `..` stops at its `/`, and
 * symlinks met on the way (absolute or relative) are followed within the root, never on the host.
 *
 * Each operation runs under the container's lock. A running container's root is its mounted rootfs,
 * and the container is frozen (runtime pause) for the call: path checks and the writes and reads
 * after them are only as good as the tree staying put, and its own processes are the ones that could
 * swap a checked directory for a symlink to the host. Any other container has its snapshot mounted
 * on a private dir for the call.
 *
 * A path inside a volume or bind mount (the mounts table the volume service gives, `mountsOf`) is
 * resolved inside that mount's source on the host instead, as if the source were its own `/`.
 * TODO(volumes): daemon/main.ts passes no mountsOf yet; wire the volume service's table there.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { checkTarMembers, extractTar, packDir, packPath, safeJoin, type IdShift } from '../archive/index.js';
import { Forbidden, InvalidParameter, NotFound, errorMessage } from '../errors.js';
import { log } from '../log.js';
import type { Runtime } from '../runtime/index.js';
import { type Snapshotter, snapshotDiff, withMounts } from '../storage/index.js';
import type { ContainerService } from './service.js';
import { isRunning } from './state.js';
import type { Container } from './types.js';

/** Docker's container path stat (types.ContainerPathStat), sent base64-encoded in X-Docker-Container-Path-Stat. */
export interface PathStat {
  name: string;
  size: number;
  /** Go's os.FileMode: permission bits plus type bits at the top. */
  mode: number;
  mtime: string;
  linkTarget: string;
}

/** Go's os.FileMode type bits. */
export const GO_MODE = {
  dir: 2 ** 31, symlink: 2 ** 27, device: 2 ** 26, namedPipe: 2 ** 25, socket: 2 ** 24,
  setuid: 2 ** 23, setgid: 2 ** 22, charDevice: 2 ** 21, sticky: 2 ** 20,
} as const;

export function goFileMode(st: fs.Stats): number {
  let m = st.mode & 0o777;
  if (st.isDirectory()) m += GO_MODE.dir;
  else if (st.isSymbolicLink()) m += GO_MODE.symlink;
  else if (st.isBlockDevice()) m += GO_MODE.device;
  else if (st.isCharacterDevice()) m += GO_MODE.device + GO_MODE.charDevice;
  else if (st.isFIFO()) m += GO_MODE.namedPipe;
  else if (st.isSocket()) m += GO_MODE.socket;
  if (st.mode & 0o4000) m += GO_MODE.setuid;
  if (st.mode & 0o2000) m += GO_MODE.setgid;
  if (st.mode & 0o1000) m += GO_MODE.sticky;
  return m;
}

export interface ResolvedPath {
  /** The path in the container, absolute, keeping a trailing "/" or "/." as given (docker's absPath). */
  abs: string;
  /** On the host, inside root. The last component is not followed unless abs ends in "/" or "/.". */
  host: string;
  /** abs ended in "/" or "/.": it names a directory, fully resolved. */
  dirAsserted: boolean;
  /** The tar member name its content gets: its base name, "." for a directory's contents or the root. */
  member: string;
}

/**
 * docker's ResolvePath, safely: the directory part resolved in the root (safeJoin), the base name
 * joined as is, so a symlink there is looked at, not followed. A trailing "/" or "/." asks for the
 * directory itself, so the whole path is resolved (still inside the root).
 */
export function resolvePath(root: string, p: string): ResolvedPath {
  if (p === '') throw new InvalidParameter('path cannot be empty');
  let abs = path.posix.join('/', p);
  const dotted = p === '.' || p.endsWith('/.');
  if (dotted && !abs.endsWith('/.')) abs = abs === '/' ? '/.' : `${abs}/.`;
  else if (!dotted && p.endsWith('/') && !abs.endsWith('/')) abs += '/';
  const dirAsserted = abs.endsWith('/') || abs.endsWith('/.');
  const trimmed = abs.replace(/\/\.?$/, '');
  const baseName = path.posix.basename(trimmed);
  const member = dotted || baseName === '' ? '.' : baseName;
  if (dirAsserted || baseName === '') return { abs, host: safeJoin(root, abs), dirAsserted: true, member };
  const dir = safeJoin(root, path.posix.dirname(trimmed));
  return { abs, host: path.join(dir, baseName), dirAsserted, member };
}

function notFound(abs: string, c: Container): NotFound {
  return new NotFound(`Could not find the file ${abs} in container ${c.name}`);
}

/** lstat of a resolved path with docker's errors; a directory-asserting path must be one. */
export function statResolved(root: string, r: ResolvedPath, c: Container, mountedAt = '/'): { st: fs.Stats; stat: PathStat } {
  const shown = (p: string): string => (mountedAt === '/' ? p : path.posix.join(mountedAt, p) + (p.endsWith('/.') ? '/.' : ''));
  let st: fs.Stats;
  try {
    st = fs.lstatSync(r.host);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw notFound(shown(r.abs), c);
    throw err;
  }
  if (r.dirAsserted && !st.isDirectory()) throw new InvalidParameter(`lstat ${shown(r.abs)}: not a directory`);
  let linkTarget = '';
  if (st.isSymbolicLink()) linkTarget = shown('/' + path.relative(root, safeJoin(root, r.abs)));
  const abs = shown(r.abs);
  const name = abs === '/' || abs === '/.' ? abs.slice(-1) : path.posix.basename(abs.replace(/\/$/, ''));
  const stat = { name, size: st.size, mode: goFileMode(st), mtime: st.mtime.toISOString(), linkTarget };
  return { st, stat };
}

export function encodeStat(stat: PathStat): string {
  return Buffer.from(JSON.stringify(stat)).toString('base64');
}

export interface ExtractOpts {
  noOverwriteDirNonDir: boolean;
  /** Keep the tar's uid/gid (cp -a); otherwise everything is owned by the container's root, 0:0. */
  copyUIDGID: boolean;
}

/** A volume or bind in a container: its source on the host, mounted at destination. */
export interface MountPoint { destination: string; source: string; readOnly: boolean }

/** Where container path p lives: inside the deepest mount whose destination holds it, else in the container's root. */
export function locate(mounts: readonly MountPoint[], p: string): { mount: MountPoint | null; path: string } {
  const abs = path.posix.join('/', p);
  let best: MountPoint | null = null;
  for (const m of mounts) {
    const d = path.posix.join('/', m.destination).replace(/\/+$/, '') || '/';
    const inside = d === '/' || abs === d || abs === `${d}/` || abs.startsWith(`${d}/`);
    if (inside && (!best || d.length > best.destination.length)) best = { ...m, destination: d };
  }
  if (!best) return { mount: null, path: p };
  let inner = '/' + abs.slice(best.destination.length).replace(/^\/+/, '');
  if (p === '.' || p.endsWith('/.')) inner = inner === '/' ? '/.' : `${inner.replace(/\/$/, '')}/.`;
  return { mount: best, path: inner };
}

/** One A/C/D row of `docker diff`: Kind 0 = changed, 1 = added, 2 = deleted. */
export interface Change { Path: string; Kind: 0 | 1 | 2 }

const WH = '.wh.';
const OPQ = '.wh..wh..opq';

export class ContainerFiles {
  /** tmp: the daemon's own scratch dir (emptied at start-up), where a PUT body is spooled to be checked first. */
  constructor(private readonly containers: ContainerService, private readonly storage: Snapshotter, private readonly tmp: string,
    private readonly freezer: Pick<Runtime, 'pause' | 'resume'>,
    private readonly mountsOf: (c: Container) => readonly MountPoint[] = () => [],
    /** A remapped container's ids to the host's and back (its files on disk are owned by host ids). */
    private readonly idsOf: (c: Container) => { toHost: IdShift; toContainer: IdShift } | undefined = () => undefined) {}

  /** fn on the container's root, under its lock; a running container frozen meanwhile (a paused one is already). */
  private withRoot<T>(idOrName: string, fn: (root: string, c: Container) => Promise<T>): Promise<T> {
    return this.containers.whileLocked(idOrName, async (c) => {
      if (!isRunning(c.state)) return withMounts(this.storage.mounts(c.id), (dir) => fn(dir, c));
      if (c.state.Status === 'paused') return fn(this.containers.rootfs(c), c);
      // The marker lets the next daemon thaw a container this one was killed with frozen (recover()).
      const marker = this.frozenMarker(c.id);
      fs.writeFileSync(marker, '');
      await this.freezer.pause(c.id);
      try {
        return await fn(this.containers.rootfs(c), c);
      } finally {
        await this.freezer.resume(c.id).catch((err) => log.error('thawing a container after a copy failed', { id: c.id, error: errorMessage(err) }));
        fs.rmSync(marker, { force: true });
      }
    });
  }

  private frozenMarker(id: string): string {
    return path.join(this.tmp, `frozen-${id}`);
  }

  /** At start-up, before the scratch dir is emptied: thaw what a killed daemon left frozen mid-copy. */
  async recover(): Promise<void> {
    let names: string[] = [];
    try {
      names = fs.readdirSync(this.tmp);
    } catch {}
    for (const n of names) {
      if (!n.startsWith('frozen-')) continue;
      const id = n.slice('frozen-'.length);
      const c = this.containers.list().find((x) => x.id === id);
      // A container the user paused meanwhile cannot be: no daemon ran to take the order.
      if (c && c.state.Status === 'running') {
        await this.freezer.resume(id).catch((err) => log.warn('thawing a container left frozen by a copy failed', { id, error: errorMessage(err) }));
      }
      fs.rmSync(path.join(this.tmp, n), { force: true });
    }
  }

  /** fn on the tree that holds container path p (a mount's source, or the container's root) and p inside it. */
  private withPath<T>(idOrName: string, p: string, fn: (root: string, inner: string, c: Container, mount: MountPoint | null) => Promise<T>): Promise<T> {
    if (p === '') throw new InvalidParameter('path cannot be empty');
    return this.withRoot(idOrName, (root, c) => {
      const where = locate(this.mountsOf(c), p);
      return where.mount ? fn(where.mount.source, where.path, c, where.mount) : fn(root, p, c, null);
    });
  }

  /** HEAD /containers/{id}/archive. */
  stat(idOrName: string, p: string): Promise<PathStat> {
    return this.withPath(idOrName, p, async (root, inner, c, m) => statResolved(root, resolvePath(root, inner), c, m?.destination).stat);
  }

  /**
   * GET /containers/{id}/archive: `start(stat)` is called once the path is known to exist (the
   * caller sends its headers then), and the tar goes to the writable it returns.
   */
  archive(idOrName: string, p: string, start: (stat: PathStat) => Writable): Promise<void> {
    return this.withPath(idOrName, p, async (root, inner, c, m) => {
      const r = resolvePath(root, inner);
      const { stat } = statResolved(root, r, c, m?.destination);
      // dockerd's event, once the path is known to exist.
      this.containers.publish('archive-path', c, { path: p });
      await pipeline(packPath(r.host, r.member, this.idsOf(c)?.toContainer), start(stat));
    });
  }

  /**
   * PUT /containers/{id}/archive: the tar is extracted into directory `p`. It is spooled and read
   * through once first, so a tar with a member outside its root, or a broken one, changes nothing.
   */
  async extract(idOrName: string, p: string, body: Readable, opts: ExtractOpts): Promise<void> {
    const spool = path.join(this.tmp, `put-${crypto.randomBytes(8).toString('hex')}.tar`);
    try {
      // The container must exist before the body is read.
      this.containers.get(idOrName);
      await pipeline(body, fs.createWriteStream(spool, { mode: 0o600 }));
      await checkTarMembers(fs.createReadStream(spool));
      await this.withPath(idOrName, p, async (root, inner, c, m) => {
        // Unlike a stat, the last component is followed too (in the root): one can extract into a symlink to a directory.
        const r = resolvePath(root, inner);
        const full = { ...r, host: safeJoin(root, r.abs) };
        const { st } = statResolved(root, full, c, m?.destination);
        if (!st.isDirectory()) throw new InvalidParameter('extraction point is not a directory');
        if (m ? m.readOnly : c.hostConfig.ReadonlyRootfs) throw new Forbidden(m ? 'mounted volume is marked read-only' : 'container rootfs is marked read-only');
        const base = path.relative(root, full.host);
        await extractTar(fs.createReadStream(spool), root, {
          base,
          owner: opts.copyUIDGID ? undefined : { uid: 0, gid: 0 },
          ids: this.idsOf(c)?.toHost,
          noOverwriteDirNonDir: opts.noOverwriteDirNonDir,
        });
        this.containers.publish('extract-to-dir', c, { path: p });
      });
    } finally {
      fs.rmSync(spool, { force: true });
    }
  }

  /** GET /containers/{id}/export: the whole filesystem as a tar. */
  export(idOrName: string, start: () => Writable): Promise<void> {
    return this.withRoot(idOrName, async (root, c) => {
      this.containers.publish('export', c);
      await pipeline(packDir(root, this.idsOf(c)?.toContainer), start());
    });
  }

  /**
   * GET /containers/{id}/changes, read from the rw layer's diff (snapshotDiff): `.wh.x` is x deleted,
   * an opaque directory lost whatever its parent layers had in it, and any other member is added or
   * changed depending on whether the layers below have it (looked up in a read-only view of them).
   */
  changes(idOrName: string): Promise<Change[]> {
    return this.containers.whileLocked(idOrName, async (c) => {
      const deleted = new Set<string>();
      const present = new Set<string>();
      // A set: fuse-overlayfs marks an opaque dir three ways (xattr, a .wh..wh..opq file, a .wh..opq whiteout), each packed as a marker.
      const opaque = new Set<string>();
      const extract = tar.extract();
      extract.on('entry', (h, stream, next) => {
        stream.resume();
        const name = '/' + h.name.replace(/^\.?\/+/, '').replace(/\/+$/, '');
        const dir = path.posix.dirname(name);
        const base = path.posix.basename(name);
        if (base === OPQ) opaque.add(dir);
        else if (base.startsWith(WH)) deleted.add(path.posix.join(dir, base.slice(WH.length)));
        else if (name !== '/') present.add(name);
        next();
      });
      await pipeline(snapshotDiff(this.storage, c.id), extract as unknown as NodeJS.WritableStream);

      const parent = this.storage.stat(c.id)?.parent ?? null;
      const out: Change[] = [];
      const look = async (below: string | null): Promise<void> => {
        for (const p of present) out.push({ Path: p, Kind: below !== null && existsBelow(below, p) ? 0 : 1 });
        for (const p of deleted) out.push({ Path: p, Kind: 2 });
        if (below === null) return;
        for (const dir of opaque) {
          const old = safeJoin(below, dir);
          let names: string[] = [];
          try {
            names = fs.readdirSync(old);
          } catch {}
          for (const n of names) {
            const p = path.posix.join(dir, n);
            if (!present.has(p) && !deleted.has(p)) out.push({ Path: p, Kind: 2 });
          }
        }
      };
      if (parent === null || (present.size === 0 && opaque.size === 0)) await look(null);
      else {
        const key = `${c.id}-diff-${crypto.randomBytes(6).toString('hex')}`;
        try {
          await withMounts(await this.storage.view(key, parent), (dir) => look(dir));
        } finally {
          await this.storage.remove(key).catch(() => {});
        }
      }
      return out.sort((a, b) => (a.Path < b.Path ? -1 : a.Path > b.Path ? 1 : 0));
    });
  }
}

/**
 * Whether the layers below have path p as it is named: every component above the last a directory there,
 * none followed. (A symlink the container replaced by a directory does not make p/x exist below: what the
 * link points at is another path, and following it could leave the root.)
 */
function existsBelow(root: string, p: string): boolean {
  const parts = path.posix.normalize(p).split('/').filter((x) => x && x !== '..');
  let at = root;
  for (const [i, part] of parts.entries()) {
    at = path.join(at, part);
    const st = fs.lstatSync(at, { throwIfNoEntry: false });
    if (!st) return false;
    if (i < parts.length - 1 && !st.isDirectory()) return false;
  }
  return true;
}
