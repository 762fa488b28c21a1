/**
 * `berth`: the docker-compatible client. main(argv) parses the global flags,
 * finds the command (top-level or under `container` / `image`), parses its flags,
 * checks its arity, runs it and turns every failure into docker's message on
 * stderr and docker's exit code (125 for usage errors and run/create failures,
 * 1 for the rest). It never touches berthd's state: only HTTP on the socket.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command, Ctx } from './command.js';
import { StatusError } from './command.js';
import * as c from './commands/containers.js';
import * as i from './commands/images.js';
import * as r from './commands/run.js';
import * as x from './commands/exec.js';
import * as reg from './commands/registry.js';
import * as s from './commands/system.js';
import * as o from './commands/observe.js';
import * as vol from './commands/volume.js';
import * as n from './commands/network.js';
import * as b from './commands/build.js';
import type { FlagSpec } from './flags.js';
import { FlagError, flagUsages, parseFlags } from './flags.js';
import { ApiClient, ApiError, ConnectError, resolveHost } from './http.js';
import { StreamError } from './progress.js';
import { TemplateError } from './template.js';
import * as fsc from './commands/fs.js';
import * as sl from './commands/saveload.js';
import * as hk from './commands/housekeeping.js';

const topLevel: Command[] = [r.run, r.create, r.start, x.exec, c.stop, c.kill, c.restart, c.rm, c.ps, c.logs, c.wait, c.inspect, o.pause, o.unpause, o.top, o.stats, o.rename, o.update, i.images, i.rmi, i.tag, i.importCmd, i.history, r.pull, i.push, i.login, i.logout, i.search, s.info, s.version, n.port];
// Filesystem and image-archive commands, and housekeeping (kept as separate lines to merge easily).
topLevel.push(fsc.cp, fsc.diff, fsc.exportCmd, sl.save, sl.load);

const groups: Record<string, { description: string; commands: Command[] }> = {
  container: {
    description: 'Manage containers',
    commands: [r.run, r.create, r.start, x.exec, c.stop, c.kill, c.restart, c.rm, c.ps, c.logs, c.wait, c.containerInspect, c.containerPrune, o.pause, o.unpause, o.top, o.stats, o.rename, o.update],
  },
  image: {
    description: 'Manage images',
    commands: [i.images, i.rmi, i.tag, i.importCmd, i.history, i.imageInspect, i.imagePrune, r.pull, i.push],
  },
  system: { description: 'Manage berth', commands: [s.info, s.version] },
  network: { description: 'Manage networks', commands: [n.networkConnect, n.networkCreate, n.networkDisconnect, n.networkInspect, n.networkLs, n.networkPrune, n.networkRm] },
  registry: { description: 'Run an OCI image registry', commands: [reg.serve, reg.gc] },
  volume: { description: 'Manage volumes', commands: vol.volumeCommands },
  builder: { description: 'Manage builds', commands: [hk.builderPrune] },
};
groups.container!.commands.push(fsc.cp, fsc.diff, fsc.exportCmd);
groups.image!.commands.push(sl.save, sl.load);
groups.system!.commands.push(hk.systemDf, hk.systemPrune);

topLevel.push(b.build, b.commit);
groups.container!.commands.push(b.commit);
groups.image!.commands.push(b.build);

const globalFlags: FlagSpec[] = [
  { long: 'config', kind: 'string', help: 'Location of client config files' },
  { long: 'context', short: 'c', kind: 'string', help: 'Name of the context to use to connect to the daemon' },
  { long: 'debug', short: 'D', kind: 'bool', help: 'Enable debug mode' },
  { long: 'host', short: 'H', kind: 'list', help: 'Daemon socket to connect to' },
  { long: 'log-level', short: 'l', kind: 'string', help: 'Set the logging level ("debug", "info", "warn", "error", "fatal")', default: 'info' },
  { long: 'version', short: 'v', kind: 'bool', help: 'Print version information and quit' },
];

function mainUsage(): string {
  const row = (n: string, d: string) => `  ${n.padEnd(11)} ${d}`;
  return [
    'Usage:  berth [OPTIONS] COMMAND',
    '',
    'A docker-compatible container engine',
    '',
    'Management Commands:',
    ...Object.entries(groups).map(([n, g]) => row(n, g.description)),
    '',
    'Commands:',
    ...topLevel.map((cmd) => row(cmd.name, cmd.description)),
    '',
    'Global Options:',
    flagUsages(globalFlags),
    '',
    "Run 'berth COMMAND --help' for more information on a command.",
    '',
  ].join('\n');
}

function commandUsage(cmd: Command, path: string): string {
  const aliases = cmd.aliases?.length ? `\nAliases:\n  ${[...cmd.aliases.map((a) => `${path.replace(/ \S+$/, '')} ${a}`)].join(', ')}\n` : '';
  return `\nUsage:  ${path.replace(/ \S+$/, '')} ${cmd.usage}\n\n${cmd.description}\n${aliases}\nOptions:\n${flagUsages(cmd.flags)}\n`;
}

function usageLine(cmd: Command, path: string): string {
  return `Usage:  ${path.replace(/ \S+$/, '')} ${cmd.usage}`;
}

export interface MainIO {
  out?: Ctx['out'];
  err?: Ctx['err'];
  stdin?: Ctx['stdin'];
  env?: NodeJS.ProcessEnv;
}

export async function main(argv: string[], io: MainIO = {}): Promise<number> {
  const out = io.out ?? process.stdout;
  const err = io.err ?? process.stderr;
  const env = io.env ?? process.env;
  let g;
  try {
    g = parseFlags(argv, globalFlags, { interspersed: false });
  } catch (e) {
    if (e instanceof FlagError) {
      err.write(`${e.message}\n\nUsage:  berth [OPTIONS] COMMAND\n\nRun 'berth --help' for more information\n`);
      return 125;
    }
    throw e;
  }
  if (g.bool('version')) {
    out.write(`berth version ${s.CLIENT_VERSION}\n`);
    return 0;
  }
  let rest = g.args;
  if (g.bool('help') || rest.length === 0 || rest[0] === 'help') {
    if (rest[0] === 'help' && rest.length > 1) rest = [...rest.slice(1), '--help'];
    else {
      out.write(mainUsage());
      return 0;
    }
  }
  let cmd: Command | undefined;
  let path = 'berth';
  const group = groups[rest[0]];
  if (group) {
    path += ` ${rest[0]}`;
    const sub = rest[1];
    if (sub === undefined || sub === '--help' || sub === '-h') {
      out.write(`\nUsage:  ${path} COMMAND\n\n${group.description}\n\nCommands:\n${group.commands.map((x) => `  ${(x === i.images || x === c.ps ? 'ls' : x === i.rmi ? 'rm' : x.name).padEnd(11)} ${x.description}`).join('\n')}\n\nRun '${path} COMMAND --help' for more information on a command.\n`);
      return 0;
    }
    cmd = group.commands.find((x) => x.name === sub || x.aliases?.includes(sub));
    if (!cmd) {
      err.write(`berth: unknown command: ${path} ${sub}\n\nUsage:  ${path}\n\nRun '${path} --help' for more information\n`);
      return 1;
    }
    path += ` ${sub}`;
    rest = rest.slice(2);
  } else {
    cmd = topLevel.find((x) => x.name === rest[0]);
    if (!cmd) {
      err.write(`berth: unknown command: berth ${rest[0]}\n\nRun 'berth --help' for more information\n`);
      return 1;
    }
    path += ` ${rest[0]}`;
    rest = rest.slice(1);
  }

  const hasShortH = cmd.flags.some((f) => f.short === 'h');
  let p;
  try {
    const flags = hasShortH ? cmd.flags : [...cmd.flags, { long: 'help-short', short: 'h', kind: 'bool' as const, help: '' }];
    p = parseFlags(rest, flags, { interspersed: cmd.interspersed ?? true });
  } catch (e) {
    if (e instanceof FlagError) {
      err.write(`${e.message}\n\n${usageLine(cmd, path)}\n\nRun '${path} --help' for more information\n`);
      return 125;
    }
    throw e;
  }
  if (p.bool('help') || p.bool('help-short')) {
    if (p.bool('help-short')) out.write('Flag shorthand -h has been deprecated, use --help\n');
    out.write(commandUsage(cmd, path));
    return 0;
  }
  const { min, max } = cmd.args ?? {};
  const n = p.args.length;
  let arity: string | undefined;
  let hint = 'Run';
  if (min !== undefined && max !== undefined && min === max && n !== min) arity = `requires ${min} argument${min === 1 ? '' : 's'}`;
  else if (max === 0 && n > 0) arity = 'accepts no arguments';
  else if (min !== undefined && n < min) {
    arity = `requires at least ${min} argument${min === 1 ? '' : 's'}`;
    hint = 'See';
  } else if (max !== undefined && n > max) arity = `requires at most ${max} argument${max === 1 ? '' : 's'}`;
  if (arity) {
    err.write(`berth: '${path}' ${arity}\n\n${usageLine(cmd, path)}\n\n${hint} '${path} --help' for more information\n`);
    return 1;
  }

  const hosts = g.list('host');
  if (hosts.length > 1) {
    err.write('Specify only one -H\n');
    return 1;
  }
  let ctx: Ctx;
  try {
    ctx = { client: new ApiClient(resolveHost(hosts[0], env)), out, err, stdin: io.stdin ?? process.stdin, env, path };
  } catch (e) {
    err.write(`${(e as Error).message}\n`);
    return 1;
  }
  const usesRunErrors = cmd === r.run || cmd === r.create;
  try {
    return await cmd.run(ctx, p);
  } catch (e) {
    if (e instanceof StatusError) {
      if (e.message) err.write(`${e.message}\n`);
      return e.code;
    }
    if (e instanceof TemplateError) {
      err.write(`template parsing error: ${e.message}\n`);
      return 1;
    }
    if (e instanceof ApiError || e instanceof ConnectError || e instanceof StreamError) {
      if (usesRunErrors) {
        const se = r.runStatusError(e, path);
        err.write(`${se.message}\n`);
        return se.code;
      }
      err.write(`${e.message}\n`);
      return 1;
    }
    err.write(`${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

function isEntry(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) {
  // A reader that goes away (`berth logs x | head`) ends us quietly, as it ends docker.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => process.exit(e.code === 'EPIPE' ? 0 : 1));
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
}
