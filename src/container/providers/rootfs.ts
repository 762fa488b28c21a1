/** The container's snapshot, mounted on <dir>/rootfs for the runtime. */
import { type Snapshotter, mountAll, unmountAll } from '../../storage/index.js';
import type { Provider } from './index.js';

export function rootfsProvider(storage: Snapshotter): Provider {
  return {
    name: 'rootfs',
    async setup({ container, rootfs }) {
      mountAll(storage.mounts(container.id), rootfs);
    },
    async teardown({ rootfs }) {
      unmountAll(rootfs);
    },
  };
}
