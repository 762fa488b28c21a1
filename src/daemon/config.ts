/**
 * Daemon configuration: /etc/berth/daemon.json (Docker's key names) overridden by
 * dockerd-style command-line flags. Unknown keys and bad values are start-up errors,
 * as in dockerd, so a typo never silently runs a daemon with defaults.
 */
import fs from 'node:fs';
import { InvalidParameter } from '../errors.js';
import { DRIVERS } from '../storage/registry.js';

export interface RuntimeEntry { path: string; runtimeArgs?: string[] }

export interface DaemonConfig {
  configFile: string;
  dataRoot: string;
  execRoot: string;
  hosts: string[];
  group: string;
  pidfile: string;
  storageDriver: string;
  storageOpts: string[];
  cgroupParent: string;
  bridge: string;
  bip: string;
  defaultRuntime: string;
  runtimes: Record<string, RuntimeEntry>;
  logDriver: string;
  logOpts: Record<string, string>;
  debug: boolean;
  registryMirrors: string[];
  insecureRegistries: string[];
  /** default-ulimits: Docker's {"nofile": {"Name": "nofile", "Soft": n, "Hard": n}}. */
  defaultUlimits: Record<string, { Name: string; Soft: number; Hard: number }>;
  /** seccomp-profile: a file in Docker's format, "unconfined", or "" / "builtin" for berth's default. */
  seccompProfile: string;
  /** userns-remap: "default" (user berth-remap… as dockerd's dockremap) or user[:group] with /etc/subuid and /etc/subgid ranges. */
  usernsRemap: string;
}

export const defaults: DaemonConfig = {
  configFile: '/etc/berth/daemon.json',
  dataRoot: '/var/lib/berth',
  execRoot: '/run/berth',
  hosts: ['unix:///run/berth/berth.sock'],
  group: 'berth',
  pidfile: '/run/berth/berthd.pid',
  storageDriver: 'overlay2',
  storageOpts: [],
  cgroupParent: 'berth',
  bridge: '',
  bip: '',
  defaultRuntime: 'runc',
  runtimes: {},
  logDriver: 'k8s-file',
  logOpts: {},
  debug: false,
  registryMirrors: [],
  insecureRegistries: [],
  defaultUlimits: {},
  seccompProfile: '',
  usernsRemap: '',
};

type Kind = 'string' | 'bool' | 'strings' | 'map' | 'runtimes' | 'ulimits';
/** daemon.json key → config field and type. */
const fileKeys: Record<string, [keyof DaemonConfig, Kind]> = {
  'data-root': ['dataRoot', 'string'],
  'exec-root': ['execRoot', 'string'],
  hosts: ['hosts', 'strings'],
  group: ['group', 'string'],
  pidfile: ['pidfile', 'string'],
  'storage-driver': ['storageDriver', 'string'],
  'storage-opts': ['storageOpts', 'strings'],
  'cgroup-parent': ['cgroupParent', 'string'],
  bridge: ['bridge', 'string'],
  bip: ['bip', 'string'],
  'default-runtime': ['defaultRuntime', 'string'],
  runtimes: ['runtimes', 'runtimes'],
  'log-driver': ['logDriver', 'string'],
  'log-opts': ['logOpts', 'map'],
  debug: ['debug', 'bool'],
  'registry-mirrors': ['registryMirrors', 'strings'],
  'insecure-registries': ['insecureRegistries', 'strings'],
  'default-ulimits': ['defaultUlimits', 'ulimits'],
  'seccomp-profile': ['seccompProfile', 'string'],
  'userns-remap': ['usernsRemap', 'string'],
};

/** Command-line flag → daemon.json key (flags share the file's validation). */
const flagKeys: Record<string, string> = {
  '--data-root': 'data-root',
  '--exec-root': 'exec-root',
  '-H': 'hosts',
  '--host': 'hosts',
  '--group': 'group',
  '-G': 'group',
  '--pidfile': 'pidfile',
  '-p': 'pidfile',
  '--storage-driver': 'storage-driver',
  '-s': 'storage-driver',
  '--storage-opt': 'storage-opts',
  '--cgroup-parent': 'cgroup-parent',
  '--bridge': 'bridge',
  '-b': 'bridge',
  '--bip': 'bip',
  '--default-runtime': 'default-runtime',
  '--log-driver': 'log-driver',
  '--debug': 'debug',
  '-D': 'debug',
  '--registry-mirror': 'registry-mirrors',
  '--insecure-registry': 'insecure-registries',
  '--default-ulimit': 'default-ulimits',
  '--seccomp-profile': 'seccomp-profile',
  '--userns-remap': 'userns-remap',
};

/** dockerd's --default-ulimit name=soft[:hard]. */
function parseUlimitFlag(v: string): Record<string, { Name: string; Soft: number; Hard: number }> {
  const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(v);
  if (!m) throw new InvalidParameter(`invalid ulimit argument: ${v}`);
  const soft = Number(m[2]);
  return { [m[1]]: { Name: m[1], Soft: soft, Hard: m[3] === undefined ? soft : Number(m[3]) } };
}

/** conmon writes every container log in k8s-file format; nothing else is implemented, so nothing else is accepted. */
export const supportedLogDrivers = ['k8s-file'];

function checkValue(key: string, kind: Kind, value: unknown): unknown {
  const bad = () => new InvalidParameter(`invalid configuration: "${key}" has a value of the wrong type: ${JSON.stringify(value)}`);
  switch (kind) {
    case 'string':
      if (typeof value !== 'string') throw bad();
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw bad();
      return value;
    case 'strings':
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw bad();
      return value;
    case 'map':
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad();
      for (const v of Object.values(value)) if (typeof v !== 'string') throw bad();
      return value;
    case 'ulimits': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad();
      for (const [name, u] of Object.entries(value as Record<string, unknown>)) {
        const x = u as { Name?: unknown; Soft?: unknown; Hard?: unknown };
        if (typeof x !== 'object' || x === null || typeof x.Soft !== 'number' || typeof x.Hard !== 'number') throw bad();
        if (x.Name !== undefined && x.Name !== name) throw bad();
      }
      return Object.fromEntries(Object.entries(value as Record<string, { Soft: number; Hard: number }>).map(([n, u]) => [n, { Name: n, Soft: u.Soft, Hard: u.Hard }]));
    }
    case 'runtimes': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad();
      for (const r of Object.values(value as Record<string, unknown>)) {
        if (typeof r !== 'object' || r === null || typeof (r as RuntimeEntry).path !== 'string') throw bad();
      }
      return value;
    }
  }
}

export function parseConfigFile(text: string, file: string): Partial<DaemonConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InvalidParameter(`unable to configure the berth daemon with file ${file}: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InvalidParameter(`unable to configure the berth daemon with file ${file}: not a JSON object`);
  }
  const out: Partial<DaemonConfig> = {};
  const unknown = Object.keys(raw).filter((k) => !(k in fileKeys));
  if (unknown.length) {
    throw new InvalidParameter(`the following directives don't match any configuration option: ${unknown.join(', ')}`);
  }
  for (const [key, value] of Object.entries(raw)) {
    const [field, kind] = fileKeys[key];
    (out as Record<string, unknown>)[field] = checkValue(key, kind, value);
  }
  return out;
}

export interface ParsedArgs { config: DaemonConfig; help: boolean; version: boolean }

/** Flags win over the file; giving one setting in both places is an error, as in dockerd. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): ParsedArgs {
  const fromFlags: Record<string, unknown> = {};
  let configFile = defaults.configFile;
  let explicitConfig = false;
  let help = false;
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (arg === '--help' || arg === '-h') { help = true; continue; }
    if (arg === '--version' || arg === '-v') { version = true; continue; }
    if (arg === '--config-file') {
      configFile = value ?? argv[++i];
      explicitConfig = true;
      continue;
    }
    const key = flagKeys[arg];
    if (!key) throw new InvalidParameter(`unknown flag: ${arg}`);
    const kind = fileKeys[key][1];
    if (kind === 'bool') {
      fromFlags[key] = value === undefined ? true : value === 'true';
      continue;
    }
    if (value === undefined) value = argv[++i];
    if (value === undefined) throw new InvalidParameter(`flag needs an argument: ${arg}`);
    if (kind === 'strings') fromFlags[key] = [...((fromFlags[key] as string[]) ?? []), value];
    else if (kind === 'ulimits') fromFlags[key] = { ...(fromFlags[key] as object), ...parseUlimitFlag(value) };
    else fromFlags[key] = value;
  }

  let fromFile: Partial<DaemonConfig> = {};
  if (fs.existsSync(configFile)) {
    fromFile = parseConfigFile(fs.readFileSync(configFile, 'utf8'), configFile);
  } else if (explicitConfig) {
    throw new InvalidParameter(`unable to configure the berth daemon with file ${configFile}: open ${configFile}: no such file or directory`);
  }
  const clash = Object.keys(fromFlags).filter((k) => (fileKeys[k][0] in fromFile));
  if (clash.length) {
    throw new InvalidParameter(
      `the following directives are specified both as a flag and in the configuration file: ${clash.map((k) => `${k}: (from flag: ${JSON.stringify(fromFlags[k])}, from file: ${JSON.stringify((fromFile as Record<string, unknown>)[fileKeys[k][0]])})`).join(', ')}`,
    );
  }
  const config: DaemonConfig = { ...defaults, ...fromFile, configFile };
  for (const [key, value] of Object.entries(fromFlags)) (config as unknown as Record<string, unknown>)[fileKeys[key][0]] = value;
  if (env.BERTH_DEBUG === '1') config.debug = true;

  // Derived defaults follow the exec root, so that a second daemon needs only --exec-root.
  if (!('hosts' in fromFlags) && !fromFile.hosts) config.hosts = [`unix://${config.execRoot}/berth.sock`];
  if (!('pidfile' in fromFlags) && !fromFile.pidfile) config.pidfile = `${config.execRoot}/berthd.pid`;

  if (!Object.hasOwn(DRIVERS, config.storageDriver)) {
    throw new InvalidParameter(`error initializing graphdriver: driver not supported: ${config.storageDriver} (supported: ${Object.keys(DRIVERS).join(', ')})`);
  }
  for (const key of ['bridge', 'bip'] as const) {
    if (config[key]) throw new InvalidParameter(`${key} is not supported yet: berth has no bridge networking yet`);
  }
  if (config.storageOpts.length) throw new InvalidParameter(`${config.storageDriver}: storage-opts are not supported yet: ${config.storageOpts.join(', ')}`);
  if (!supportedLogDrivers.includes(config.logDriver)) {
    throw new InvalidParameter(`logger: no log driver named '${config.logDriver}' is registered`);
  }
  const logOpts = Object.keys(config.logOpts);
  if (logOpts.length) {
    throw new InvalidParameter(`unknown log opt '${logOpts[0]}' for ${config.logDriver} log driver`);
  }
  for (const h of config.hosts) {
    if (!h.startsWith('unix://')) throw new InvalidParameter(`invalid host "${h}": only unix:// sockets are supported`);
  }
  for (const m of config.registryMirrors) {
    if (!/^https?:\/\/[^/]+\/?$/.test(m)) throw new InvalidParameter(`invalid mirror: "${m}" is not a valid URI (want http(s)://host[:port])`);
  }
  return { config, help, version };
}
