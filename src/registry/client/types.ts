/** Types shared by the registry client's modules (the public ones are re-exported by index.ts). */
export interface RegistryOptions {
  /** daemon.json registry-mirrors, e.g. "http://127.0.0.1:5001"; tried first for docker.io. */
  mirrors: string[];
  /** daemon.json insecure-registries: host[:port] or CIDR. Loopback is always allowed, as docker does. */
  insecure: string[];
}

/** Docker's X-Registry-Auth JSON. */
export interface AuthConfig {
  username?: string;
  password?: string;
  /** base64 "user:pass" */
  auth?: string;
  identitytoken?: string;
  registrytoken?: string;
  serveraddress?: string;
}

/** One of Docker's JSON progress messages (what `docker pull` draws its bars from). */
export interface JSONMessage {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  progress?: string;
  aux?: unknown;
  errorDetail?: { message: string };
  error?: string;
}

export type Progress = (m: JSONMessage) => void;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}
