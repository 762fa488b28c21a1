/**
 * `berth exec`: docker's flow — create the exec, start it (hijacked and wired
 * to the terminal unless -d), then inspect it and exit with its ExitCode.
 */
import type { Command } from '../command.js';
import { StatusError } from '../command.js';
import type { FlagSpec } from '../flags.js';
import { attachContainer, envOf, monitorSize } from './run.js';

const execFlags: FlagSpec[] = [
  { long: 'detach', short: 'd', kind: 'bool', help: 'Detached mode: run command in the background' },
  { long: 'detach-keys', kind: 'string', help: 'Override the key sequence for detaching a container' },
  { long: 'env', short: 'e', kind: 'list', help: 'Set environment variables' },
  { long: 'env-file', kind: 'list', help: 'Read in a file of environment variables' },
  { long: 'interactive', short: 'i', kind: 'bool', help: 'Keep STDIN open even if not attached' },
  { long: 'privileged', kind: 'bool', help: 'Give extended privileges to the command' },
  { long: 'tty', short: 't', kind: 'bool', help: 'Allocate a pseudo-TTY' },
  { long: 'user', short: 'u', kind: 'string', help: 'Username or UID (format: "<name|uid>[:<group|gid>]")' },
  { long: 'workdir', short: 'w', kind: 'string', help: 'Working directory inside the container' },
];

export const exec: Command = {
  name: 'exec',
  usage: 'exec [OPTIONS] CONTAINER COMMAND [ARG...]',
  description: 'Execute a command in a running container',
  flags: execFlags,
  interspersed: false,
  args: { min: 2 },
  async run(ctx, p) {
    const [container, ...cmd] = p.args;
    const detach = p.bool('detach');
    const tty = p.bool('tty');
    const stdin = !detach && p.bool('interactive');
    // Checked before the exec is created, so a refused terminal leaves no exec behind (as docker).
    if (!detach && stdin && tty && !ctx.stdin.isTTY) throw new StatusError('the input device is not a TTY', 1);
    const consoleSize = tty && ctx.out.isTTY && ctx.out.rows && ctx.out.columns ? [ctx.out.rows, ctx.out.columns] : undefined;
    const body = {
      User: p.str('user') ?? '',
      Privileged: p.bool('privileged'),
      Tty: tty,
      ConsoleSize: consoleSize,
      AttachStdin: stdin,
      AttachStdout: !detach,
      AttachStderr: !detach,
      DetachKeys: p.str('detach-keys') ?? '',
      Env: envOf(p, ctx.env),
      WorkingDir: p.str('workdir') ?? '',
      Cmd: cmd,
    };
    const { Id: id } = await ctx.client.json<{ Id: string }>('POST', `/containers/${encodeURIComponent(container)}/exec`, { body });
    if (!id) throw new StatusError('exec ID empty', 1);
    const start = { Detach: detach, Tty: tty, ConsoleSize: consoleSize };
    if (detach) {
      await ctx.client.call('POST', `/exec/${id}/start`, { body: start });
      return 0;
    }
    const attached = await attachContainer(ctx, id, { stdin, stdout: true, stderr: true }, tty, () => ctx.client.hijack('POST', `/exec/${id}/start`, { body: start }));
    const stopResize = tty ? monitorSize(ctx, id, '/exec') : () => undefined;
    try {
      await attached.done;
    } finally {
      stopResize();
      attached.close();
    }
    const info = await ctx.client.json<{ ExitCode: number | null; Running: boolean }>('GET', `/exec/${id}/json`);
    return info.ExitCode ?? 0;
  },
};
