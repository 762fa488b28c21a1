/**
 * Docker's mount specifications, parsed and checked without side effects: `-v` strings
 * (HostConfig.Binds), `--mount` objects (HostConfig.Mounts), `--tmpfs` (HostConfig.Tmpfs) and
 * `--volumes-from` (HostConfig.VolumesFrom), with docker's messages for each mistake. What comes out
 * is a MountPoint without its volume resolved yet: container create makes or finds the volumes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InvalidParameter, NotFound } from '../errors.js';

export type MountType = 'volume' | 'bind' | 'tmpfs';

/** A container's mount as berth keeps it in the record; the first eight fields are docker's MountPoint. */
export interface MountPoint {
  Type: MountType;
  /** volume: its name. */
  Name?: string;
  /** bind: the host path; volume: the volume's mountpoint; tmpfs: "". */
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
  /** volume: given by name (`-v name:/p`, `--mount source=name`); the others go with `rm -v`. */
  Named?: boolean;
  /** volume: copy the image's content at Destination into it while it is empty. */
  CopyData?: boolean;
  /** volume: mount this directory of the volume (`volume-subpath`). */
  Subpath?: string;
  /** volume: labels and driver options for a volume that --mount creates. */
  VolumeLabels?: Record<string, string>;
  VolumeDriverOpts?: Record<string, string>;
  /** tmpfs: the mount data (size=, mode=, ro). */
  TmpfsData?: string;
  /** bind: make a missing source directory at start (`-v`, or CreateMountpoint). */
  CreateSource?: boolean;
  /** bind: `bind-recursive=disabled`. */
  NonRecursive?: boolean;
  /** bind, read-only: submounts stay writable (`bind-recursive=writable`); otherwise ro is recursive, as docker ≥ 25. */
  ReadOnlyNonRecursive?: boolean;
}

/** HostConfig.Mounts entries as the API carries them (docker's mount.Mount). */
export interface MountSpec {
  Type?: string;
  Source?: string;
  Target?: string;
  ReadOnly?: boolean;
  Consistency?: string;
  BindOptions?: { Propagation?: string; NonRecursive?: boolean; CreateMountpoint?: boolean; ReadOnlyNonRecursive?: boolean; ReadOnlyForceRecursive?: boolean } | null;
  VolumeOptions?: { NoCopy?: boolean; Labels?: Record<string, string> | null; Subpath?: string; DriverConfig?: { Name?: string; Options?: Record<string, string> | null } | null } | null;
  TmpfsOptions?: { SizeBytes?: number; Mode?: number; Options?: string[][] | null } | null;
  ImageOptions?: unknown;
}

export const PROPAGATION = ['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'];
const DEFAULT_PROPAGATION = 'rprivate';

/** Docker's linux mount modes: each of rw/ro, z/Z, a propagation, nocopy and a consistency at most once. */
function modeParts(mode: string): { rw: boolean; propagation?: string; nocopy: boolean; copySet: boolean } | null {
  const seen = { rw: 0, label: 0, prop: 0, copy: 0, cons: 0 };
  let rw = true;
  let propagation: string | undefined;
  let nocopy = false;
  for (const o of mode.split(',')) {
    if (o === 'rw' || o === 'ro') {
      seen.rw++;
      rw = o === 'rw';
    } else if (o === 'z' || o === 'Z') seen.label++;
    else if (PROPAGATION.includes(o)) {
      seen.prop++;
      propagation = o;
    } else if (o === 'nocopy') {
      seen.copy++;
      nocopy = true;
    } else if (o === 'consistent' || o === 'cached' || o === 'delegated') seen.cons++;
    else return null;
  }
  if (Object.values(seen).some((n) => n > 1)) return null;
  return { rw, propagation, nocopy, copySet: seen.copy > 0 };
}

export function validMode(mode: string): boolean {
  return modeParts(mode) !== null;
}

class MountConfigError extends InvalidParameter {
  constructor(type: string, why: string) {
    super(`invalid mount config for type ${JSON.stringify(type)}: ${why}`);
  }
}

function checkTarget(type: string, target: string | undefined): string {
  if (!target) throw new MountConfigError(type, 'field Target must not be empty');
  if (path.posix.normalize(target) === '/') throw new MountConfigError(type, "invalid specification: destination can't be '/'");
  if (!target.startsWith('/')) throw new MountConfigError(type, `invalid mount path: '${target}' mount path must be absolute`);
  return path.posix.normalize(target).replace(/(.)\/$/, '$1');
}

/** `-v SRC:DST[:MODE]` → a bind (absolute SRC) or a named volume. */
export function parseBind(raw: string, volumeDriver = ''): MountPoint {
  const invalid = () => new InvalidParameter(`invalid volume specification: '${raw}'`);
  if ((raw.match(/:/g) ?? []).length > 2) throw invalid();
  const arr = raw.split(':');
  if (arr[0] === '') throw invalid();
  let source = '';
  let target: string;
  let mode = '';
  if (arr.length === 1) target = arr[0]!;
  else if (arr.length === 2) {
    if (validMode(arr[1]!)) throw invalid();
    [source, target] = arr as [string, string];
  } else [source, target, mode] = arr as [string, string, string];
  const m = modeParts(mode || 'rw');
  if (mode && !m) throw new InvalidParameter(`invalid mode: ${mode}`);
  const type: MountType = source.startsWith('/') ? 'bind' : 'volume';
  let mp: MountPoint;
  try {
    mp = pointOf({
      Type: type,
      Source: source,
      Target: target,
      ReadOnly: !m!.rw,
      BindOptions: type === 'bind' && m!.propagation ? { Propagation: m!.propagation } : undefined,
      VolumeOptions: type === 'volume' && (m!.copySet || volumeDriver) ? { NoCopy: m!.nocopy, DriverConfig: volumeDriver ? { Name: volumeDriver } : undefined } : undefined,
    }, false);
  } catch (err) {
    throw new InvalidParameter(`invalid volume specification: '${raw}': ${(err as Error).message}`);
  }
  mp.Mode = mode;
  if (type === 'bind') mp.CreateSource = true;
  else if (!mode) mp.Mode = 'z';
  return mp;
}

function toOctal(n: number): string {
  return n.toString(8);
}

/** --mount type=tmpfs: docker's ConvertTmpfsOptions (size with the largest unit that divides it). */
function tmpfsData(opts: MountSpec['TmpfsOptions'], readOnly: boolean): string {
  const out: string[] = [];
  if (readOnly) out.push('ro');
  if (opts?.Mode) out.push(`mode=${toOctal(opts.Mode)}`);
  if (opts?.SizeBytes) {
    if (opts.SizeBytes < 0) throw new InvalidParameter(`invalid mount config for type "tmpfs": invalid tmpfs size ${opts.SizeBytes}`);
    let size = opts.SizeBytes;
    let suffix = '';
    for (const [s, d] of [['g', 1 << 30], ['m', 1 << 20], ['k', 1 << 10]] as const) {
      if (size % d === 0) {
        size /= d;
        suffix = s;
        break;
      }
    }
    out.push(`size=${size}${suffix}`);
  }
  for (const o of opts?.Options ?? []) out.push(o.join('='));
  return out.join(',');
}

/** docker's parseMountSpec + validateMountConfig for one mount.Mount. */
function pointOf(m: MountSpec, checkSourceExists: boolean): MountPoint {
  const type = m.Type ?? '';
  if (type === 'image') throw new InvalidParameter('--mount type=image is not supported yet');
  if (type !== 'bind' && type !== 'volume' && type !== 'tmpfs') {
    checkTarget(type, m.Target);
    throw new MountConfigError(type, 'mount type unknown');
  }
  const destination = checkTarget(type, m.Target);
  const ro = m.ReadOnly === true;
  switch (type) {
    case 'bind': {
      if (!m.Source) throw new MountConfigError(type, 'field Source must not be empty');
      const prop = m.BindOptions?.Propagation;
      if (prop && !PROPAGATION.includes(prop)) throw new MountConfigError(type, `invalid propagation mode: ${prop}`);
      if (m.VolumeOptions) throw new MountConfigError(type, 'field VolumeOptions must not be specified');
      if (m.TmpfsOptions) throw new MountConfigError(type, 'field TmpfsOptions must not be specified');
      if (m.BindOptions?.ReadOnlyNonRecursive && !ro) throw new MountConfigError(type, 'must not set ReadOnlyNonRecursive option without ReadOnly');
      if (m.BindOptions?.ReadOnlyForceRecursive && !ro) throw new MountConfigError(type, 'must not set ReadOnlyForceRecursive option without ReadOnly');
      if (m.BindOptions?.ReadOnlyNonRecursive && m.BindOptions.ReadOnlyForceRecursive) throw new MountConfigError(type, 'must not set both ReadOnlyNonRecursive and ReadOnlyForceRecursive');
      if (m.BindOptions?.NonRecursive && m.BindOptions.ReadOnlyForceRecursive) throw new MountConfigError(type, 'must not set both NonRecursive and ReadOnlyForceRecursive');
      if (!m.Source.startsWith('/')) throw new MountConfigError(type, `invalid mount path: '${m.Source}' mount path must be absolute`);
      const create = m.BindOptions?.CreateMountpoint === true;
      if (checkSourceExists && !create && !fs.existsSync(m.Source)) throw new MountConfigError(type, `bind source path does not exist: ${m.Source}`);
      return {
        Type: 'bind', Source: path.posix.normalize(m.Source), Destination: destination, Mode: '', RW: !ro, Propagation: prop || DEFAULT_PROPAGATION,
        ...(create ? { CreateSource: true } : {}),
        ...(m.BindOptions?.NonRecursive ? { NonRecursive: true } : {}),
        ...(m.BindOptions?.ReadOnlyNonRecursive ? { ReadOnlyNonRecursive: true } : {}),
      };
    }
    case 'volume': {
      if (m.BindOptions) throw new MountConfigError(type, 'field BindOptions must not be specified');
      if (m.TmpfsOptions) throw new MountConfigError(type, 'field TmpfsOptions must not be specified');
      const anonymous = !m.Source;
      const sub = m.VolumeOptions?.Subpath;
      if (sub) {
        if (anonymous) throw new MountConfigError(type, 'must not set Subpath when using anonymous volumes');
        const clean = path.posix.normalize(sub);
        if (sub.startsWith('/') || clean === '..' || clean.startsWith('../')) throw new MountConfigError(type, 'subpath must be a relative path within the volume');
      }
      if (ro && anonymous) throw new MountConfigError(type, 'must not set ReadOnly mode when using anonymous volumes');
      const driver = m.VolumeOptions?.DriverConfig?.Name || undefined;
      return {
        Type: 'volume', Name: m.Source || undefined, Source: '', Destination: destination, Driver: driver, Mode: 'z', RW: !ro, Propagation: '',
        Named: !anonymous, CopyData: m.VolumeOptions?.NoCopy !== true, Subpath: sub ? path.posix.normalize(sub) : undefined,
        VolumeLabels: m.VolumeOptions?.Labels ?? undefined, VolumeDriverOpts: m.VolumeOptions?.DriverConfig?.Options ?? undefined,
      };
    }
    case 'tmpfs': {
      if (m.BindOptions) throw new MountConfigError(type, 'field BindOptions must not be specified');
      if (m.VolumeOptions) throw new MountConfigError(type, 'field VolumeOptions must not be specified');
      if (m.Source) throw new MountConfigError(type, 'field Source must not be specified');
      return { Type: 'tmpfs', Source: '', Destination: destination, Mode: '', RW: !ro, Propagation: '', TmpfsData: tmpfsData(m.TmpfsOptions, ro) };
    }
  }
}

/** One HostConfig.Mounts entry (the bind source must exist, unlike with -v). */
export function parseMountSpec(m: MountSpec): MountPoint {
  if (typeof m !== 'object' || m === null) throw new InvalidParameter('invalid HostConfig.Mounts: want a list of mount objects');
  return pointOf(m, true);
}

const TMPFS_DATA_KEYS = new Set(['size', 'mode', 'uid', 'gid', 'nr_inodes', 'nr_blocks', 'mpol']);
const TMPFS_FLAGS = new Set([
  'ro', 'rw', 'suid', 'nosuid', 'dev', 'nodev', 'exec', 'noexec', 'sync', 'async', 'dirsync', 'remount', 'mand', 'nomand',
  'atime', 'noatime', 'diratime', 'nodiratime', 'relatime', 'norelatime', 'strictatime', 'nostrictatime',
  ...PROPAGATION, 'unbindable', 'runbindable',
]);

/** --tmpfs DST[:OPTS]: docker's checks on the destination and on each option. */
export function checkTmpfs(dest: string, data: string): void {
  if (path.posix.normalize(dest) === '/') throw new InvalidParameter("invalid specification: destination can't be '/'");
  if (!dest.startsWith('/')) throw new InvalidParameter(`invalid mount path: '${dest}' mount path must be absolute`);
  for (const o of data.split(',').filter(Boolean)) {
    if (TMPFS_FLAGS.has(o)) continue;
    const key = o.split('=')[0]!;
    if (!o.includes('=') || !TMPFS_DATA_KEYS.has(key)) throw new InvalidParameter(`Invalid tmpfs option [${o.split('=', 2).map((s) => JSON.stringify(s)).join(' ')}]`);
  }
}

/**
 * Docker's tmpfs mount options: noexec, nosuid, nodev and the default propagation, then the user's;
 * a later flag overrides its opposite (exec beats noexec) and a later key=value its earlier one.
 */
export function tmpfsOptions(data: string): string[] {
  const opposite: Record<string, string> = { exec: 'noexec', suid: 'nosuid', dev: 'nodev', rw: 'ro', atime: 'noatime', diratime: 'nodiratime', async: 'sync' };
  for (const [a, b] of Object.entries(opposite)) opposite[b] = a;
  const out: string[] = [];
  for (const o of ['noexec', 'nosuid', 'nodev', DEFAULT_PROPAGATION, ...data.split(',').filter(Boolean)]) {
    const key = o.includes('=') ? o.slice(0, o.indexOf('=') + 1) : o;
    const drop = (x: string) => x === o || (key.endsWith('=') && x.startsWith(key)) || x === opposite[o] || (PROPAGATION.includes(o) && PROPAGATION.includes(x));
    for (let i = out.length - 1; i >= 0; i--) if (drop(out[i]!)) out.splice(i, 1);
    out.push(o);
  }
  return out;
}

/** `--volumes-from NAME[:ro|rw]` → the container and whether its mounts stay writable. */
export function parseVolumesFrom(spec: string): { container: string; rw: boolean } {
  if (!spec) throw new InvalidParameter('volumes-from specification cannot be an empty string');
  const i = spec.indexOf(':');
  const container = i < 0 ? spec : spec.slice(0, i);
  const mode = i < 0 ? '' : spec.slice(i + 1);
  if (!mode) return { container, rw: true };
  const m = modeParts(mode);
  if (!m || m.propagation || m.copySet) throw new InvalidParameter(`invalid mode: ${mode}`);
  return { container, rw: m.rw };
}

/** The volume fields of a HostConfig, checked (no side effects) and kept as given, for create and inspect. */
export interface VolumeHostConfig {
  Binds: string[] | null;
  Mounts?: MountSpec[];
  Tmpfs?: Record<string, string>;
  VolumesFrom: string[] | null;
  VolumeDriver: string;
}

function stringList(raw: Record<string, unknown>, key: string): string[] | null {
  const v = raw[key];
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new InvalidParameter(`invalid HostConfig.${key}: want a list of strings`);
  return v.length ? (v as string[]) : null;
}

export function checkVolumeHostConfig(raw: Record<string, unknown>): VolumeHostConfig {
  const driver = typeof raw.VolumeDriver === 'string' ? raw.VolumeDriver : '';
  if (driver && driver !== 'local') throw new NotFound(`error looking up volume plugin ${driver}: plugin "${driver}" not found`);
  const binds = stringList(raw, 'Binds');
  const from = stringList(raw, 'VolumesFrom');
  const mounts = raw.Mounts ?? null;
  if (mounts !== null && !Array.isArray(mounts)) throw new InvalidParameter('invalid HostConfig.Mounts: want a list of mount objects');
  const tmpfs = raw.Tmpfs ?? null;
  if (tmpfs !== null && (typeof tmpfs !== 'object' || Array.isArray(tmpfs) || Object.values(tmpfs).some((x) => typeof x !== 'string'))) {
    throw new InvalidParameter('invalid HostConfig.Tmpfs: want a map of paths to option strings');
  }
  const seen = new Set<string>();
  const dup = (d: string) => {
    if (seen.has(d)) throw new InvalidParameter(`Duplicate mount point: ${d}`);
    seen.add(d);
  };
  for (const [d, data] of Object.entries((tmpfs ?? {}) as Record<string, string>)) {
    checkTmpfs(d, data);
    dup(path.posix.normalize(d));
  }
  for (const b of binds ?? []) {
    dup(parseBind(b, driver).Destination);
  }
  for (const m of (mounts ?? []) as MountSpec[]) dup(parseMountSpec(m).Destination);
  for (const f of from ?? []) parseVolumesFrom(f);
  const out: VolumeHostConfig = { Binds: binds, VolumesFrom: from, VolumeDriver: driver };
  if (mounts && (mounts as unknown[]).length) out.Mounts = mounts as MountSpec[];
  if (tmpfs && Object.keys(tmpfs).length) out.Tmpfs = tmpfs as Record<string, string>;
  return out;
}

/** Docker's MountPoint in container inspect and list: Name and Driver only for volumes. */
export function dockerMountPoint(m: MountPoint): Record<string, unknown> {
  return {
    Type: m.Type,
    ...(m.Name ? { Name: m.Name } : {}),
    Source: m.Source,
    Destination: m.Destination,
    ...(m.Driver ? { Driver: m.Driver } : {}),
    Mode: m.Mode,
    RW: m.RW,
    Propagation: m.Propagation,
  };
}
