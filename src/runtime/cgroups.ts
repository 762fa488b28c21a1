/**
 * Host cgroup facts and the little cgroup work runc leaves to us: finding a
 * container's directories (v1: one per controller hierarchy; v2: one in the
 * unified tree), reading OOM kills, and removing directories after a delete.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fsType } from '../sys/index.js';

const CGROUP_ROOT = '/sys/fs/cgroup';
const CGROUP2_SUPER_MAGIC = 0x63677270;

let version: 1 | 2 | undefined;
export function cgroupVersion(): 1 | 2 {
  version ??= fsType(CGROUP_ROOT) === CGROUP2_SUPER_MAGIC ? 2 : 1;
  return version;
}

let memsw: boolean | undefined;
/** v1 kernels built without swap accounting lack memory.memsw.*; v2 has memory.swap.max when swap is accounted. */
export function hasMemsw(): boolean {
  if (memsw === undefined) {
    memsw = cgroupVersion() === 1
      ? fs.existsSync(path.join(CGROUP_ROOT, 'memory', 'memory.memsw.limit_in_bytes'))
      : fs.existsSync(path.join(CGROUP_ROOT, 'cgroup.controllers')) && swapOnV2();
  }
  return memsw;
}

function swapOnV2(): boolean {
  try {
    // Any non-root cgroup shows memory.swap.max when swap accounting is on; look at the first one.
    for (const e of fs.readdirSync(CGROUP_ROOT, { withFileTypes: true })) {
      if (e.isDirectory()) return fs.existsSync(path.join(CGROUP_ROOT, e.name, 'memory.swap.max'));
    }
  } catch { /* fall through */ }
  return false;
}

/** Every directory a cgroupfs path maps to: one per mounted v1 hierarchy, or the single v2 one. */
export function cgroupDirs(cgroupsPath: string): string[] {
  const rel = path.posix.normalize(`/${cgroupsPath}`).slice(1);
  if (!rel || rel.startsWith('..')) return [];
  if (cgroupVersion() === 2) return [path.join(CGROUP_ROOT, rel)];
  const dirs: string[] = [];
  const seen = new Set<string>();
  for (const h of v1Hierarchies()) {
    const real = fs.realpathSync(h);
    if (seen.has(real)) continue;   // cpu and cpuacct are often symlinks to one cpu,cpuacct mount
    seen.add(real);
    dirs.push(path.join(h, rel));
  }
  return dirs;
}

/** Every hierarchy under /sys/fs/cgroup, the hybrid layout's cgroup2 "unified" one included: runc makes a dir there too. */
function v1Hierarchies(): string[] {
  let names: fs.Dirent[];
  try { names = fs.readdirSync(CGROUP_ROOT, { withFileTypes: true }); } catch { return []; }
  return names
    .filter((e) => e.isDirectory() || e.isSymbolicLink())
    .map((e) => path.join(CGROUP_ROOT, e.name));
}

/** The memory controller directory of a container's cgroup. */
function memoryDir(cgroupsPath: string): string {
  const rel = path.posix.normalize(`/${cgroupsPath}`).slice(1);
  return cgroupVersion() === 2 ? path.join(CGROUP_ROOT, rel) : path.join(CGROUP_ROOT, 'memory', rel);
}

/** True if the kernel OOM-killed a process in this cgroup (v1 memory.oom_control oom_kill, v2 memory.events oom_kill). */
export function cgroupOomKilled(cgroupsPath: string): boolean {
  const dir = memoryDir(cgroupsPath);
  const file = cgroupVersion() === 2 ? 'memory.events' : 'memory.oom_control';
  try {
    const text = fs.readFileSync(path.join(dir, file), 'utf8');
    const m = /^oom_kill (\d+)$/m.exec(text);
    return m !== null && Number(m[1]) > 0;
  } catch {
    return false;
  }
}

/** rmdir the container's cgroup in every hierarchy; a missing directory is fine (runc usually removed it). */
export function removeCgroup(cgroupsPath: string): void {
  for (const dir of cgroupDirs(cgroupsPath)) rmdirQuiet(dir);
}

/** Remove <hierarchy>/<parent> wherever it is empty: for test clean-up and daemon shutdown. */
export function cgroupParentCleanup(parent: string): void {
  for (const dir of cgroupDirs(parent)) rmdirQuiet(dir);
}

function rmdirQuiet(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'EBUSY' && code !== 'ENOTEMPTY') throw err;
  }
}
