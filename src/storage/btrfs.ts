/**
 * btrfs: each layer a subvolume, each child layer and container a snapshot of its parent's subvolume
 * (copy-on-write at the block level, so a snapshot costs metadata only). Needs the data root on a btrfs
 * filesystem and btrfs-progs (the `btrfs` program). A container's `--storage-opt size=` is a qgroup
 * limit on its subvolume (quotas are enabled on the filesystem the first time one is asked for).
 */
import { execFile as execFileCb, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Database } from 'better-sqlite3';
import { InvalidParameter } from '../errors.js';
import { backingFs, type Snapshotter } from './index.js';
import { TreeSnapshotter, type TreeBackend } from './tree.js';
import { removeTree } from './vfs.js';

const execFile = promisify(execFileCb);

/** btrfs gives the root directory of every subvolume inode number 256 (BTRFS_FIRST_FREE_OBJECTID). */
const SUBVOLUME_INO = 256;

async function btrfs(...args: string[]): Promise<string> {
  try {
    return (await execFile('btrfs', args)).stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new InvalidParameter('btrfs: the btrfs program is missing (install the Debian package btrfs-progs)');
    throw new Error(`btrfs ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** Are quotas on for the filesystem of root? (`qgroup show` fails when they are off.) */
function quotaEnabled(root: string): boolean {
  try {
    execFileSync('btrfs', ['qgroup', 'show', root], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface BtrfsOptions {
  /** `btrfs.min_space`: the least a container's `size=` may be (bytes). */
  minSpace?: number;
}

function backend(root: string, opts: BtrfsOptions): TreeBackend {
  let quota = quotaEnabled(root);
  return {
    driver: 'btrfs',
    dirName: 'subvolumes',
    async create(dir) {
      await btrfs('subvolume', 'create', dir);
    },
    async clone(src, dir) {
      await btrfs('subvolume', 'snapshot', src, dir);
    },
    async destroy(dir) {
      let st: fs.Stats;
      try {
        st = fs.lstatSync(dir);
      } catch {
        return;
      }
      // A crash can leave a plain directory where a subvolume was being made.
      if (st.ino !== SUBVOLUME_INO) return removeTree(dir);
      const id = quota ? (await btrfs('inspect-internal', 'rootid', dir)).trim() : '';
      await btrfs('subvolume', 'delete', dir);
      // Its qgroup outlives the subvolume unless destroyed too.
      if (id) await btrfs('qgroup', 'destroy', `0/${id}`, root).catch(() => {});
    },
    async limit(dir, bytes) {
      if (opts.minSpace !== undefined && bytes < opts.minSpace) {
        throw new InvalidParameter(`btrfs: storage size cannot be less than ${opts.minSpace} bytes (btrfs.min_space)`);
      }
      if (!quota) {
        await btrfs('quota', 'enable', root);
        quota = true;
      }
      await btrfs('qgroup', 'limit', String(bytes), dir);
    },
    status() {
      let version = '';
      try {
        version = execFileSync('btrfs', ['--version'], { encoding: 'utf8' }).trim();
      } catch {
        version = 'btrfs-progs not found';
      }
      return [['Btrfs', ''], ['Build Version', version], ['Quota', quota ? 'enabled' : 'enabled on the first --storage-opt size=']];
    },
  };
}

/** The btrfs snapshotter rooted at <data-root>/btrfs, which must be on a btrfs filesystem. */
export function openBtrfs(root: string, db: Database, opts: BtrfsOptions = {}): Snapshotter {
  const abs = path.resolve(root);
  const fsName = backingFs(abs).name;
  if (fsName !== 'btrfs') {
    throw new InvalidParameter(`error initializing graphdriver: prerequisites for driver not satisfied (wrong filesystem?): btrfs needs the data root on a btrfs filesystem; ${abs} is on ${fsName}`);
  }
  return new TreeSnapshotter(backend(abs, opts), abs, db);
}
