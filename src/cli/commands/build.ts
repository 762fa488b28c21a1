/**
 * Commands that make images from containers and Dockerfiles: commit, build.
 */
import type { Command } from '../command.js';
import { StatusError } from '../command.js';
import { familiarName, parseRef } from '../ref.js';

export const commit: Command = {
  name: 'commit',
  usage: 'commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]',
  description: "Create a new image from a container's changes",
  flags: [
    { long: 'author', short: 'a', kind: 'string', help: 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")' },
    { long: 'change', short: 'c', kind: 'list', help: 'Apply Dockerfile instruction to the created image' },
    { long: 'message', short: 'm', kind: 'string', help: 'Commit message' },
    { long: 'pause', short: 'p', kind: 'bool', help: 'Pause container during commit', default: 'true' },
  ],
  args: { min: 1, max: 2 },
  async run(ctx, p) {
    const [container, target] = p.args as [string, string | undefined];
    let repo: string | undefined;
    let tag: string | undefined;
    if (target) {
      let r;
      try {
        r = parseRef(target);
      } catch (e) {
        throw new StatusError(`invalid reference format: ${(e as Error).message}`, 125);
      }
      if (r.digest) throw new StatusError('refusing to create a tag with a digest reference', 125);
      repo = familiarName(r);
      tag = r.tag;
    }
    const pause = p.has('pause') ? p.bool('pause') : true;
    const res = await ctx.client.json<{ Id: string }>('POST', '/commit', {
      query: {
        container,
        repo,
        tag,
        comment: p.str('message'),
        author: p.str('author'),
        pause: pause ? undefined : '0',
        changes: p.list('change').length ? p.list('change') : undefined,
      },
    });
    ctx.out.write(`${res.Id}\n`);
    return 0;
  },
};
