/**
 * run, create, start, pull: the commands that create containers, fetch images
 * and attach to a container's stdio.
 *
 * run's order is docker's: create (pull on "No such image", then create again),
 * attach (before start, so no output is lost), wait?condition=next-exit|removed
 * (before start, so a fast exit is not missed), start, resize, then drain output
 * and exit with the container's status code.
 */
import { spawnSync } from 'node:child_process';
import { registryAuthHeader } from '../credentials.js';
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Command, Ctx } from '../command.js';
import { StatusError } from '../command.js';
import type { FlagSpec, Parsed } from '../flags.js';
import { parseEnvFile } from '../flags.js';
import { ramInBytes } from '../format.js';
import { ApiError, ConnectError, Demuxer } from '../http.js';
import { displayJsonMessages, StreamError } from '../progress.js';
import { familiarTagged, fullName, parseRef } from '../ref.js';
import { parseGoDuration } from '../../util/duration.js';

export const createFlags: FlagSpec[] = [
  { long: 'add-host', kind: 'list', help: 'Add a custom host-to-IP mapping (host:ip)' },
  { long: 'attach', short: 'a', kind: 'list', help: 'Attach to STDIN, STDOUT or STDERR' },
  { long: 'cap-add', kind: 'list', help: 'Add Linux capabilities' },
  { long: 'cap-drop', kind: 'list', help: 'Drop Linux capabilities' },
  { long: 'cpu-shares', short: 'c', kind: 'int', help: 'CPU shares (relative weight)' },
  { long: 'cpus', kind: 'string', type: 'decimal', help: 'Number of CPUs' },
  { long: 'dns', kind: 'list', help: 'Set custom DNS servers' },
  { long: 'domainname', kind: 'string', help: 'Container NIS domain name' },
  { long: 'entrypoint', kind: 'string', help: 'Overwrite the default ENTRYPOINT of the image' },
  { long: 'env', short: 'e', kind: 'list', help: 'Set environment variables' },
  { long: 'env-file', kind: 'list', help: 'Read in a file of environment variables' },
  { long: 'expose', kind: 'list', help: 'Expose a port or a range of ports' },
  { long: 'health-cmd', kind: 'string', help: 'Command to run to check health' },
  { long: 'health-interval', kind: 'string', type: 'duration', help: 'Time between running the check (ms|s|m|h) (default 0s)' },
  { long: 'health-retries', kind: 'int', help: 'Consecutive failures needed to report unhealthy' },
  { long: 'health-start-interval', kind: 'string', type: 'duration', help: 'Time between running the check during the start period (ms|s|m|h) (default 0s)' },
  { long: 'health-start-period', kind: 'string', type: 'duration', help: 'Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)' },
  { long: 'health-timeout', kind: 'string', type: 'duration', help: 'Maximum time to allow one check to run (ms|s|m|h) (default 0s)' },
  { long: 'hostname', short: 'h', kind: 'string', help: 'Container host name' },
  { long: 'init', kind: 'bool', help: 'Run an init inside the container that forwards signals and reaps processes' },
  { long: 'interactive', short: 'i', kind: 'bool', help: 'Keep STDIN open even if not attached' },
  { long: 'label', short: 'l', kind: 'list', help: 'Set meta data on a container' },
  { long: 'memory', short: 'm', kind: 'string', type: 'bytes', help: 'Memory limit' },
  { long: 'name', kind: 'string', help: 'Assign a name to the container' },
  { long: 'network', kind: 'string', type: 'network', help: 'Connect a container to a network' },
  { long: 'no-healthcheck', kind: 'bool', help: 'Disable any container-specified HEALTHCHECK' },
  { long: 'net', kind: 'string', type: 'network', help: 'Connect a container to a network (alias of --network)' },
  { long: 'pids-limit', kind: 'int', help: 'Tune container pids limit (set -1 for unlimited)' },
  { long: 'platform', kind: 'string', help: 'Set platform if server is multi-platform capable' },
  { long: 'privileged', kind: 'bool', help: 'Give extended privileges to this container' },
  { long: 'publish', short: 'p', kind: 'list', help: "Publish a container's port(s) to the host" },
  { long: 'publish-all', short: 'P', kind: 'bool', help: 'Publish all exposed ports to random ports' },
  { long: 'pull', kind: 'string', help: 'Pull image before running ("always", "missing", "never")', default: 'missing' },
  { long: 'quiet', short: 'q', kind: 'bool', help: 'Suppress the pull output' },
  { long: 'read-only', kind: 'bool', help: "Mount the container's root filesystem as read only" },
  { long: 'restart', kind: 'string', help: 'Restart policy to apply when a container exits', default: 'no' },
  { long: 'rm', kind: 'bool', help: 'Automatically remove the container and its associated anonymous volumes when it exits' },
  { long: 'shm-size', kind: 'string', type: 'bytes', help: 'Size of /dev/shm' },
  { long: 'stop-signal', kind: 'string', help: 'Signal to stop the container' },
  { long: 'stop-timeout', kind: 'int', help: 'Timeout (in seconds) to stop a container' },
  { long: 'tmpfs', kind: 'list', help: 'Mount a tmpfs directory' },
  { long: 'tty', short: 't', kind: 'bool', help: 'Allocate a pseudo-TTY' },
  { long: 'user', short: 'u', kind: 'string', help: 'Username or UID (format: <name|uid>[:<group|gid>])' },
  { long: 'volume', short: 'v', kind: 'list', help: 'Bind mount a volume' },
  { long: 'workdir', short: 'w', kind: 'string', help: 'Working directory inside the container' },
];

export const runFlags: FlagSpec[] = ([
  ...createFlags,
  { long: 'detach', short: 'd', kind: 'bool', help: 'Run container in background and print container ID' },
  { long: 'detach-keys', kind: 'string', help: 'Override the key sequence for detaching a container' },
  { long: 'sig-proxy', kind: 'bool', help: 'Proxy received signals to the process', default: 'true' },
] as FlagSpec[]).sort((a, b) => a.long.localeCompare(b.long));

export interface CreateRequest {
  image: string;
  pull: 'missing' | 'always' | 'never';
  platform?: string;
  name?: string;
  quiet: boolean;
  body: Record<string, unknown>;
  attach: { stdin: boolean; stdout: boolean; stderr: boolean };
  tty: boolean;
  autoRemove: boolean;
}

const bad = (msg: string): never => {
  throw new StatusError(msg, 125);
};

/** A flag whose value does not parse: docker prints it with the usage line (exit 125). */
export class FlagValueError extends StatusError {
  constructor(message: string) {
    super(message, 125);
  }
}

function parsePorts(specs: string[], exposed: Record<string, object>, bindings: Record<string, Array<{ HostIp: string; HostPort: string }>>): void {
  for (const spec of specs) {
    let rest = spec;
    let proto = 'tcp';
    const slash = rest.lastIndexOf('/');
    if (slash >= 0) {
      proto = rest.slice(slash + 1).toLowerCase();
      rest = rest.slice(0, slash);
    }
    // ip may be an IPv6 literal in brackets
    let ip = '';
    const m = /^\[([^\]]+)\]:(.*)$/.exec(rest);
    if (m) {
      ip = m[1];
      rest = m[2];
    }
    const parts = rest.split(':');
    if (!m && parts.length === 3) ip = parts.shift() as string;
    if (parts.length > 2) bad(`invalid port format for --publish: ${spec}`);
    const container = parts[parts.length - 1];
    const host = parts.length === 2 ? parts[0] : '';
    const range = (s: string): [number, number] => {
      const r = /^(\d+)(?:-(\d+))?$/.exec(s);
      if (!r) return bad(`invalid containerPort: ${s}`);
      return [Number(r[1]), Number(r[2] ?? r[1])];
    };
    const [c0, c1] = range(container);
    const [h0, h1] = host ? range(host) : [0, 0];
    if (!['tcp', 'udp', 'sctp'].includes(proto)) bad(`invalid proto: ${proto}`);
    for (let p = c0; p <= c1; p++) {
      const key = `${p}/${proto}`;
      exposed[key] = {};
      const hp = !host ? '' : h0 === h1 ? String(h0) : String(h0 + (p - c0));
      (bindings[key] ??= []).push({ HostIp: ip, HostPort: hp });
    }
  }
}

function parseRestart(s: string): { Name: string; MaximumRetryCount: number } {
  const [name, count] = s.split(':');
  if (count !== undefined && name !== 'on-failure') bad(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
  if (count !== undefined && !/^\d+$/.test(count)) bad(`invalid restart policy: strconv.Atoi: parsing "${count}": invalid syntax`);
  return { Name: name === '' ? 'no' : name, MaximumRetryCount: count ? Number(count) : 0 };
}

/** -e and --env-file, docker's way (run, create, exec). */
export function envOf(p: Parsed, env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  for (const file of p.list('env-file')) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      return bad(`open ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
    }
    try {
      out.push(...parseEnvFile(text, env));
    } catch (e) {
      bad((e as Error).message);
    }
  }
  for (const e of p.list('env')) {
    if (e.startsWith('=')) bad(`invalid environment variable: ${e}`);
    if (!e.includes('=') && env[e] !== undefined) out.push(`${e}=${env[e]}`);
    else out.push(e);
  }
  return out;
}

/** A --health-* duration in nanoseconds; 0 when not given. */
function healthDuration(p: Parsed, flag: string): number {
  const v = p.str(flag);
  if (v === undefined) return 0;
  try {
    return parseGoDuration(v);
  } catch (e) {
    throw new FlagValueError(`invalid argument "${v}" for "--${flag}" flag: ${(e as Error).message}`);
  }
}

/** --health-* and --no-healthcheck, as the docker CLI turns them into Config.Healthcheck. */
function healthcheckOf(p: Parsed): Record<string, unknown> | undefined {
  const cmd = p.str('health-cmd') ?? '';
  const interval = healthDuration(p, 'health-interval');
  const timeout = healthDuration(p, 'health-timeout');
  const startPeriod = healthDuration(p, 'health-start-period');
  const startInterval = healthDuration(p, 'health-start-interval');
  const retries = p.int('health-retries') ?? 0;
  const any = cmd !== '' || interval !== 0 || timeout !== 0 || startPeriod !== 0 || startInterval !== 0 || retries !== 0;
  if (p.bool('no-healthcheck')) {
    if (any) bad('--no-healthcheck conflicts with --health-* options');
    return { Test: ['NONE'] };
  }
  if (!any) return undefined;
  if (interval < 0) bad('--health-interval cannot be negative');
  if (timeout < 0) bad('--health-timeout cannot be negative');
  if (retries < 0) bad('--health-retries cannot be negative');
  if (startPeriod < 0) bad('--health-start-period cannot be negative');
  if (startInterval < 0) bad('--health-start-interval cannot be negative');
  return {
    Test: cmd ? ['CMD-SHELL', cmd] : null,
    Interval: interval,
    Timeout: timeout,
    StartPeriod: startPeriod,
    StartInterval: startInterval,
    Retries: retries,
  };
}

/** Translates run/create flags into the POST /containers/create request. */
export function buildCreate(p: Parsed, detach: boolean, env: NodeJS.ProcessEnv = process.env): CreateRequest {
  const [image, ...cmd] = p.args;
  const pull = (p.str('pull') ?? 'missing') as CreateRequest['pull'];
  if (!['missing', 'always', 'never'].includes(pull)) bad(`invalid pull option: '${pull}': must be one of "always", "missing" or "never"`);

  const attachList = p.list('attach').map((s) => s.toLowerCase());
  for (const a of attachList) if (!['stdin', 'stdout', 'stderr'].includes(a)) bad(`invalid argument "${a}" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR`);
  if (detach && attachList.length) throw new StatusError('conflicting options: cannot specify both --attach and --detach', 1);
  const interactive = p.bool('interactive');
  const attach = detach
    ? { stdin: false, stdout: false, stderr: false }
    : attachList.length
      ? { stdin: attachList.includes('stdin'), stdout: attachList.includes('stdout'), stderr: attachList.includes('stderr') }
      : { stdin: interactive, stdout: true, stderr: true };
  const tty = p.bool('tty');

  const labels: Record<string, string> = {};
  for (const l of p.list('label')) {
    const eq = l.indexOf('=');
    labels[eq < 0 ? l : l.slice(0, eq)] = eq < 0 ? '' : l.slice(eq + 1);
  }
  const exposed: Record<string, object> = {};
  const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  parsePorts(p.list('publish'), exposed, bindings);
  for (const e of p.list('expose')) parsePorts([e], exposed, {});

  const binds: string[] = [];
  const volumes: Record<string, object> = {};
  for (const v of p.list('volume')) {
    const parts = v.split(':');
    if (parts.some((x) => x === '')) bad(`invalid spec: ${v}: empty section between colons`);
    if (parts.length === 1) volumes[v] = {};
    else binds.push(v);
  }
  const tmpfs: Record<string, string> = {};
  for (const t of p.list('tmpfs')) {
    const i = t.indexOf(':');
    tmpfs[i < 0 ? t : t.slice(0, i)] = i < 0 ? '' : t.slice(i + 1);
  }

  const host: Record<string, unknown> = {
    Binds: binds.length ? binds : null,
    NetworkMode: p.str('network') ?? p.str('net') ?? 'default',
    PortBindings: bindings,
    RestartPolicy: parseRestart(p.str('restart') ?? 'no'),
    AutoRemove: p.bool('rm'),
    Privileged: p.bool('privileged'),
    PublishAllPorts: p.bool('publish-all'),
    ReadonlyRootfs: p.bool('read-only'),
    CapAdd: p.list('cap-add').length ? p.list('cap-add') : null,
    CapDrop: p.list('cap-drop').length ? p.list('cap-drop') : null,
    Dns: p.list('dns'),
    ExtraHosts: p.list('add-host').length ? p.list('add-host') : null,
  };
  if (p.has('init')) host.Init = p.bool('init');
  if (Object.keys(tmpfs).length) host.Tmpfs = tmpfs;
  if (p.has('memory')) {
    try {
      host.Memory = ramInBytes(p.str('memory') as string);
    } catch (e) {
      throw new FlagValueError(`invalid argument "${p.str('memory')}" for "-m, --memory" flag: ${(e as Error).message}`);
    }
  }
  if (p.has('shm-size')) {
    try {
      host.ShmSize = ramInBytes(p.str('shm-size') as string);
    } catch (e) {
      throw new FlagValueError(`invalid argument "${p.str('shm-size')}" for "--shm-size" flag: ${(e as Error).message}`);
    }
  }
  if (p.has('cpus')) {
    const n = Number(p.str('cpus'));
    if (!Number.isFinite(n) || n < 0) throw new FlagValueError(`invalid argument "${p.str('cpus')}" for "--cpus" flag: failed to parse ${p.str('cpus')} as a rational number`);
    host.NanoCpus = Math.round(n * 1e9);
  }
  if (p.has('cpu-shares')) host.CpuShares = p.int('cpu-shares');
  if (p.has('pids-limit')) host.PidsLimit = p.int('pids-limit');

  const entry = p.str('entrypoint');
  const body: Record<string, unknown> = {
    Hostname: p.str('hostname') ?? '',
    Domainname: p.str('domainname') ?? '',
    User: p.str('user') ?? '',
    AttachStdin: attach.stdin,
    AttachStdout: attach.stdout,
    AttachStderr: attach.stderr,
    ExposedPorts: Object.keys(exposed).length ? exposed : undefined,
    Tty: tty,
    OpenStdin: interactive,
    StdinOnce: interactive && attach.stdin,
    Env: envOf(p, env),
    Cmd: cmd.length ? cmd : null,
    Image: image,
    Volumes: Object.keys(volumes).length ? volumes : undefined,
    WorkingDir: p.str('workdir') ?? '',
    Entrypoint: entry === undefined ? null : [entry],
    Labels: labels,
    StopSignal: p.str('stop-signal'),
    StopTimeout: p.int('stop-timeout'),
    HostConfig: host,
    NetworkingConfig: { EndpointsConfig: {} },
  };
  const healthcheck = healthcheckOf(p);
  if (healthcheck) body.Healthcheck = healthcheck;
  return {
    image,
    pull,
    platform: p.str('platform'),
    name: p.str('name'),
    quiet: p.bool('quiet'),
    body,
    attach,
    tty,
    autoRemove: p.bool('rm'),
  };
}

/** POST /images/create?fromImage=..., progress shown on `out`. */
export async function pullImage(ctx: Ctx, image: string, out: Ctx['out'], opts: { platform?: string; quiet?: boolean; allTags?: boolean } = {}): Promise<void> {
  const ref = parseRef(image);
  const tag = opts.allTags ? undefined : (ref.digest ?? ref.tag ?? 'latest');
  const res = await ctx.client.request('POST', '/images/create', {
    query: { fromImage: fullName(ref), tag, platform: opts.platform },
    headers: { 'X-Registry-Auth': registryAuth(ctx, ref.domain) },
  });
  await displayJsonMessages(res, out, opts.quiet);
}

/** The X-Registry-Auth header for a registry, from the credentials `berth login` stored. */
export function registryAuth(ctx: Ctx, registry: string): string {
  return registryAuthHeader(ctx.env, registry);
}

export async function createContainer(ctx: Ctx, req: CreateRequest): Promise<string> {
  const query = { name: req.name, platform: req.platform };
  const create = () => ctx.client.json<{ Id: string; Warnings?: string[] | null }>('POST', '/containers/create', { query, body: req.body });
  if (req.pull === 'always') await pullImage(ctx, req.image, ctx.err, { platform: req.platform, quiet: req.quiet });
  let res: { Id: string; Warnings?: string[] | null };
  try {
    res = await create();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404 && /no such image/i.test(e.daemonMessage) && req.pull === 'missing')) throw e;
    ctx.err.write(`Unable to find image '${familiarTagged(parseRef(req.image))}' locally\n`);
    await pullImage(ctx, req.image, ctx.err, { platform: req.platform, quiet: req.quiet });
    res = await create();
  }
  for (const w of res.Warnings ?? []) ctx.err.write(`WARNING: ${w}\n`);
  return res.Id;
}

/** docker's toStatusError: the exit code tells "not found" (127) from "cannot execute" (126). */
export function runStatusError(e: unknown, path: string): StatusError {
  if (e instanceof FlagValueError) {
    return new StatusError(`${e.message}\n\nUsage:  ${path} [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun '${path} --help' for more information`, 125);
  }
  if (e instanceof StatusError && e.code !== 125) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const text = `${path.split(' ')[0]}: ${msg}\n\nRun '${path} --help' for more information`;
  if (/executable file not found|no such file or directory|system cannot find the file specified/.test(msg)) return new StatusError(text, 127);
  if (/permission denied|is a directory|cannot execute/.test(msg)) return new StatusError(text, 126);
  return new StatusError(text, 125);
}

export interface Attached {
  /** Resolves when the container's output has been fully written locally. */
  done: Promise<void>;
  close(): void;
}

/**
 * Hijacks /containers/{id}/attach and wires it to the local terminal: stdin is
 * piped in (half-closing after EOF), output is raw (tty) or demultiplexed.
 */
export async function attachContainer(
  ctx: Ctx,
  id: string,
  a: { stdin: boolean; stdout: boolean; stderr: boolean },
  tty: boolean,
  /** Another hijacked request to wire up instead of the container's attach (exec start). */
  open?: () => Promise<Duplex>,
): Promise<Attached> {
  const sock: Duplex = open ? await open() : await ctx.client.hijack('POST', `/containers/${encodeURIComponent(id)}/attach`, {
    query: { stream: true, stdin: a.stdin, stdout: a.stdout, stderr: a.stderr },
  });
  const restore = a.stdin && tty ? setRaw(ctx) : () => undefined;
  const sink = tty ? undefined : new Demuxer(ctx.out, ctx.err);
  const outDone = sink ? finished(sink) : finished(sock, { writable: false });
  if (sink) {
    sock.on('error', (e) => sink.destroy(e));
    sock.pipe(sink);
  }
  else sock.on('data', (d: Buffer) => ctx.out.write(d));

  const onStdin = (d: Buffer) => sock.write(d);
  const onEnd = () => {
    // Half-close: the container sees EOF on stdin, we keep reading its output.
    if (!tty) sock.end();
  };
  if (a.stdin) {
    ctx.stdin.on('data', onStdin);
    ctx.stdin.once('end', onEnd);
    ctx.stdin.resume();
  }
  const close = (): void => {
    restore();
    if (a.stdin) {
      ctx.stdin.off('data', onStdin);
      ctx.stdin.off('end', onEnd);
      ctx.stdin.pause();
    }
  };
  const done = outDone.then(
    () => close(),
    (e: Error) => {
      close();
      if ((e as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') return;
      throw e;
    },
  );
  return {
    done,
    close: () => {
      close();
      sock.destroy();
    },
  };
}

function setRaw(ctx: Ctx): () => void {
  if (!ctx.stdin.isTTY || !ctx.stdin.setRawMode) return () => undefined;
  ctx.stdin.setRawMode(true);
  // libuv's raw mode keeps ONLCR, so the container's own "\r\n" would print as "\r\r\n"; docker's raw mode turns it off.
  spawnSync('stty', ['-onlcr'], { stdio: [0, 'ignore', 'ignore'] });
  return () => ctx.stdin.setRawMode?.(false);
}

async function resize(ctx: Ctx, id: string, base: string): Promise<void> {
  if (!ctx.out.isTTY || !ctx.out.rows || !ctx.out.columns) return;
  await ctx.client.call('POST', `${base}/${encodeURIComponent(id)}/resize`, { query: { h: ctx.out.rows, w: ctx.out.columns } }).catch(() => undefined);
}

/** Keeps the remote tty's size in step with ours; base is /containers or /exec. */
export function monitorSize(ctx: Ctx, id: string, base = '/containers'): () => void {
  if (!ctx.out.isTTY) return () => undefined;
  void resize(ctx, id, base);
  const on = () => void resize(ctx, id, base);
  ctx.out.on('resize', on);
  return () => ctx.out.off('resize', on);
}

async function waitExit(ctx: Ctx, id: string, condition: string): Promise<number> {
  const r = await ctx.client.json<{ StatusCode: number; Error?: { Message?: string } | null }>('POST', `/containers/${encodeURIComponent(id)}/wait`, { query: { condition } });
  if (r.Error?.Message) throw new Error(r.Error.Message);
  return r.StatusCode;
}

async function runRun(ctx: Ctx, p: Parsed, isRun: boolean): Promise<number> {
  const detach = isRun && p.bool('detach');
  let req: CreateRequest;
  try {
    req = buildCreate(p, detach, ctx.env);
    parseRef(req.image);
  } catch (e) {
    throw runStatusError(e, ctx.path);
  }
  if (isRun && !detach && req.tty && req.attach.stdin && !ctx.stdin.isTTY) {
    throw new StatusError('the input device is not a TTY', 1);
  }
  let id: string;
  try {
    id = await createContainer(ctx, req);
  } catch (e) {
    throw runStatusError(e, ctx.path);
  }
  if (!isRun) {
    ctx.out.write(`${id}\n`);
    return 0;
  }
  const attaching = !detach && (req.attach.stdin || req.attach.stdout || req.attach.stderr);
  let attached: Attached | undefined;
  let status: Promise<number> | undefined;
  try {
    if (attaching) attached = await attachContainer(ctx, id, req.attach, req.tty);
    if (!detach) {
      status = waitExit(ctx, id, req.autoRemove ? 'removed' : 'next-exit');
      status.catch(() => undefined);
    }
    await ctx.client.call('POST', `/containers/${encodeURIComponent(id)}/start`);
  } catch (e) {
    attached?.close();
    if (req.autoRemove && status) await status.catch(() => undefined);
    throw runStatusError(e, ctx.path);
  }
  if (detach) {
    ctx.out.write(`${id}\n`);
    return 0;
  }
  const stopResize = req.tty ? monitorSize(ctx, id) : () => undefined;
  const stopProxy = !req.tty && (p.has('sig-proxy') ? p.bool('sig-proxy') : true) ? proxySignals(ctx, id) : () => undefined;
  try {
    if (attached) await attached.done;
    return await (status as Promise<number>);
  } catch (e) {
    if (e instanceof ConnectError || e instanceof ApiError) throw runStatusError(e, ctx.path);
    throw new StatusError(`${ctx.path.split(' ')[0]}: ${(e as Error).message}`, 125);
  } finally {
    stopResize();
    stopProxy();
    attached?.close();
  }
}

/** --sig-proxy: signals the CLI receives are sent to the container (docker's ForwardAllSignals, the common ones). */
function proxySignals(ctx: Ctx, id: string): () => void {
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
  const handlers = signals.map((sig) => {
    const h = () => void ctx.client.call('POST', `/containers/${encodeURIComponent(id)}/kill`, { query: { signal: sig } }).catch(() => undefined);
    process.on(sig, h);
    return [sig, h] as const;
  });
  return () => {
    for (const [sig, h] of handlers) process.off(sig, h);
  };
}

export const run: Command = {
  name: 'run',
  usage: 'run [OPTIONS] IMAGE [COMMAND] [ARG...]',
  description: 'Create and run a new container from an image',
  flags: runFlags,
  interspersed: false,
  args: { min: 1 },
  run: (ctx, p) => runRun(ctx, p, true),
};

export const create: Command = {
  name: 'create',
  usage: 'create [OPTIONS] IMAGE [COMMAND] [ARG...]',
  description: 'Create a new container',
  flags: createFlags,
  interspersed: false,
  args: { min: 1 },
  run: (ctx, p) => runRun(ctx, p, false),
};

export const start: Command = {
  name: 'start',
  usage: 'start [OPTIONS] CONTAINER [CONTAINER...]',
  description: 'Start one or more stopped containers',
  flags: [
    { long: 'attach', short: 'a', kind: 'bool', help: 'Attach STDOUT/STDERR and forward signals' },
    { long: 'detach-keys', kind: 'string', help: 'Override the key sequence for detaching a container' },
    { long: 'interactive', short: 'i', kind: 'bool', help: "Attach container's STDIN" },
  ],
  args: { min: 1 },
  async run(ctx, p) {
    const attach = p.bool('attach') || p.bool('interactive');
    if (attach) {
      if (p.args.length > 1) throw new StatusError('you cannot start and attach multiple containers at once', 1);
      const name = p.args[0];
      const info = await ctx.client.json<{ Id: string; Config: { Tty: boolean; OpenStdin: boolean } }>('GET', `/containers/${encodeURIComponent(name)}/json`);
      const stdin = p.bool('interactive') && info.Config.OpenStdin;
      const attached = await attachContainer(ctx, info.Id, { stdin, stdout: p.bool('attach'), stderr: p.bool('attach') }, info.Config.Tty);
      const status = waitExit(ctx, info.Id, 'next-exit');
      status.catch(() => undefined);
      try {
        await ctx.client.call('POST', `/containers/${encodeURIComponent(info.Id)}/start`);
      } catch (e) {
        attached.close();
        throw e;
      }
      const stop = info.Config.Tty ? monitorSize(ctx, info.Id) : () => undefined;
      try {
        await attached.done;
        return await status;
      } finally {
        stop();
        attached.close();
      }
    }
    const failed: string[] = [];
    for (const c of p.args) {
      try {
        await ctx.client.call('POST', `/containers/${encodeURIComponent(c)}/start`);
        ctx.out.write(`${c}\n`);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        ctx.err.write(`${e.message}\n`);
        failed.push(c);
      }
    }
    if (failed.length) throw new StatusError(`Error: failed to start containers: ${failed.join(', ')}`, 1);
    return 0;
  },
};

export const pull: Command = {
  name: 'pull',
  usage: 'pull [OPTIONS] NAME[:TAG|@DIGEST]',
  description: 'Download an image from a registry',
  flags: [
    { long: 'all-tags', short: 'a', kind: 'bool', help: 'Download all tagged images in the repository' },
    { long: 'platform', kind: 'string', help: 'Set platform if server is multi-platform capable' },
    { long: 'quiet', short: 'q', kind: 'bool', help: 'Suppress verbose output' },
  ],
  args: { min: 1, max: 1 },
  async run(ctx, p) {
    const ref = parseRef(p.args[0]);
    if (p.bool('all-tags') && (ref.tag || ref.digest)) throw new StatusError('tag can\'t be used with --all-tags/-a', 1);
    if (!ref.tag && !ref.digest && !p.bool('all-tags')) ctx.out.write('Using default tag: latest\n');
    try {
      await pullImage(ctx, p.args[0], ctx.out, { platform: p.str('platform'), quiet: p.bool('quiet'), allTags: p.bool('all-tags') });
    } catch (e) {
      if (e instanceof StreamError) throw new StatusError(e.message, 1);
      throw e;
    }
    const shown = `${fullName(ref)}${p.bool('all-tags') ? '' : ref.digest ? `@${ref.digest}` : `:${ref.tag ?? 'latest'}`}`;
    ctx.out.write(`${shown}\n`);
    return 0;
  },
};
