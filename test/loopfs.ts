/**
 * A filesystem in a loop file, for tests of drivers that need one (btrfs; xfs for overlay quotas):
 * made in a temp dir, mounted, and on release() unmounted (with every other mount of its device, such
 * as bind mounts a killed process left) and detached, also when the test failed.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface LoopFs {
  /** Where the filesystem is mounted. */
  dir: string;
  device: string;
  release(): void;
}

const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** Mount points of device, deepest first. */
function mountsOf(device: string): string[] {
  return fs.readFileSync('/proc/self/mounts', 'utf8').split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[0] === device)
    .map((f) => f[1]!.replace(/\\040/g, ' '))
    .sort((a, b) => b.length - a.length);
}

/** Released at exit too (the harness turns Ctrl-C and SIGTERM into process.exit), so an interrupted run leaves no loop device. */
const live = new Set<() => void>();
process.on('exit', () => {
  for (const release of [...live]) release();
});

export function makeLoopFs(kind: 'btrfs' | 'xfs' | 'ext4', sizeMiB: number, mountOptions: string[] = []): LoopFs {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `berth-loop-${kind}-`));
  const image = path.join(tmp, 'fs.img');
  const dir = path.join(tmp, 'mnt');
  fs.mkdirSync(dir);
  let device = '';
  const release = (): void => {
    live.delete(release);
    if (device) {
      for (const m of mountsOf(device)) {
        try {
          sh('umount', [m]);
        } catch {
          sh('umount', ['-l', m]);
        }
      }
      try {
        sh('losetup', ['-d', device]);
      } catch {
        // already detached (autoclear)
      }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  live.add(release);
  try {
    fs.writeFileSync(image, '');
    fs.truncateSync(image, sizeMiB * 2 ** 20);
    sh(`mkfs.${kind}`, kind === 'ext4' ? ['-q', image] : ['-q', image]);
    device = sh('losetup', ['-f', '--show', image]).trim();
    sh('mount', [...(mountOptions.length ? ['-o', mountOptions.join(',')] : []), device, dir]);
  } catch (err) {
    release();
    throw err;
  }
  return { dir, device, release };
}
