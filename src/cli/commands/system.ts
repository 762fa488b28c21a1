/**
 * version and info: the same sections and labels as `docker version` / `docker info`,
 * so scripts that grep "Server Version:" or "Storage Driver:" keep working.
 */
import { readFileSync } from 'node:fs';
import type { Command, Ctx } from '../command.js';
import { StatusError } from '../command.js';
import { bytesSize, tabwrite } from '../format.js';
import { API_VERSION, ConnectError } from '../http.js';
import { normalizeFormat, Template } from '../template.js';

/** src/cli/commands → ../../../ is the repo root; dist/src/cli/commands needs one more level. */
function clientVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    if (pkg.version) return pkg.version;
  } catch {}
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    if (pkg.version) return pkg.version;
  } catch {}
  return 'dev';
}

export const CLIENT_VERSION = clientVersion();

const goArch = (a: string): string => ({ x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm' })[a] ?? a;

function clientInfo(_ctx: Ctx): Record<string, unknown> {
  return {
    Platform: { Name: '' },
    Version: CLIENT_VERSION,
    ApiVersion: API_VERSION,
    DefaultAPIVersion: API_VERSION,
    GitCommit: '',
    GoVersion: process.version,
    Os: process.platform,
    Arch: goArch(process.arch),
    BuildTime: '',
    Context: 'default',
  };
}

interface ServerVersion {
  Platform?: { Name?: string };
  Components?: Array<{ Name: string; Version: string; Details?: Record<string, string> }>;
  Version?: string;
  ApiVersion?: string;
  MinAPIVersion?: string;
  GitCommit?: string;
  GoVersion?: string;
  Os?: string;
  Arch?: string;
  KernelVersion?: string;
  BuildTime?: string;
  Experimental?: boolean;
}

/** docker shows build times in time.ANSIC ("Fri May 30 12:07:14 2025"), local time. */
function ansic(t: string): string {
  const ms = Date.parse(t);
  if (!t || Number.isNaN(ms)) return t;
  const d = new Date(ms);
  const day = d.toLocaleString('en-US', { weekday: 'short' });
  const mon = d.toLocaleString('en-US', { month: 'short' });
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${day} ${mon} ${String(d.getDate()).padStart(2, ' ')} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${d.getFullYear()}`;
}

function execFormat(format: string, data: unknown): string {
  const { body } = normalizeFormat(format);
  return Template.compile(body).execute(data) + '\n';
}

export const version: Command = {
  name: 'version',
  usage: 'version [OPTIONS]',
  description: 'Show the Docker version information',
  flags: [{ long: 'format', short: 'f', kind: 'string', help: 'Format output using a custom template' }],
  args: { max: 0 },
  async run(ctx, p) {
    const client = clientInfo(ctx);
    let server: ServerVersion | undefined;
    let failure: Error | undefined;
    try {
      server = await ctx.client.json<ServerVersion>('GET', '/version');
    } catch (e) {
      failure = e as Error;
    }
    const format = p.str('format');
    if (format) {
      ctx.out.write(execFormat(format, { Client: client, Server: server ?? null }));
    } else {
      const lines = [
        'Client:',
        ` Version:\t${client.Version}`,
        ` API version:\t${client.ApiVersion}`,
        ` Node version:\t${client.GoVersion}`,
        ` OS/Arch:\t${client.Os}/${client.Arch}`,
        ` Context:\t${client.Context}`,
      ];
      if (server) {
        lines.push('', `Server: ${server.Platform?.Name ?? ''}`.trimEnd());
        const comps = server.Components ?? [{ Name: 'Engine', Version: server.Version ?? '', Details: {} }];
        for (const c of comps) {
          lines.push(` ${c.Name}:`);
          if (c.Name === 'Engine') {
            const d = c.Details ?? {};
            lines.push(
              `  Version:\t${c.Version}`,
              `  API version:\t${d.ApiVersion ?? server.ApiVersion} (minimum version ${d.MinAPIVersion ?? server.MinAPIVersion})`,
              `  Go version:\t${d.GoVersion ?? server.GoVersion ?? ''}`,
              `  Git commit:\t${d.GitCommit ?? server.GitCommit ?? ''}`,
              `  Built:\t${ansic(d.BuildTime ?? server.BuildTime ?? '')}`,
              `  OS/Arch:\t${d.Os ?? server.Os}/${d.Arch ?? server.Arch}`,
              `  Experimental:\t${d.Experimental ?? String(server.Experimental ?? false)}`,
            );
          } else {
            lines.push(`  Version:\t${c.Version}`);
            for (const k of Object.keys(c.Details ?? {}).sort()) lines.push(`  ${k}:\t${(c.Details ?? {})[k]}`);
          }
        }
      }
      ctx.out.write(tabwrite(lines, 20, 1));
    }
    if (failure) {
      if (failure instanceof ConnectError) throw new StatusError(failure.message, 1);
      throw failure;
    }
    return 0;
  },
};

interface Info {
  [k: string]: unknown;
  Containers?: number;
  ContainersRunning?: number;
  ContainersPaused?: number;
  ContainersStopped?: number;
  Images?: number;
  ServerVersion?: string;
  Driver?: string;
  DriverStatus?: Array<[string, string]> | null;
  LoggingDriver?: string;
  CgroupDriver?: string;
  CgroupVersion?: string;
  Plugins?: { Volume?: string[] | null; Network?: string[] | null; Log?: string[] | null };
  Runtimes?: Record<string, unknown>;
  DefaultRuntime?: string;
  SecurityOptions?: string[] | null;
  KernelVersion?: string;
  OperatingSystem?: string;
  OSType?: string;
  Architecture?: string;
  NCPU?: number;
  MemTotal?: number;
  Name?: string;
  ID?: string;
  DockerRootDir?: string;
  Debug?: boolean;
  ExperimentalBuild?: boolean;
  Labels?: string[] | null;
  RegistryConfig?: { InsecureRegistryCIDRs?: string[] | null; IndexConfigs?: Record<string, { Secure?: boolean }> } | null;
  LiveRestoreEnabled?: boolean;
  Warnings?: string[] | null;
}

export function formatInfo(info: Info, client: Record<string, unknown>): string {
  const o: string[] = [];
  o.push('Client:', ` Version:    ${client.Version}`, ` Context:    ${client.Context}`, ' Debug Mode: false', '', 'Server:');
  o.push(` Containers: ${info.Containers ?? 0}`, `  Running: ${info.ContainersRunning ?? 0}`, `  Paused: ${info.ContainersPaused ?? 0}`, `  Stopped: ${info.ContainersStopped ?? 0}`);
  o.push(` Images: ${info.Images ?? 0}`, ` Server Version: ${info.ServerVersion ?? ''}`);
  if (info.Driver) o.push(` Storage Driver: ${info.Driver}`);
  for (const [k, v] of info.DriverStatus ?? []) o.push(`  ${k}: ${v}`);
  if (info.LoggingDriver) o.push(` Logging Driver: ${info.LoggingDriver}`);
  if (info.CgroupDriver) o.push(` Cgroup Driver: ${info.CgroupDriver}`);
  if (info.CgroupVersion) o.push(` Cgroup Version: ${info.CgroupVersion}`);
  if (info.Plugins) {
    o.push(' Plugins:');
    o.push(`  Volume: ${(info.Plugins.Volume ?? []).join(' ')}`, `  Network: ${(info.Plugins.Network ?? []).join(' ')}`);
    if (info.Plugins.Log) o.push(`  Log: ${info.Plugins.Log.join(' ')}`);
  }
  if (info.Runtimes) o.push(` Runtimes: ${Object.keys(info.Runtimes).sort().join(' ')}`);
  if (info.DefaultRuntime) o.push(` Default Runtime: ${info.DefaultRuntime}`);
  if (info.SecurityOptions?.length) {
    o.push(' Security Options:');
    for (const so of info.SecurityOptions) {
      const kv = so.split(',').map((x) => x.split('='));
      for (const [k, v] of kv) {
        if (k === 'name') o.push(`  ${v}`);
        else o.push(`   ${k[0].toUpperCase()}${k.slice(1)}: ${v}`);
      }
    }
  }
  o.push(` Kernel Version: ${info.KernelVersion ?? ''}`, ` Operating System: ${info.OperatingSystem ?? ''}`, ` OSType: ${info.OSType ?? ''}`, ` Architecture: ${info.Architecture ?? ''}`);
  o.push(` CPUs: ${info.NCPU ?? 0}`, ` Total Memory: ${bytesSize(info.MemTotal ?? 0)}`, ` Name: ${info.Name ?? ''}`, ` ID: ${info.ID ?? ''}`);
  o.push(` Docker Root Dir: ${info.DockerRootDir ?? ''}`, ` Debug Mode: ${info.Debug ?? false}`, ` Experimental: ${info.ExperimentalBuild ?? false}`);
  if (info.Labels?.length) o.push(' Labels:', ...info.Labels.map((l) => `  ${l}`));
  const insecure = [
    ...Object.entries(info.RegistryConfig?.IndexConfigs ?? {})
      .filter(([, v]) => v.Secure === false)
      .map(([k]) => k),
    ...(info.RegistryConfig?.InsecureRegistryCIDRs ?? []),
  ];
  if (insecure.length) o.push(' Insecure Registries:', ...insecure.map((r) => `  ${r}`));
  o.push(` Live Restore Enabled: ${info.LiveRestoreEnabled ?? false}`);
  return o.join('\n') + '\n\n';
}

export const info: Command = {
  name: 'info',
  usage: 'info [OPTIONS]',
  description: 'Display system-wide information',
  flags: [{ long: 'format', short: 'f', kind: 'string', help: 'Format output using a custom template' }],
  args: { max: 0 },
  async run(ctx, p) {
    const format = p.str('format');
    const data = await ctx.client.json<Info>('GET', '/info');
    if (format) {
      ctx.out.write(execFormat(format, data));
      return 0;
    }
    ctx.out.write(formatInfo(data, clientInfo(ctx)));
    for (const w of data.Warnings ?? []) ctx.err.write(`${w}\n`);
    return 0;
  },
};
