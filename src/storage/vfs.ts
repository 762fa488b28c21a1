/**
 * vfs: every layer and container a full copy of its parent (a reflink copy where the filesystem can
 * share blocks). Works on any filesystem and needs no kernel feature: the reference the other drivers
 * are tested against.
 */
import { execFile as execFileCb } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Database } from 'better-sqlite3';
import type { Snapshotter } from './index.js';
import { TreeSnapshotter, type TreeBackend } from './tree.js';

const execFile = promisify(execFileCb);

/**
 * `rm -rf` in a child process: removing a tree entry by entry from Node costs the daemon a round trip per file.
 * A `cp` that a killed daemon started can outlive it and still be writing into the tree at recovery:
 * "Directory not empty" is then tried again until that copy has finished.
 */
export function removeTree(dir: string): Promise<void> {
  return removeTrees([dir]);
}

export async function removeTrees(dirs: readonly string[]): Promise<void> {
  if (!dirs.length) return;
  for (let attempt = 1; ; attempt++) {
    try {
      await execFile('rm', ['-rf', '--one-file-system', '--', ...dirs]);
      return;
    } catch (err) {
      if (attempt >= 50 || !/Directory not empty/.test(String((err as { stderr?: string }).stderr ?? ''))) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

const vfs: TreeBackend = {
  driver: 'vfs',
  dirName: 'dir',
  async create(dir) {
    fs.mkdirSync(dir, { mode: 0o755 });
  },
  async clone(src, dir) {
    // cp keeps owners, modes, times, xattrs, hard links and devices (-a); the daemon is one process per copy, not per file.
    await execFile('cp', ['-a', '--reflink=auto', '--', src, dir], { maxBuffer: 1 << 20 });
  },
  destroy: removeTree,
  status: () => [],
};

/** The vfs snapshotter rooted at <data-root>/vfs. */
export function openVfs(root: string, db: Database): Snapshotter {
  return new TreeSnapshotter(vfs, path.resolve(root), db);
}
