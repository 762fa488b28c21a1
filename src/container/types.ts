/** Container records as berth keeps them: Docker's Config and HostConfig shapes, plus berth's state. */
import type { MountPoint, MountSpec } from '../volume/spec.js';

export type Status = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

/** Docker's container Config (the subset berth honours; unknown fields are kept as given). */
export interface ContainerConfig {
  Hostname: string;
  Domainname: string;
  User: string;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  Tty: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  Env: string[];
  Cmd: string[] | null;
  Entrypoint: string[] | null;
  Image: string;
  WorkingDir: string;
  Labels: Record<string, string>;
  StopSignal?: string;
  StopTimeout?: number;
  ExposedPorts?: Record<string, object>;
  Volumes?: Record<string, object> | null;
  Healthcheck?: HealthConfig;
  [extra: string]: unknown;
}

/** Docker's HealthConfig: durations in nanoseconds, 0 = the default (or the image's). */
export interface HealthConfig {
  /** [] inherit the image's; ["NONE"]; ["CMD", arg...]; ["CMD-SHELL", command]. */
  Test?: string[] | null;
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

/** One probe run, as inspect shows it in State.Health.Log. */
export interface HealthLogEntry {
  Start: string;
  End: string;
  ExitCode: number;
  Output: string;
}

/** Docker's State.Health. */
export interface Health {
  Status: HealthStatus;
  FailingStreak: number;
  Log: HealthLogEntry[];
}

/** Docker's HostConfig, only the fields berth implements (hostconfig.ts refuses the others). */
export interface HostConfig {
  AutoRemove: boolean;
  NetworkMode: string;
  Memory: number;
  MemorySwap: number;
  NanoCpus: number;
  CpuShares: number;
  CpuQuota: number;
  CpuPeriod: number;
  PidsLimit: number | null;
  /** Bytes of /dev/shm; 0 = Docker's default, 64 MiB. */
  ShmSize: number;
  /** Initial [height, width] of the container's TTY; [0, 0] = unset. */
  ConsoleSize: [number, number];
  Privileged: boolean;
  ReadonlyRootfs: boolean;
  CapAdd: string[] | null;
  CapDrop: string[] | null;
  /** `--storage-opt` (only `size` exists), given to the snapshotter at create. */
  StorageOpt?: Record<string, string>;
  RestartPolicy: { Name: string; MaximumRetryCount: number };
  LogConfig: { Type: string; Config: Record<string, string> };
  // Isolation and resources (container/isolation.ts); optional because older records lack them.
  SecurityOpt?: string[] | null;
  MaskedPaths?: string[] | null;
  ReadonlyPaths?: string[] | null;
  GroupAdd?: string[] | null;
  PidMode?: string;
  IpcMode?: string;
  UTSMode?: string;
  UsernsMode?: string;
  Ulimits?: Array<{ Name: string; Soft: number; Hard: number }>;
  Init?: boolean | null;
  OomScoreAdj?: number;
  OomKillDisable?: boolean;
  MemoryReservation?: number;
  CpusetCpus?: string;
  CpusetMems?: string;
  Devices?: Array<{ PathOnHost: string; PathInContainer: string; CgroupPermissions: string }>;
  DeviceCgroupRules?: string[] | null;
  /** Volumes, binds and tmpfs mounts as given (volume/spec.ts checks them; Container.mounts is what they became). */
  Binds?: string[] | null;
  Mounts?: MountSpec[];
  Tmpfs?: Record<string, string>;
  VolumesFrom?: string[] | null;
  VolumeDriver?: string;
  /** Published ports: "80/tcp" → host bindings (HostPort "" = any free port). */
  PortBindings?: Record<string, { HostIp?: string; HostPort?: string }[] | null>;
  PublishAllPorts?: boolean;
  Dns?: string[] | null;
  DnsSearch?: string[] | null;
  DnsOptions?: string[] | null;
  /** --add-host "name:ip" (ip may be host-gateway). */
  ExtraHosts?: string[] | null;
  /** --link "name:alias" (the default bridge only). */
  Links?: string[] | null;
}

export interface State {
  Status: Status;
  Pid: number;
  ExitCode: number;
  Error: string;
  OOMKilled: boolean;
  StartedAt: string;
  FinishedAt: string;
  /** Present once a container with a health check has started (health.ts). */
  Health?: Health;
}

export interface Container {
  id: string;
  name: string;           // without the leading "/"
  created: string;        // RFC3339Nano
  imageId: string;
  config: ContainerConfig;
  hostConfig: HostConfig;
  state: State;
  restartCount: number;
  /** Docker's HasBeenManuallyStopped: a stop or kill by the user keeps the restart policy from bringing it back. */
  manuallyStopped?: boolean;
  /** Path, args: what runs as PID 1 (Entrypoint + Cmd). */
  path: string;
  args: string[];
  logPath: string;
  hostnamePath: string;
  hostsPath: string;
  resolvConfPath: string;
  /** The mount table made at create (providers/volumes.ts): volumes, binds, --mount tmpfs. */
  mounts?: MountPoint[];
  /** Set with the removing state: the removal (or recovery finishing it) also removes anonymous volumes (`rm -v`). */
  removeVolumes?: boolean;
  /** The storage driver holding its snapshot (Docker's Driver): other drivers' daemons leave it hidden. */
  driver?: string;
}

export const ZERO_TIME = '0001-01-01T00:00:00Z';
