/**
 * The userland proxy: for each published port a listener in berthd on the host address and port
 * that relays to the container's address (with userland-proxy: false it only holds the port). It is what makes the host's loopback work (DNAT does not
 * apply to 127.0.0.0/8 traffic), and holding the port is how a conflict is found: a port someone
 * else has bound fails here, before the container starts. TCP relays each connection; UDP keeps
 * one upstream socket per client address, closed after a minute without traffic.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { SystemError } from '../errors.js';

export interface ProxySpec {
  proto: 'tcp' | 'udp';
  /** false (userland-proxy: false): the port is only held, for conflicts; DNAT carries the traffic, loopback too. */
  relay: boolean;
  hostIp: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

export interface Proxy {
  /** The bound port (the kernel's choice when hostPort was 0). */
  readonly port: number;
  close(): Promise<void>;
}

const UDP_IDLE_MS = 60_000;

export class PortInUse extends SystemError {}

function bindError(spec: ProxySpec, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const where = `${spec.hostIp || '0.0.0.0'}:${spec.hostPort}`;
  if (code === 'EADDRINUSE') return new PortInUse(`Bind for ${where} failed: port is already allocated`);
  return new SystemError(`listen ${spec.proto} ${where}: ${(err as Error).message}`);
}

async function tcpProxy(spec: ProxySpec): Promise<Proxy> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (!spec.relay) return void client.destroy();
    const upstream = net.connect(spec.containerPort, spec.containerIp);
    sockets.add(client).add(upstream);
    const done = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(bindError(spec, e)));
    server.listen({ host: spec.hostIp || '0.0.0.0', port: spec.hostPort, exclusive: true }, () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

async function udpProxy(spec: ProxySpec): Promise<Proxy> {
  const sock = dgram.createSocket({ type: 'udp4' });
  const flows = new Map<string, { up: dgram.Socket; timer: NodeJS.Timeout }>();
  const drop = (key: string) => {
    const f = flows.get(key);
    if (!f) return;
    clearTimeout(f.timer);
    f.up.close();
    flows.delete(key);
  };
  sock.on('message', (msg, rinfo) => {
    if (!spec.relay) return;
    const key = `${rinfo.address}:${rinfo.port}`;
    let f = flows.get(key);
    if (!f) {
      const up = dgram.createSocket('udp4');
      up.on('message', (reply) => sock.send(reply, rinfo.port, rinfo.address));
      up.on('error', () => drop(key));
      f = { up, timer: setTimeout(() => drop(key), UDP_IDLE_MS) };
      flows.set(key, f);
    }
    f.timer.refresh();
    f.up.send(msg, spec.containerPort, spec.containerIp);
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', (e) => reject(bindError(spec, e)));
    sock.bind({ address: spec.hostIp || '0.0.0.0', port: spec.hostPort, exclusive: true }, () => resolve());
  });
  sock.on('error', () => {});
  return {
    port: sock.address().port,
    close: async () => {
      for (const k of [...flows.keys()]) drop(k);
      await new Promise<void>((r) => sock.close(() => r()));
    },
  };
}

export function openProxy(spec: ProxySpec): Promise<Proxy> {
  return spec.proto === 'udp' ? udpProxy(spec) : tcpProxy(spec);
}
