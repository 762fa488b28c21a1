/**
 * Links and namespaces through iproute2, one batched `ip -batch -` per side per change (a process
 * per step would cost more than the rest of `run`). A container's netns is a file under the exec
 * root bind-mounted by `unshare --net=FILE`, so it outlives the daemon and can be found again from
 * the record alone; the same process configures the inside (lo, eth0, route), and a second batch in
 * the host's namespace plugs the veth's other end into the bridge.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { SystemError } from '../errors.js';
import { MNT_DETACH, umount } from '../sys/index.js';

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

export interface VethSpec {
  /** Name inside the container (eth0, eth1, …). */
  ifname: string;
  /** Host end, plugged into the bridge. */
  veth: string;
  bridge: string;
  mac: string;
  cidr: string;
  /** Default route via this gateway (the container's first non-internal network). */
  gateway: string | null;
  mtu: number;
}

function insideLines(v: VethSpec): string[] {
  const lines = [
    // The host end goes straight to the daemon's namespace, named by its pid.
    `link add ${v.ifname} mtu ${v.mtu} address ${v.mac} type veth peer name ${v.veth} mtu ${v.mtu} netns /proc/${process.pid}/ns/net`,
    `addr add ${v.cidr} dev ${v.ifname}`,
    `link set ${v.ifname} up`,
  ];
  if (v.gateway) lines.push(`route add default via ${v.gateway} dev ${v.ifname}`);
  return lines;
}

function hostLines(v: VethSpec): string[] {
  return [`link set ${v.veth} master ${v.bridge} up`];
}

/** A new netns bind-mounted on `file` with lo up and the given veths; all or nothing. */
export async function createSandbox(file: string, veths: VethSpec[]): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o711 });
  await fsp.writeFile(file, '', { mode: 0o444 });
  try {
    await batch(['unshare', `--net=${file}`, 'ip', '-batch', '-'], ['link set lo up', ...veths.flatMap(insideLines)]);
    if (veths.length) await ipHost(veths.flatMap(hostLines));
  } catch (err) {
    await destroySandbox(file, veths.map((v) => v.veth));
    throw err;
  }
}

/** One more veth in an existing netns (network connect of a running container). */
export async function addVeth(file: string, v: VethSpec): Promise<void> {
  try {
    await batch(['nsenter', `--net=${file}`, 'ip', '-batch', '-'], insideLines(v));
    await ipHost(hostLines(v));
  } catch (err) {
    await deleteLink(v.veth).catch(() => {});
    throw err;
  }
}

/** Removes the veths (both ends go with the host end) and the netns file; idempotent. */
export async function destroySandbox(file: string, veths: string[]): Promise<void> {
  const present = veths.filter(linkExists);
  if (present.length) await ipHost(present.map((v) => `link del ${v}`), true).catch(() => {});
  try {
    umount(file, MNT_DETACH);
  } catch {}
  await fsp.rm(file, { force: true });
}
