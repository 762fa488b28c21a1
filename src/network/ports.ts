/** Published ports: what HostConfig.PortBindings / PublishAllPorts ask for, checked as dockerd does. */
import { InvalidParameter } from '../errors.js';
import { ipToInt } from './ipam.js';
import type { PortMapping, Proto } from './types.js';

export type PortBindings = Record<string, { HostIp?: string; HostPort?: string }[] | null>;

export interface WantedPort {
  proto: Proto;
  containerPort: number;
  hostIp: string;
  /** Inclusive; [0, 0] = any free port. */
  hostPorts: [number, number];
}

/** "80/tcp" → [80, 'tcp']. */
export function parsePortKey(key: string): [number, Proto] {
  const m = /^(\d+)(?:\/(tcp|udp|sctp))?$/.exec(key.trim().toLowerCase());
  const port = m ? Number(m[1]) : NaN;
  if (!m || port < 1 || port > 65535) throw new InvalidParameter(`invalid port specification: "${key}"`);
  return [port, (m[2] ?? 'tcp') as Proto];
}

function hostPortRange(s: string | undefined): [number, number] {
  if (!s || s === '0') return [0, 0];
  const m = /^(\d+)(?:-(\d+))?$/.exec(s);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || lo < 1 || hi > 65535 || lo > hi) throw new InvalidParameter(`invalid port specification: "${s}"`);
  return [lo, hi];
}

/** Checks the bindings at create (bad input is a 400 before anything exists). */
export function checkPortBindings(bindings: PortBindings | undefined): void {
  for (const [key, list] of Object.entries(bindings ?? {})) {
    parsePortKey(key);
    for (const b of list ?? []) {
      hostPortRange(b.HostPort);
      if (b.HostIp && ipToInt(b.HostIp) === null) throw new InvalidParameter(`invalid host IP: "${b.HostIp}" (berth publishes on IPv4 only)`);
    }
  }
}

export function wantedPorts(bindings: PortBindings | undefined, publishAll: boolean, exposed: Record<string, object> | undefined): WantedPort[] {
  const out: WantedPort[] = [];
  const seen = new Set<string>();
  for (const [key, list] of Object.entries(bindings ?? {})) {
    const [containerPort, proto] = parsePortKey(key);
    seen.add(`${containerPort}/${proto}`);
    for (const b of list ?? []) out.push({ proto, containerPort, hostIp: b.HostIp || '0.0.0.0', hostPorts: hostPortRange(b.HostPort) });
  }
  if (publishAll) {
    for (const key of Object.keys(exposed ?? {})) {
      const [containerPort, proto] = parsePortKey(key);
      if (seen.has(`${containerPort}/${proto}`)) continue;
      out.push({ proto, containerPort, hostIp: '0.0.0.0', hostPorts: [0, 0] });
    }
  }
  return out;
}

/** NetworkSettings.Ports: every exposed or published port, with its host bindings (null = not published). */
export function portMap(mappings: PortMapping[], exposed: Record<string, object> | undefined): Record<string, { HostIp: string; HostPort: string }[] | null> {
  const out: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
  for (const key of Object.keys(exposed ?? {})) {
    const [port, proto] = parsePortKey(key);
    out[`${port}/${proto}`] = null;
  }
  for (const m of mappings) (out[`${m.containerPort}/${m.proto}`] ??= []).push({ HostIp: m.hostIp, HostPort: String(m.hostPort) });
  return out;
}
