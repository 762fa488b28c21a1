/**
 * Links and namespaces. A container's netns is a file under the exec root (bind-mounted), so it
 * outlives the daemon and can be found again from the record alone; it and its veths are made with
 * rtnetlink from the daemon itself (netlink.ts), no process per container. Bridges, which change
 * rarely, go through one batched `ip -batch -`.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SystemError } from '../errors.js';
import { MNT_DETACH, MS_BIND, mount, umount } from '../sys/index.js';
import { type VethRequest, addVethPair, loopbackUp, netnsSocket } from './netlink.js';

/** Runs `argv` with the lines on stdin; rejects with ip's own message when it fails. */
function batch(argv: string[], lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', (e) => reject(new SystemError(`${argv[0]}: ${e.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new SystemError(err.trim().split('\n').filter((l) => !/^Command failed/.test(l)).join('; ') || `${argv.join(' ')} exited ${code}`));
    });
    child.stdin.on('error', () => {});
    child.stdin.end(lines.join('\n') + '\n');
  });
}

export function ipHost(lines: string[], force = false): Promise<void> {
  return batch(['ip', ...(force ? ['-force'] : []), '-batch', '-'], lines);
}

export function linkExists(name: string): boolean {
  return fs.existsSync(`/sys/class/net/${name}`);
}

/** A bridge with the gateway address, up; idempotent (a bridge left by an earlier daemon is reused). */
export async function ensureBridge(name: string, gatewayCidr: string, mtu: number): Promise<void> {
  const lines = linkExists(name) ? [] : [`link add ${name} mtu ${mtu} type bridge`];
  lines.push(`addr replace ${gatewayCidr} dev ${name}`, `link set ${name} up`);
  await ipHost(lines);
}

export async function deleteLink(name: string): Promise<void> {
  if (linkExists(name)) await ipHost([`link del ${name}`]).catch((err) => {
    if (linkExists(name)) throw err;
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
