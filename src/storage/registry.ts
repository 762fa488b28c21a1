/**
 * Which snapshotter the daemon runs: `storage-driver` (daemon.json "storage-driver", `--storage-driver`)
 * names it; without a name, chooseDriver() picks the best one this host supports. Each driver keeps its
 * files under <data-root>/<driver>/ and its metadata in tables of its own in the daemon's database, so
 * switching drivers leaves the other driver's layers intact for when it is chosen again.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Database } from 'better-sqlite3';
import { InvalidParameter } from '../errors.js';
import * as sys from '../sys/index.js';
import type { Snapshotter } from './index.js';
import { OVERLAY_TABLES, openFuseOverlayfs, openOverlay2, onPath, quotaUnsupported } from './overlay2.js';
import { treeTable } from './tree.js';
import { openVfs } from './vfs.js';
import { openBtrfs } from './btrfs.js';
import { prepareOptionsOf } from './options.js';

export interface DriverOptions {
  /** `storage-opts`, "key=value" each; each driver names the keys it takes and refuses the others. */
  options?: string[];
}

type Opener = (root: string, db: Database, opts: DriverOptions) => Snapshotter;

/** The options as key → value, refusing any key the driver does not take (an ignored one would mislead). */
function parseOptions(driver: string, opts: DriverOptions, known: string[] = []): Map<string, string> {
  const out = new Map<string, string>();
  for (const o of opts.options ?? []) {
    const eq = o.indexOf('=');
    const key = (eq < 0 ? o : o.slice(0, eq)).trim().toLowerCase();
    if (!known.includes(key) || eq < 0) throw new InvalidParameter(`${driver}: unknown option ${key}`);
    out.set(key, o.slice(eq + 1).trim());
  }
  return out;
}

const noOptions = (driver: string, opts: DriverOptions): void => void parseOptions(driver, opts);

export const DRIVERS: Record<string, Opener> = {
  overlay2: (root, db, opts) => {
    // Docker's default container size: an xfs project quota, refused where --storage-opt size= is.
    if (parseOptions('overlay2', opts, ['overlay2.size']).has('overlay2.size')) {
      throw new InvalidParameter(`overlay2: Storage option overlay2.size not supported: it needs xfs mounted with pquota (${quotaUnsupported(root)})`);
    }
    return openOverlay2(root, db);
  },
  vfs: (root, db, opts) => {
    noOptions('vfs', opts);
    return openVfs(root, db);
  },
  btrfs: (root, db, opts) => {
    const o = parseOptions('btrfs', opts, ['btrfs.min_space']);
    const min = o.get('btrfs.min_space');
    return openBtrfs(root, db, { minSpace: min === undefined ? undefined : prepareOptionsOf({ size: min }).size });
  },
  'fuse-overlayfs': (root, db, opts) => {
    noOptions('fuse-overlayfs', opts);
    return openFuseOverlayfs(root, db);
  },
};

/** Drivers Docker has and this kernel cannot run: why, in words a user can act on. */
const UNAVAILABLE: Record<string, () => string> = {
  devicemapper: () =>
    `devicemapper needs the kernel's device-mapper with thin provisioning (dm_mod, dm_thin_pool)${fs.existsSync('/dev/mapper/control') ? '' : ': there is no /dev/mapper/control on this host'}, and Docker itself removed the driver in v25; berth does not implement it`,
  zfs: () =>
    `zfs needs the zfs kernel module and a zpool${hasFs('zfs') ? '' : ': zfs is not in /proc/filesystems on this host'}; berth does not implement it`,
  aufs: () =>
    `aufs needs the out-of-tree aufs kernel module${hasFs('aufs') ? '' : ': aufs is not in /proc/filesystems on this host'}, and Docker itself removed the driver in v24; berth does not implement it`,
};

function hasFs(name: string): boolean {
  try {
    return fs.readFileSync('/proc/filesystems', 'utf8').split('\n').some((l) => l.split('\t').pop() === name);
  } catch {
    return false;
  }
}

/** Throws the error a user gets for a driver name berth cannot run. */
export function checkDriverName(name: string): void {
  if (Object.hasOwn(DRIVERS, name)) return;
  if (Object.hasOwn(UNAVAILABLE, name)) throw new InvalidParameter(`error initializing graphdriver: ${UNAVAILABLE[name]!()}`);
  throw new InvalidParameter(`error initializing graphdriver: driver not supported: ${name} (supported: ${Object.keys(DRIVERS).join(', ')})`);
}

/** Open driver `name` under <dataRoot>/<name>; an unknown name fails with the list of those that exist. */
export function openSnapshotter(name: string, dataRoot: string, db: Database, opts: DriverOptions = {}): Snapshotter {
  checkDriverName(name);
  return DRIVERS[name]!(path.join(dataRoot, name), db, opts);
}

/** Where each driver records its snapshots' names: [table, name column], for asking without opening the driver. */
const NAME_COLUMNS: Record<string, [string, string][]> = {
  overlay2: [[OVERLAY_TABLES.overlay2.layers, 'chain_id'], [OVERLAY_TABLES.overlay2.snapshots, 'key']],
  'fuse-overlayfs': [[OVERLAY_TABLES['fuse-overlayfs'].layers, 'chain_id'], [OVERLAY_TABLES['fuse-overlayfs'].snapshots, 'key']],
  vfs: [[treeTable('vfs'), 'name']],
  btrfs: [[treeTable('btrfs'), 'name']],
};

/**
 * The drivers whose metadata holds every one of `names` (chain IDs of an image's layers, or a
 * container's snapshot key), read from the database alone: the driver may not open on this host
 * any more (btrfs off a btrfs data root), and its records still say what it owns.
 */
export function driversHolding(db: Database, names: string[]): string[] {
  const tables = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((r) => r.name));
  return Object.keys(NAME_COLUMNS).filter((driver) => {
    const cols = NAME_COLUMNS[driver]!.filter(([t]) => tables.has(t));
    if (cols.length === 0) return false;
    const has = cols.map(([t, c]) => db.prepare(`SELECT 1 FROM ${t} WHERE ${c} = ?`));
    return names.every((n) => has.some((q) => q.get(n) !== undefined));
  });
}

/** Can this process mount a kernel overlay on the filesystem of dir? Tried for real, and undone. */
function kernelOverlayWorks(dir: string): string | null {
  fs.mkdirSync(dir, { recursive: true });
  const probe = fs.mkdtempSync(path.join(dir, '.overlay-probe-'));
  const [lower, upper, work, merged] = ['l', 'u', 'w', 'm'].map((d) => path.join(probe, d));
  let mounted = false;
  try {
    for (const d of [lower, upper, work, merged]) fs.mkdirSync(d!);
    sys.mount('overlay', merged!, 'overlay', 0, `lowerdir=${lower},upperdir=${upper},workdir=${work}`);
    mounted = true;
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    if (mounted) sys.umount(merged!, sys.MNT_DETACH);
    fs.rmSync(probe, { recursive: true, force: true });
  }
}

/** A driver's folder holds layers or snapshots (not just the empty folders it makes when opened). */
function hasData(root: string): boolean {
  try {
    return fs.readdirSync(root, { withFileTypes: true }).some((e) => !e.isDirectory() || fs.readdirSync(path.join(root, e.name)).length > 0);
  } catch {
    return false;
  }
}

/**
 * The driver to use when none is named, and why: a driver that already has data here (as Docker keeps
 * its "prior storage driver"), else overlay2 where the kernel mounts overlays on the data root, else
 * fuse-overlayfs where its program and /dev/fuse exist, else vfs.
 */
export function chooseDriver(dataRoot: string): { name: string; reason: string } {
  const prior = Object.keys(DRIVERS).filter((d) => hasData(path.join(dataRoot, d)));
  if (prior.length === 1) return { name: prior[0]!, reason: `prior storage driver: ${path.join(dataRoot, prior[0]!)} holds its data` };
  const overlayError = kernelOverlayWorks(dataRoot);
  if (!overlayError) return { name: 'overlay2', reason: `the kernel mounts overlays on ${dataRoot}` };
  if (onPath('fuse-overlayfs') && fs.existsSync('/dev/fuse')) {
    return { name: 'fuse-overlayfs', reason: `kernel overlay mounts fail here (${overlayError}); fuse-overlayfs and /dev/fuse are present` };
  }
  return { name: 'vfs', reason: `kernel overlay mounts fail here (${overlayError}) and fuse-overlayfs or /dev/fuse is missing` };
}
