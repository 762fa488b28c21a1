/** Networks, endpoints and sandboxes as berth keeps them. */

export type Driver = 'bridge' | 'host' | 'null';
export type Proto = 'tcp' | 'udp' | 'sctp';

export interface IpamPool {
  Subnet: string;
  Gateway: string;
  IPRange?: string;
}

export interface NetworkRecord {
  id: string;
  name: string;
  driver: Driver;
  created: string;
  internal: boolean;
  attachable: boolean;
  labels: Record<string, string>;
  options: Record<string, string>;
  ipam: IpamPool[];
  /** The bridge device ("" for host and none). */
  bridge: string;
  mtu: number;
  /** Inter-container communication on this bridge. */
  icc: boolean;
  /** The default `bridge`, `host` and `none`: made by the daemon, never removed. */
  builtin: boolean;
}

/** What a container asked for on one network (Docker's EndpointSettings, the request part). */
export interface EndpointRequest {
  aliases: string[];
  ipv4: string;
  mac: string;
  links: string[];
}

/** A container's live endpoint on one network, from start to exit. */
export interface Endpoint {
  id: string;
  ip: string;
  prefixLen: number;
  gateway: string;
  mac: string;
  ifname: string;
  veth: string;
  /** What the network's DNS answers for it: name, short id, aliases (Docker's DNSNames). */
  names: string[];
  /** The container's --dns servers, where the embedded DNS forwards its other questions. */
  upstream: string[];
}

export interface Attachment {
  containerId: string;
  networkId: string;
  request: EndpointRequest;
  live: Endpoint | null;
}

export interface PortMapping {
  proto: Proto;
  containerPort: number;
  hostIp: string;
  hostPort: number;
}

/** The container's network stack while it runs. */
export interface Sandbox {
  containerId: string;
  /** The bind-mounted netns file. */
  netns: string;
  /** The container address ports are forwarded to. */
  target: string;
  ports: PortMapping[];
}
