/**
 * Daemon-wide userns-remap, as dockerd's: container root is the first subordinate uid/gid of the
 * remap user (/etc/subuid, /etc/subgid), so a process that escapes is an unprivileged user on the host.
 *
 * Image layers stay owned by 0 on disk and are shared with unmapped containers: each lower layer is
 * seen by the container through an idmapped mount (open_tree + mount_setattr, Linux ≥ 5.12) whose
 * maps are the remap's, and overlayfs stacks on those. overlayfs itself cannot be idmapped, so the
 * upper (the container's own writes) holds host ids from the remapped range, as dockerd's remapped
 * layers do.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidParameter, SystemError } from '../errors.js';
import type { OciIdMapping } from '../runtime/spec.js';
import { type Snapshotter, type Mount, mountAll, unmountAll } from '../storage/index.js';
import { idmappedBind } from '../sys/index.js';
import type { IdShift } from '../volume/index.js';
import type { Provider } from './providers/index.js';
import type { Container } from './types.js';

export interface Remap {
  /** The userns-remap setting as given. */
  spec: string;
  uid: OciIdMapping[];
  gid: OciIdMapping[];
  /** Host ids of the container's root. */
  rootUid: number;
  rootGid: number;
}

export interface RemapFiles { passwd: string; group: string; subuid: string; subgid: string }
const HOST_FILES: RemapFiles = { passwd: '/etc/passwd', group: '/etc/group', subuid: '/etc/subuid', subgid: '/etc/subgid' };

function lines(file: string): string[][] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
  } catch {
    return [];
  }
}

/** The subordinate ranges of `name` (or its numeric id), laid end to end from container id 0. */
function ranges(file: string, name: string, id: number | undefined, what: 'subuid' | 'subgid'): OciIdMapping[] {
  const out: OciIdMapping[] = [];
  let next = 0;
  for (const f of lines(file)) {
    if (f.length < 3 || !(f[0] === name || (id !== undefined && f[0] === String(id)))) continue;
    const hostID = Number(f[1]);
    const size = Number(f[2]);
    if (!Number.isInteger(hostID) || !Number.isInteger(size) || size <= 0) continue;
    out.push({ containerID: next, hostID, size });
    next += size;
  }
  if (!out.length) throw new InvalidParameter(`Can't create ID mappings: No ${what} ranges found for user "${name}"`);
  return out;
}

/** dockerd's userns-remap value: user, uid, user:group or uid:gid whose ranges are in /etc/subuid and /etc/subgid. */
export function parseRemap(spec: string, files: RemapFiles = HOST_FILES): Remap {
  if (spec === 'default') {
    throw new InvalidParameter('userns-remap "default" (creating a remap user) is not supported yet: name a user with /etc/subuid and /etc/subgid ranges');
  }
  const [userPart = '', groupPart] = spec.split(':');
  if (!userPart) throw new InvalidParameter(`invalid userns-remap: "${spec}"`);
  const numeric = /^\d+$/.test(userPart);
  const pw = lines(files.passwd).find((f) => (numeric ? f[2] === userPart : f[0] === userPart));
  if (!pw && !numeric) throw new InvalidParameter(`Error during uid lookup for "${userPart}": no such user`);
  const userName = pw?.[0] ?? userPart;
  const uid = pw ? Number(pw[2]) : Number(userPart);
  let groupName = userName;
  let gid: number | undefined = pw ? Number(pw[3]) : uid;
  if (groupPart) {
    const gnum = /^\d+$/.test(groupPart);
    const gr = lines(files.group).find((f) => (gnum ? f[2] === groupPart : f[0] === groupPart));
    if (!gr && !gnum) throw new InvalidParameter(`Error during gid lookup for "${groupPart}": no such group`);
    groupName = gr?.[0] ?? groupPart;
    gid = gr ? Number(gr[2]) : Number(groupPart);
  }
  const uidMap = ranges(files.subuid, userName, uid, 'subuid');
  const gidMap = ranges(files.subgid, groupName, gid, 'subgid');
  return { spec, uid: uidMap, gid: gidMap, rootUid: uidMap[0]!.hostID, rootGid: gidMap[0]!.hostID };
}

/** Container ids to the host's through the remap's ranges; an id outside them has no host id, as dockerd says. */
export function toHost(remap: Remap): IdShift {
  const one = (maps: OciIdMapping[], id: number) => {
    const r = maps.find((m) => id >= m.containerID && id < m.containerID + m.size);
    if (!r) throw new InvalidParameter(`Container ID ${id} cannot be mapped to a host ID`);
    return r.hostID + (id - r.containerID);
  };
  return (uid, gid) => ({ uid: one(remap.uid, uid), gid: one(remap.gid, gid) });
}

/** Host ids back to the container's; one outside the ranges is the overflow id, as the kernel shows it inside. */
export function toContainer(remap: Remap): IdShift {
  const one = (maps: OciIdMapping[], id: number) => {
    const r = maps.find((m) => id >= m.hostID && id < m.hostID + m.size);
    return r ? r.containerID + (id - r.hostID) : OVERFLOW_ID;
  };
  return (uid, gid) => ({ uid: one(remap.uid, uid), gid: one(remap.gid, gid) });
}

/** /proc/sys/kernel/overflowuid and overflowgid: what a user namespace shows for an unmapped id. */
const OVERFLOW_ID = 65534;

/** Whether this container runs remapped (the daemon remaps and it did not ask for --userns=host). */
export function isRemapped(c: Container, remap: Remap | undefined): remap is Remap {
  return remap !== undefined && c.hostConfig.UsernsMode !== 'host';
}

/** Host namespaces and privileges a remapped container cannot have, with dockerd's messages. */
export function checkRemapped(c: Container): void {
  const h = c.hostConfig;
  if (h.Privileged) throw new InvalidParameter('privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode');
  if (h.NetworkMode === 'host') throw new InvalidParameter("cannot share the host's network namespace when user namespaces are enabled");
  if (h.PidMode === 'host') throw new InvalidParameter('cannot share the host PID namespace when user namespaces are enabled');
  if (h.IpcMode === 'host') throw new InvalidParameter("cannot share the host's IPC namespace when user namespaces are enabled");
  if (h.UTSMode === 'host') throw new InvalidParameter("cannot share the host's UTS namespace when user namespaces are enabled");
}

let nsFd: { spec: string; fd: number } | undefined;

/**
 * An open fd of a user namespace with the remap's maps, for idmapped mounts. Made once: a child
 * unshares a user namespace, we write its maps and open it; the fd keeps it alive after the child exits.
 */
async function remapNamespace(remap: Remap): Promise<number> {
  if (nsFd?.spec === remap.spec) return nsFd.fd;
  const own = fs.readlinkSync('/proc/self/ns/user');
  const child = spawn('unshare', ['--user', 'sleep', '30'], { stdio: 'ignore' });
  try {
    const pid = child.pid;
    if (!pid) throw new SystemError('userns-remap: cannot start unshare');
    for (let i = 0; ; i++) {
      let ns = own;
      try { ns = fs.readlinkSync(`/proc/${pid}/ns/user`); } catch { /* not started yet */ }
      if (ns !== own) break;
      if (i > 200) throw new SystemError('userns-remap: the helper never entered a user namespace');
      await sleep(5);
    }
    const map = (m: OciIdMapping[]) => m.map((r) => `${r.containerID} ${r.hostID} ${r.size}`).join('\n') + '\n';
    fs.writeFileSync(`/proc/${pid}/uid_map`, map(remap.uid));
    fs.writeFileSync(`/proc/${pid}/gid_map`, map(remap.gid));
    const fd = fs.openSync(`/proc/${pid}/ns/user`, 'r');
    if (nsFd) fs.closeSync(nsFd.fd);
    nsFd = { spec: remap.spec, fd };
    return fd;
  } finally {
    child.kill('SIGKILL');
  }
}

const lowerDir = (dir: string) => path.join(dir, 'idmapped');

/** Option value of an overlay mount (lowerdir=…), paths made absolute against the mount's cwd. */
function overlayPaths(m: Mount): { lowers: string[]; rest: string[] } {
  const abs = (p: string) => fs.realpathSync(path.resolve(m.cwd ?? '/', p));
  let lowers: string[] = [];
  const rest: string[] = [];
  for (const o of m.options) {
    if (o.startsWith('lowerdir=')) lowers = o.slice('lowerdir='.length).split(':').map(abs);
    else if (o.startsWith('upperdir=') || o.startsWith('workdir=')) rest.push(`${o.slice(0, o.indexOf('=') + 1)}${abs(o.slice(o.indexOf('=') + 1))}`);
    else rest.push(o);
  }
  return { lowers, rest };
}

/** Unmount and remove the idmapped layer mounts; rmdir (never rm -r), so a mount still there is never emptied. */
function removeMapped(base: string): void {
  let entries: string[];
  try {
    entries = fs.readdirSync(base);
  } catch {
    return;
  }
  for (const e of entries) {
    unmountAll(path.join(base, e));
    fs.rmdirSync(path.join(base, e));
  }
  fs.rmdirSync(base);
}

/**
 * The rootfs provider of a remapping daemon: a remapped container's overlay is built on idmapped
 * mounts of its lower layers (under <dir>/idmapped/), other containers get the plain snapshot.
 */
export function remapRootfsProvider(storage: Snapshotter, remap: Remap): Provider {
  return {
    name: 'rootfs',
    async setup({ container, rootfs, dir }) {
      const mounts = storage.mounts(container.id);
      if (!isRemapped(container, remap)) {
        mountAll(mounts, rootfs);
        return;
      }
      checkRemapped(container);
      if (mounts.length !== 1 || mounts[0]!.type !== 'overlay') throw new InvalidParameter('userns-remap needs the overlay2 storage driver');
      const fd = await remapNamespace(remap);
      const { lowers, rest } = overlayPaths(mounts[0]!);
      // The overlay's root takes its owner from the upper dir: the remapped root's, as the image's
      // root is, so that it can make mount points there (a volume's) as root can under dockerd.
      const upper = rest.find((o) => o.startsWith('upperdir='))?.slice('upperdir='.length);
      if (upper) fs.chownSync(upper, remap.rootUid, remap.rootGid);
      const base = lowerDir(dir);
      fs.mkdirSync(base, { recursive: true, mode: 0o700 });
      const mapped: string[] = [];
      try {
        for (const [i, l] of lowers.entries()) {
          const target = path.join(base, String(i));
          fs.mkdirSync(target, { recursive: true });
          idmappedBind(l, target, fd);
          mapped.push(target);
        }
        mountAll([{ type: 'overlay', source: 'overlay', options: [...rest, `lowerdir=${mapped.join(':')}`] }], rootfs);
      } catch (err) {
        removeMapped(base);
        throw err;
      }
      // The remapped root must reach its rootfs and the files bound into it (hostname, hosts, …).
      for (let p = dir; p !== path.dirname(p); p = path.dirname(p)) {
        const st = fs.statSync(p);
        if (st.mode & 0o001) continue;
        if (p === dir || p === path.dirname(dir)) fs.chmodSync(p, (st.mode & 0o7777) | 0o001);
        else throw new InvalidParameter(`a subdirectory in your graphroot path (${p}) restricts access to the remapped root uid/gid; please fix by allowing 'o+x' permissions on existing directories`);
      }
    },
    async teardown({ rootfs, dir }) {
      unmountAll(rootfs);
      removeMapped(lowerDir(dir));
    },
  };
}
