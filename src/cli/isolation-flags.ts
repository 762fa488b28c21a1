/**
 * run/create flags for isolation and resources, parsed as the docker CLI does: --security-opt
 * (a seccomp=<file> is read and sent as compact JSON, systempaths=unconfined empties the masked
 * and read-only path lists), --ulimit, --device, namespaces, groups, cpuset, OOM.
 */
import { readFileSync } from 'node:fs';
import type { FlagSpec, Parsed } from './flags.js';
import { FlagError } from './flags.js';
import { ramInBytes } from './format.js';

export const isolationFlags: FlagSpec[] = [
  { long: 'cpuset-cpus', kind: 'string', help: 'CPUs in which to allow execution (0-3, 0,1)' },
  { long: 'cpuset-mems', kind: 'string', help: 'MEMs in which to allow execution (0-3, 0,1)' },
  { long: 'device', kind: 'list', help: 'Add a host device to the container' },
  { long: 'device-cgroup-rule', kind: 'list', help: 'Add a rule to the cgroup allowed devices list' },
  { long: 'group-add', kind: 'list', help: 'Add additional groups to join' },
  { long: 'ipc', kind: 'string', help: 'IPC mode to use' },
  { long: 'memory-reservation', kind: 'string', type: 'bytes', help: 'Memory soft limit' },
  { long: 'oom-kill-disable', kind: 'bool', help: 'Disable OOM Killer' },
  { long: 'oom-score-adj', kind: 'int', help: "Tune host's OOM preferences (-1000 to 1000)" },
  { long: 'pid', kind: 'string', help: 'PID namespace to use' },
  { long: 'security-opt', kind: 'list', help: 'Security Options' },
  { long: 'ulimit', kind: 'list', type: 'ulimit', help: 'Ulimit options' },
  { long: 'userns', kind: 'string', help: 'User namespace to use' },
  { long: 'uts', kind: 'string', help: 'UTS namespace to use' },
];

function ulimit(v: string): { Name: string; Soft: number; Hard: number } {
  const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(v);
  if (!m) throw new FlagError(`invalid argument "${v}" for "--ulimit" flag: invalid ulimit argument: ${v}`);
  const soft = Number(m[2]);
  const hard = m[3] === undefined ? soft : Number(m[3]);
  if (hard >= 0 && soft > hard) throw new FlagError(`invalid argument "${v}" for "--ulimit" flag: ulimit soft limit must be less than or equal to hard limit: ${soft} > ${hard}`);
  return { Name: m[1]!, Soft: soft, Hard: hard };
}

function device(v: string): { PathOnHost: string; PathInContainer: string; CgroupPermissions: string } {
  const parts = v.split(':');
  const perms = parts.length > 1 && /^[rwm]{1,3}$/.test(parts[parts.length - 1]!) ? parts.pop()! : 'rwm';
  if (parts.length > 2 || !parts[0]) throw new FlagError(`invalid argument "${v}" for "--device" flag: invalid device specification: ${v}`);
  return { PathOnHost: parts[0], PathInContainer: parts[1] ?? parts[0], CgroupPermissions: perms };
}

/** --security-opt as the docker CLI sends it. */
function securityOpts(opts: string[], host: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const o of opts) {
    const eq = o.indexOf('=');
    const key = eq < 0 ? o : o.slice(0, eq);
    const value = eq < 0 ? '' : o.slice(eq + 1);
    if (key === 'systempaths' && value === 'unconfined') {
      host.MaskedPaths = [];
      host.ReadonlyPaths = [];
      continue;
    }
    if (key === 'seccomp' && value !== 'unconfined' && value !== 'builtin') {
      let text: string;
      try {
        text = readFileSync(value, 'utf8');
      } catch (e) {
        throw new FlagError(`opening seccomp profile (${value}) failed: ${(e as Error).message}`);
      }
      try {
        out.push(`seccomp=${JSON.stringify(JSON.parse(text))}`);
      } catch (e) {
        throw new FlagError(`compacting json for seccomp profile (${value}) failed: ${(e as Error).message}`);
      }
      continue;
    }
    out.push(o);
  }
  return out;
}

/** Adds these flags' HostConfig fields to `host`. */
export function applyIsolationFlags(p: Parsed, host: Record<string, unknown>): void {
  const sec = securityOpts(p.list('security-opt'), host);
  if (sec.length) host.SecurityOpt = sec;
  if (p.list('group-add').length) host.GroupAdd = p.list('group-add');
  if (p.list('ulimit').length) host.Ulimits = p.list('ulimit').map(ulimit);
  if (p.list('device').length) host.Devices = p.list('device').map(device);
  if (p.list('device-cgroup-rule').length) host.DeviceCgroupRules = p.list('device-cgroup-rule');
  for (const [flag, field] of [['pid', 'PidMode'], ['ipc', 'IpcMode'], ['uts', 'UTSMode'], ['userns', 'UsernsMode'], ['cpuset-cpus', 'CpusetCpus'], ['cpuset-mems', 'CpusetMems']] as const) {
    const v = p.str(flag);
    if (v !== undefined) host[field] = v;
  }
  if (p.has('memory-reservation')) {
    try {
      host.MemoryReservation = ramInBytes(p.str('memory-reservation')!);
    } catch (e) {
      throw new FlagError(`invalid argument "${p.str('memory-reservation')}" for "--memory-reservation" flag: ${(e as Error).message}`);
    }
  }
  if (p.bool('oom-kill-disable')) host.OomKillDisable = true;
  if (p.has('oom-score-adj')) host.OomScoreAdj = p.int('oom-score-adj');
}
