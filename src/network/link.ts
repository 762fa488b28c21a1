/**
 * Links and namespaces. A container's netns is a file under the exec root (bind-mounted), so it
 * outlives the daemon and can be found again from the record alone; it, its veths and the
 * networks' bridges are made with rtnetlink from the daemon itself (netlink.ts), no process;
 * only a bridge's deletion runs `ip` (see deleteLink).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SystemError } from '../errors.js';
import { MNT_DETACH, MS_BIND, mount, umount } from '../sys/index.js';
import { type VethRequest, addVethPair, ensureBridgeLink, loopbackUp, netnsSocket } from './netlink.js';

/** A bridge with the gateway address ("10.0.0.1/24"), up; idempotent (a bridge left by an earlier daemon is reused). */
export function ensureBridge(name: string, gatewayCidr: string, mtu: number): void {
  const [ip, bits] = gatewayCidr.split('/');
  ensureBridgeLink(name, ip!, Number(bits), mtu);
}

/**
 * Deletes a link (a bridge) of the daemon's namespace; absent is fine. By an `ip` process, not
 * netlink: the kernel holds the request for an RCU grace period (20–60 ms measured here), which
 * would stall the daemon; a bridge's creation takes no such wait and is done by netlink.
 */
export function deleteLink(name: string): Promise<void> {
  if (!fs.existsSync(`/sys/class/net/${name}`)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    execFile('ip', ['link', 'del', name], (err, _out, stderr) => {
      if (err && fs.existsSync(`/sys/class/net/${name}`)) reject(new SystemError(stderr.trim() || err.message));
      else resolve();
    });
  });
}

export type { VethRequest as VethSpec } from './netlink.js';

function bindMount(source: string, target: string): void {
  mount(source, target, null, MS_BIND, null);
}

/**
 * A new netns bind-mounted on `file` with lo up and the given veths; all or nothing. Synchronous,
 * like the netlink requests: each step is a few µs of kernel work, and a round trip through the
 * thread pool per step would cost more than the work on a loaded machine.
 */
export function createSandbox(file: string, veths: VethRequest[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o711 });
  fs.writeFileSync(file, '', { mode: 0o444 });
  let inside: number | null = null;
  try {
    inside = netnsSocket(file, true, bindMount);
    loopbackUp(inside);
    for (const v of veths) addVethPair(file, inside, v);
  } catch (err) {
    destroySandbox(file);
    throw err;
  } finally {
    if (inside !== null) fs.closeSync(inside);
  }
}

/** One more veth in an existing netns (network connect of a running container). */
export function addVeth(file: string, v: VethRequest): void {
  const inside = netnsSocket(file, false, bindMount);
  try {
    addVethPair(file, inside, v);
  } finally {
    fs.closeSync(inside);
  }
}

/**
 * What createSandbox does, for a netns made elsewhere (`existing`, a /proc/<pid>/ns/net): the
 * runtime's, inside a container's own user namespace, where a remapped root can mount sysfs and
 * exec can join it. The runtime brought lo up. All or nothing.
 */
export function adoptSandbox(file: string, existing: string, veths: VethRequest[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o711 });
  fs.writeFileSync(file, '', { mode: 0o444 });
  try {
    bindMount(existing, file);
    for (const v of veths) addVeth(file, v);
  } catch (err) {
    destroySandbox(file);
    throw err;
  }
}

/**
 * Unmounts and removes the netns file; idempotent. The kernel then frees the namespace (its last
 * reference was the mount: the container has exited) and the veths with it, asynchronously. Deleting
 * each veth here instead would block the daemon for an RCU grace period (20–40 ms) per link.
 */
export function destroySandbox(file: string): void {
  try {
    umount(file, MNT_DETACH);
  } catch {}
  fs.rmSync(file, { force: true });
}
