/**
 * /dev/shm that another container can share: a container with --ipc shareable gets a tmpfs mounted
 * on the host (<dir>/shm) instead of one inside its own mount namespace, so a container that joins
 * its IPC namespace (--ipc container:<id>) can bind the same /dev/shm (isolation.ts binds it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { mountAll, unmountAll } from '../../storage/index.js';
import type { Provider } from './index.js';

const DEFAULT_SHM = 64 * 1024 * 1024;

/** The host directory holding a shareable container's /dev/shm. */
export function sharedShmDir(containerDir: string): string {
  return path.join(containerDir, 'shm');
}

export function ipcProvider(): Provider {
  return {
    name: 'ipc',
    async setup({ container, dir }) {
      if (container.hostConfig.IpcMode !== 'shareable') return;
      const target = sharedShmDir(dir);
      fs.mkdirSync(target, { recursive: true, mode: 0o700 });
      const size = container.hostConfig.ShmSize || DEFAULT_SHM;
      mountAll([{ type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${size}`] }], target);
    },
    async teardown({ dir }) {
      const target = sharedShmDir(dir);
      unmountAll(target);
      fs.rmSync(target, { recursive: true, force: true });
    },
  };
}
