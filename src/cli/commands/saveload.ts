/** save and load: images to and from a tar, in docker's layout. */
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import type { Command } from '../command.js';
import { StatusError } from '../command.js';
import { displayJsonMessages, StreamError } from '../progress.js';
import { writeOutput } from './fs.js';

export const save: Command = {
  name: 'save',
  usage: 'save [OPTIONS] IMAGE [IMAGE...]',
  description: 'Save one or more images to a tar archive (streamed to STDOUT by default)',
  flags: [
    { long: 'output', short: 'o', kind: 'string', help: 'Write to a file, instead of STDOUT' },
    { long: 'platform', kind: 'list', help: 'Save only the given platform(s)' },
  ],
  args: { min: 1 },
  async run(ctx, p) {
    const file = p.str('output');
    if (!file && ctx.out.isTTY) throw new StatusError('cowardly refusing to save to a terminal. Use the -o flag or redirect', 1);
    const res = await ctx.client.request('GET', '/images/get', { query: { names: p.args } });
    await writeOutput(ctx, res, file, 'save image');
    return 0;
  },
};

export const load: Command = {
  name: 'load',
  usage: 'load [OPTIONS]',
  description: 'Load an image from a tar archive or STDIN',
  flags: [
    { long: 'input', short: 'i', kind: 'string', help: 'Read from tar archive file, instead of STDIN' },
    { long: 'quiet', short: 'q', kind: 'bool', help: 'Suppress the load output' },
    { long: 'platform', kind: 'list', help: 'Load only the given platform(s)' },
  ],
  args: { max: 0 },
  async run(ctx, p) {
    const file = p.str('input');
    let input: Readable;
    if (file) {
      const f = fs.createReadStream(file);
      await new Promise<void>((resolve, reject) => {
        f.once('open', () => resolve());
        f.once('error', (e: NodeJS.ErrnoException) => reject(new StatusError(`open ${file}: ${e.code === 'ENOENT' ? 'no such file or directory' : e.message}`, 1)));
      });
      input = f;
    } else {
      if (ctx.stdin.isTTY) throw new StatusError('requested load from stdin, but stdin is empty', 1);
      input = ctx.stdin;
    }
    // Like docker: progress bars only for a terminal.
    const quiet = p.bool('quiet') || !ctx.out.isTTY;
    const res = await ctx.client.request('POST', '/images/load', { query: { quiet: quiet ? '1' : '0' }, stream: input, contentType: 'application/x-tar' });
    try {
      await displayJsonMessages(res, ctx.out);
    } catch (e) {
      if (e instanceof StreamError) throw new StatusError(e.message, 1);
      throw e;
    }
    return 0;
  },
};
