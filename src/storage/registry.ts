/**
 * Which snapshotter the daemon runs: `storage-driver` (daemon.json "storage-driver") names it.
 * Each driver keeps its files under <data-root>/<driver>/ and its metadata in the daemon's database.
 */
import path from 'node:path';
import type { Database } from 'better-sqlite3';
import { InvalidParameter } from '../errors.js';
import type { Snapshotter } from './index.js';
import { openOverlay2 } from './overlay2.js';

export interface DriverOptions {
  /** `storage-opts`, "key=value" each; no driver takes any yet (the daemon's config refuses them). */
  options?: string[];
}

type Opener = (root: string, db: Database, opts: DriverOptions) => Snapshotter;

export const DRIVERS: Record<string, Opener> = {
  overlay2: (root, db) => openOverlay2(root, db),
};

/** Open driver `name` under <dataRoot>/<name>; an unknown name fails with the list of those that exist. */
export function openSnapshotter(name: string, dataRoot: string, db: Database, opts: DriverOptions = {}): Snapshotter {
  const open = Object.hasOwn(DRIVERS, name) ? DRIVERS[name] : undefined;
  if (!open) {
    throw new InvalidParameter(`error initializing graphdriver: driver not supported: ${JSON.stringify(name)} (supported: ${Object.keys(DRIVERS).join(', ')})`);
  }
  return open(path.join(dataRoot, name), db, opts);
}
