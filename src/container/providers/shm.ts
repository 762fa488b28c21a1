/** /dev/shm: a tmpfs of the container's own, HostConfig.ShmSize bytes (Docker's default 64 MiB). */
import type { Provider } from './index.js';

const DEFAULT_SHM = 64 * 1024 * 1024;

export function shmProvider(): Provider {
  return {
    name: 'shm',
    async setup({ container }) {
      const size = container.hostConfig.ShmSize || DEFAULT_SHM;
      return { mounts: [{ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${size}`] }] };
    },
    async teardown() {},
  };
}
