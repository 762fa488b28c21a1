/**
 * What docker's `local` volume driver does on the host: a directory <root>/<name>/_data, which
 * either is the volume's data itself or, with `-o type=… -o device=… [-o o=…]`, the mount point of
 * that filesystem (a tmpfs, a bind of a host directory, a block device), mounted while a container
 * uses the volume.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { InvalidParameter, SystemError } from '../errors.js';
import * as sys from '../sys/index.js';

const VALID_OPTS = new Set(['type', 'device', 'o', 'size']);
/** docker's local driver: an option that needs others beside it. */
const MANDATORY: Record<string, string[]> = { device: ['type'], type: ['device'], o: ['device', 'type'] };

/** Docker's checks on `-o` for the local driver, in its words. */
export function validateLocalOptions(opts: Record<string, string>): void {
  for (const k of Object.keys(opts)) if (!VALID_OPTS.has(k)) throw new InvalidParameter(`invalid option: ${JSON.stringify(k)}`);
  if ('size' in opts) throw new InvalidParameter('quota size requested but no quota support');
  for (const [k, needs] of Object.entries(MANDATORY)) {
    if (!(k in opts)) continue;
    for (const n of needs) if (!(n in opts)) throw new InvalidParameter(`missing required option: ${JSON.stringify(n)}`);
  }
}

/** mount(2) flags by the names mount(8) and docker's `o=` take; anything else goes to the filesystem as data. */
const FLAGS: Record<string, [set: boolean, flag: number]> = {
  ro: [true, 0x1], rw: [false, 0x1], nosuid: [true, 0x2], suid: [false, 0x2], nodev: [true, 0x4], dev: [false, 0x4],
  noexec: [true, 0x8], exec: [false, 0x8], sync: [true, 0x10], async: [false, 0x10], dirsync: [true, 0x80],
  noatime: [true, 0x400], atime: [false, 0x400], nodiratime: [true, 0x800], diratime: [false, 0x800],
  bind: [true, 0x1000], rbind: [true, 0x1000 | 0x4000], relatime: [true, 0x200000], norelatime: [false, 0x200000],
  strictatime: [true, 0x1000000], nostrictatime: [false, 0x1000000],
};

export function parseMountOptions(o: string): { flags: number; data: string } {
  let flags = 0;
  const data: string[] = [];
  for (const opt of o.split(',').filter(Boolean)) {
    const f = FLAGS[opt];
    if (!f) data.push(opt);
    else if (f[0]) flags |= f[1];
    else flags &= ~f[1];
  }
  return { flags, data: data.join(',') };
}

interface MountInfo { mountPoint: string; shared: boolean; slave: boolean }

function mountInfo(): MountInfo[] {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const unescape = (s: string) => s.replace(/\\(\d{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text.split('\n').filter(Boolean).map((line) => {
    const f = line.split(' ');
    const optional = f.slice(6, f.indexOf('-'));
    return { mountPoint: unescape(f[4] ?? ''), shared: optional.some((o) => o.startsWith('shared:')), slave: optional.some((o) => o.startsWith('master:')) };
  });
}

/** Whether `dir` is a mount point, from /proc/self/mountinfo (so it holds across daemon restarts). */
export function isMountPoint(dir: string): boolean {
  return mountInfo().some((m) => m.mountPoint === dir);
}

/** The mount a host path lives on (the last one mounted there wins), with its propagation. */
export function mountOf(p: string): MountInfo | null {
  let real: string;
  try {
    real = fs.realpathSync(p);
  } catch {
    return null;
  }
  let best: MountInfo | null = null;
  for (const m of mountInfo()) {
    const under = m.mountPoint === '/' || real === m.mountPoint || real.startsWith(m.mountPoint + '/');
    if (under && (!best || m.mountPoint.length >= best.mountPoint.length)) best = m;
  }
  return best;
}

/** Mounts the volume's filesystem on `dir` unless it is mounted already. */
export function mountLocal(dir: string, opts: Record<string, string>): void {
  if (!opts.type || isMountPoint(dir)) return;
  const { flags, data } = parseMountOptions(opts.o ?? '');
  const bind = (flags & 0x1000) !== 0;
  try {
    sys.mount(opts.device!, dir, bind ? null : opts.type, flags, data || null);
    // A read-only bind takes a second, remounting call (the kernel ignores MS_RDONLY on the first).
    if (bind && flags & 0x1) sys.mount('', dir, null, flags | sys.MS_REMOUNT, null);
  } catch (err) {
    try {
      if (isMountPoint(dir)) sys.umount(dir, sys.MNT_DETACH);
    } catch {}
    const code = err instanceof sys.SysError ? err.code : String(err);
    throw new SystemError(`error while mounting volume '${dir}': failed to mount local volume: mount ${opts.device}:${dir}, flags: 0x${flags.toString(16)}, data: ${data}: ${code}`);
  }
}

/** Unmounts whatever is stacked on dir; throws if something stays, so that no caller deletes through a mount. */
export function unmountLocal(dir: string): void {
  for (let i = 0; i < 16 && isMountPoint(dir); i++) {
    try {
      sys.umount(dir, 0);
    } catch (err) {
      if (err instanceof sys.SysError && err.code === 'EBUSY') sys.umount(dir, sys.MNT_DETACH);
      else if (!(err instanceof sys.SysError && (err.code === 'EINVAL' || err.code === 'ENOENT'))) throw err;
    }
  }
  // A bind of a host directory: deleting the volume through it would delete the host's files.
  if (isMountPoint(dir)) throw new SystemError(`${dir} is still mounted`);
}

/** Bytes of the regular files under dir, each inode once (what docker reports as a volume's size). */
export async function dirSize(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    let entries: fs.Dirent[];
    try {
      entries = await fsp.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const st = await fsp.lstat(p).catch(() => null);
        if (!st) continue;
        const key = `${st.dev}:${st.ino}`;
        if (st.nlink > 1 && seen.has(key)) continue;
        seen.add(key);
        total += st.size;
      }
    }
  };
  await walk(dir);
  return total;
}
