/**
 * Image commands: images, rmi, tag, import, history, image inspect/prune, push, login.
 */
import { removeCredentials, saveCredentials, serverKey } from '../credentials.js';
import { createReadStream } from 'node:fs';
import type { Command } from '../command.js';
import { filtersJson, renderRows, StatusError } from '../command.js';
import { ellipsis, humanSize, since, truncateId } from '../format.js';
import { ApiError } from '../http.js';
import { displayJsonMessages, StreamError } from '../progress.js';
import { familiarName, fullName, parseRef } from '../ref.js';
import { confirm, inspectFlags, inspectObjects } from './containers.js';
import { registryAuth } from './run.js';

const enc = encodeURIComponent;

export interface ImageSummary {
  Id: string;
  RepoTags?: string[] | null;
  RepoDigests?: string[] | null;
  Created?: number;
  Size?: number;
  SharedSize?: number;
  Containers?: number;
}

const splitRepo = (s: string, sep: string): [string, string] => {
  const i = s.lastIndexOf(sep);
  return i <= s.lastIndexOf('/') && sep === ':' ? [s, ''] : [s.slice(0, i), s.slice(i + 1)];
};

/** One row per repo:tag, the way `docker images` (non-tree view) expands an image. */
export function imageRows(images: ImageSummary[], trunc: boolean, now = Date.now()): Array<Record<string, string>> {
  const rows: Array<Record<string, string>> = [];
  for (const img of images) {
    const base = {
      ID: trunc ? truncateId(img.Id) : img.Id,
      CreatedSince: img.Created ? since(img.Created, now) : 'N/A',
      CreatedAt: img.Created ? new Date(img.Created * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' +0000 UTC') : '',
      Size: humanSize(img.Size ?? 0, 3),
      SharedSize: img.SharedSize === undefined || img.SharedSize < 0 ? 'N/A' : humanSize(img.SharedSize, 3),
      UniqueSize: img.SharedSize === undefined || img.SharedSize < 0 ? 'N/A' : humanSize((img.Size ?? 0) - img.SharedSize, 3),
      VirtualSize: humanSize(img.Size ?? 0, 3),
      Containers: img.Containers === undefined || img.Containers < 0 ? 'N/A' : String(img.Containers),
    };
    const digests = new Map<string, string[]>();
    for (const d of img.RepoDigests ?? []) {
      const [repo, dg] = splitRepo(d, '@');
      if (repo === '<none>') continue;
      digests.set(repo, [...(digests.get(repo) ?? []), dg]);
    }
    const tags = (img.RepoTags ?? []).filter((t) => t !== '<none>:<none>');
    if (tags.length === 0 && digests.size === 0) {
      rows.push({ Repository: '<none>', Tag: '<none>', Digest: '<none>', ...base });
      continue;
    }
    const seen = new Set<string>();
    for (const t of tags) {
      const [repo, tag] = splitRepo(t, ':');
      seen.add(repo);
      rows.push({ Repository: repo, Tag: tag || '<none>', Digest: digests.get(repo)?.[0] ?? '<none>', ...base });
    }
    for (const [repo, ds] of digests) {
      if (seen.has(repo)) continue;
      for (const d of ds) rows.push({ Repository: repo, Tag: '<none>', Digest: d, ...base });
    }
  }
  return rows;
}

const imageHeaders: Record<string, string> = {
  Repository: 'REPOSITORY',
  Tag: 'TAG',
  Digest: 'DIGEST',
  ID: 'IMAGE ID',
  CreatedSince: 'CREATED',
  CreatedAt: 'CREATED AT',
  Size: 'SIZE',
  SharedSize: 'SHARED SIZE',
  UniqueSize: 'UNIQUE SIZE',
  VirtualSize: 'VIRTUAL SIZE',
  Containers: 'CONTAINERS',
};

export const images: Command = {
  name: 'images',
  aliases: ['ls', 'list'],
  usage: 'images [OPTIONS] [REPOSITORY[:TAG]]',
  description: 'List images',
  flags: [
    { long: 'all', short: 'a', kind: 'bool', help: 'Show all images (default hides intermediate images)' },
    { long: 'digests', kind: 'bool', help: 'Show digests' },
    { long: 'filter', short: 'f', kind: 'list', type: 'filter', help: 'Filter output based on conditions provided' },
    { long: 'format', kind: 'string', help: 'Format output using a custom template' },
    { long: 'no-trunc', kind: 'bool', help: "Don't truncate output" },
    { long: 'quiet', short: 'q', kind: 'bool', help: 'Only show image IDs' },
    { long: 'tree', kind: 'bool', help: 'List multi-platform images as a tree (EXPERIMENTAL)' },
  ],
  args: { max: 1 },
  async run(ctx, p) {
    const filters = [...p.list('filter')];
    if (p.args[0]) filters.push(`reference=${p.args[0]}`);
    const list = await ctx.client.json<ImageSummary[]>('GET', '/images/json', {
      query: { all: p.bool('all') || undefined, digests: p.bool('digests') || undefined, filters: filtersJson(filters) },
    });
    const def = p.bool('digests')
      ? 'table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}'
      : 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}';
    let format = p.str('format') ?? '';
    if (p.bool('quiet')) format = '{{.ID}}';
    if (format === '' || format === 'table') format = def;
    ctx.out.write(renderRows(format, imageRows(list, !p.bool('no-trunc')), imageHeaders, def));
    return 0;
  },
};

export const rmi: Command = {
  name: 'rmi',
  aliases: ['rm', 'remove'],
  usage: 'rmi [OPTIONS] IMAGE [IMAGE...]',
  description: 'Remove one or more images',
  flags: [
    { long: 'force', short: 'f', kind: 'bool', help: 'Force removal of the image' },
    { long: 'no-prune', kind: 'bool', help: 'Do not delete untagged parents' },
    { long: 'platform', kind: 'list', help: 'Remove only the given platform variant' },
  ],
  args: { min: 1 },
  async run(ctx, p) {
    const errs: string[] = [];
    for (const name of p.args) {
      try {
        const res = await ctx.client.json<Array<{ Untagged?: string; Deleted?: string }>>('DELETE', `/images/${enc(name)}`, {
          query: { force: p.bool('force') || undefined, noprune: p.bool('no-prune') || undefined, platforms: p.list('platform').length ? p.list('platform') : undefined },
        });
        for (const r of res ?? []) {
          if (r.Untagged) ctx.out.write(`Untagged: ${r.Untagged}\n`);
          if (r.Deleted) ctx.out.write(`Deleted: ${r.Deleted}\n`);
        }
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        errs.push(e.message);
      }
    }
    if (errs.length) throw new StatusError(errs.join('\n'), 1);
    return 0;
  },
};

export const tag: Command = {
  name: 'tag',
  usage: 'tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]',
  description: 'Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE',
  flags: [],
  args: { min: 2, max: 2 },
  async run(ctx, p) {
    const [src, target] = p.args;
    let ref;
    try {
      ref = parseRef(target);
    } catch (e) {
      throw new StatusError(`Error parsing reference: "${target}" is not a valid repository/tag: ${(e as Error).message}`, 1);
    }
    if (ref.digest) throw new StatusError('refusing to create a tag with a digest reference', 1);
    const repo = fullName(ref);
    await ctx.client.call('POST', `/images/${enc(src)}/tag`, { query: { repo, tag: ref.tag ?? 'latest' } });
    return 0;
  },
};

export const importCmd: Command = {
  name: 'import',
  usage: 'import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]',
  description: 'Import the contents from a tarball to create a filesystem image',
  flags: [
    { long: 'change', short: 'c', kind: 'list', help: 'Apply Dockerfile instruction to the created image' },
    { long: 'message', short: 'm', kind: 'string', help: 'Set commit message for imported image' },
    { long: 'platform', kind: 'string', help: 'Set platform if server is multi-platform capable' },
  ],
  args: { min: 1 },
  async run(ctx, p) {
    const [source, target] = p.args;
    let repo: string | undefined;
    let tagName: string | undefined;
    if (target) {
      const r = parseRef(target);
      if (r.digest) throw new StatusError('refusing to create a tag with a digest reference', 1);
      repo = familiarName(r);
      tagName = r.tag;
    }
    const isUrl = /^https?:\/\//.test(source);
    const stream = source === '-' ? ctx.stdin : isUrl ? undefined : createReadStream(source);
    if (stream && source !== '-') {
      await new Promise<void>((resolve, reject) => {
        stream.once('open', () => resolve());
        stream.once('error', (e: NodeJS.ErrnoException) =>
          reject(new StatusError(`open ${source}: ${e.code === 'ENOENT' ? 'no such file or directory' : e.message}`, 1)),
        );
      });
    }
    const res = await ctx.client.request('POST', '/images/create', {
      query: {
        fromSrc: isUrl ? source : '-',
        repo,
        tag: tagName,
        message: p.str('message'),
        changes: p.list('change').length ? p.list('change') : undefined,
        platform: p.str('platform'),
      },
      stream,
      contentType: 'application/x-tar',
    });
    try {
      await displayJsonMessages(res, ctx.out);
    } catch (e) {
      if (e instanceof StreamError) throw new StatusError(e.message, 1);
      throw e;
    }
    return 0;
  },
};

export const history: Command = {
  name: 'history',
  usage: 'history [OPTIONS] IMAGE',
  description: 'Show the history of an image',
  flags: [
    { long: 'format', kind: 'string', help: 'Format output using a custom template' },
    { long: 'human', short: 'H', kind: 'bool', help: 'Print sizes and dates in human readable format', default: 'true' },
    { long: 'no-trunc', kind: 'bool', help: "Don't truncate output" },
    { long: 'platform', kind: 'string', help: 'Show history for the given platform' },
    { long: 'quiet', short: 'q', kind: 'bool', help: 'Only show image IDs' },
  ],
  args: { min: 1, max: 1 },
  async run(ctx, p) {
    const hist = await ctx.client.json<Array<{ Id: string; Created: number; CreatedBy: string; Size: number; Comment: string; Tags?: string[] | null }>>(
      'GET',
      `/images/${enc(p.args[0])}/history`,
      { query: { platform: p.str('platform') } },
    );
    const human = p.has('human') ? p.bool('human') : true;
    const trunc = !p.bool('no-trunc');
    const now = Date.now();
    const rows = hist.map((h) => {
      const createdBy = h.CreatedBy.replace(/\t/g, ' ');
      return {
        ID: h.Id === '<missing>' ? '<missing>' : trunc ? truncateId(h.Id) : h.Id,
        CreatedSince: human ? since(h.Created, now) : new Date(h.Created * 1000).toISOString().replace(/\.\d+Z$/, 'Z'),
        CreatedAt: new Date(h.Created * 1000).toISOString().replace(/\.\d+Z$/, 'Z'),
        CreatedBy: trunc ? ellipsis(createdBy, 45) : createdBy,
        Size: human ? humanSize(h.Size, 3) : String(h.Size),
        Comment: h.Comment,
      };
    });
    const def = 'table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}';
    let format = p.str('format') ?? '';
    if (p.bool('quiet')) format = '{{.ID}}';
    if (format === '' || format === 'table') format = def;
    const headers = { ID: 'IMAGE', CreatedSince: human ? 'CREATED' : 'CREATED AT', CreatedAt: 'CREATED AT', CreatedBy: 'CREATED BY', Size: 'SIZE', Comment: 'COMMENT' };
    ctx.out.write(renderRows(format, rows, headers, def));
    return 0;
  },
};

export const imageInspect: Command = {
  name: 'inspect',
  usage: 'inspect [OPTIONS] IMAGE [IMAGE...]',
  description: 'Display detailed information on one or more images',
  flags: [inspectFlags[0], { long: 'platform', kind: 'string', help: 'Inspect a specific platform of the image' }],
  args: { min: 1 },
  run: (ctx, p) => inspectObjects(ctx, p.args, ['image'], p.str('format'), false),
};

export const imagePrune: Command = {
  name: 'prune',
  usage: 'prune [OPTIONS]',
  description: 'Remove unused images',
  flags: [
    { long: 'all', short: 'a', kind: 'bool', help: 'Remove all unused images, not just dangling ones' },
    { long: 'filter', kind: 'list', type: 'filter', help: 'Provide filter values (e.g. "until=<timestamp>")' },
    { long: 'force', short: 'f', kind: 'bool', help: 'Do not prompt for confirmation' },
  ],
  args: { max: 0 },
  async run(ctx, p) {
    const warning = p.bool('all')
      ? 'WARNING! This will remove all images without at least one container associated to them.'
      : 'WARNING! This will remove all dangling images.';
    if (!p.bool('force') && !(await confirm(ctx, warning))) return 0;
    const r = await ctx.client.json<{ ImagesDeleted?: Array<{ Untagged?: string; Deleted?: string }> | null; SpaceReclaimed?: number }>('POST', '/images/prune', {
      query: { filters: filtersJson([...p.list('filter'), `dangling=${!p.bool('all')}`]) },
    });
    const del = r.ImagesDeleted ?? [];
    if (del.length) {
      let s = 'Deleted Images:\n';
      for (const d of del) {
        if (d.Untagged) s += `untagged: ${d.Untagged}\n`;
        if (d.Deleted) s += `deleted: ${d.Deleted}\n`;
      }
      ctx.out.write(s + '\n');
    }
    ctx.out.write(`Total reclaimed space: ${humanSize(r.SpaceReclaimed ?? 0)}\n`);
    return 0;
  },
};

export const push: Command = {
  name: 'push',
  usage: 'push [OPTIONS] NAME[:TAG]',
  description: 'Upload an image to a registry',
  flags: [
    { long: 'all-tags', short: 'a', kind: 'bool', help: 'Push all tags of an image to the repository' },
    { long: 'platform', kind: 'string', help: 'Push a platform-specific manifest as a single-platform image to the registry' },
    { long: 'quiet', short: 'q', kind: 'bool', help: 'Suppress verbose output' },
  ],
  args: { min: 1, max: 1 },
  async run(ctx, p) {
    const ref = parseRef(p.args[0]);
    const name = familiarName(ref);
    const res = await ctx.client.request('POST', `/images/${enc(name)}/push`, {
      query: { tag: p.bool('all-tags') ? undefined : (ref.tag ?? 'latest'), platform: p.str('platform') },
      headers: { 'X-Registry-Auth': registryAuth(ctx, ref.domain) },
    });
    try {
      await displayJsonMessages(res, ctx.out, p.bool('quiet'));
    } catch (e) {
      if (e instanceof StreamError) throw new StatusError(e.message, 1);
      throw e;
    }
    if (p.bool('quiet')) ctx.out.write(`${name}:${ref.tag ?? 'latest'}\n`);
    return 0;
  },
};

export const login: Command = {
  name: 'login',
  usage: 'login [OPTIONS] [SERVER]',
  description: 'Authenticate to a registry',
  flags: [
    { long: 'password', short: 'p', kind: 'string', help: 'Password or Personal Access Token (PAT)' },
    { long: 'password-stdin', kind: 'bool', help: 'Take the Password or Personal Access Token (PAT) from stdin' },
    { long: 'username', short: 'u', kind: 'string', help: 'Username' },
  ],
  args: { max: 1 },
  async run(ctx, p) {
    let password = p.str('password');
    if (p.bool('password-stdin')) {
      if (password !== undefined) throw new StatusError('--password and --password-stdin are mutually exclusive', 1);
      if (!p.str('username')) throw new StatusError('Must provide --username with --password-stdin', 1);
      const chunks: Buffer[] = [];
      for await (const c of ctx.stdin) chunks.push(Buffer.from(c as Buffer));
      password = Buffer.concat(chunks).toString().replace(/\r?\n$/, '');
    } else if (password !== undefined) {
      ctx.err.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
    }
    if (!p.str('username') || password === undefined) throw new StatusError('Error: Cannot perform an interactive login from a non TTY device', 1);
    const serveraddress = serverKey(p.args[0]);
    const username = p.str('username') as string;
    const r = await ctx.client.json<{ Status?: string; IdentityToken?: string }>('POST', '/auth', {
      body: { username, password, serveraddress },
    });
    saveCredentials(ctx.env, { username, password, serveraddress, identitytoken: r?.IdentityToken || undefined });
    ctx.out.write(`${r?.Status || 'Login Succeeded'}\n`);
    return 0;
  },
};

export const logout: Command = {
  name: 'logout',
  usage: 'logout [SERVER]',
  description: 'Log out from a registry',
  flags: [],
  args: { max: 1 },
  async run(ctx, p) {
    const server = serverKey(p.args[0]);
    if (!removeCredentials(ctx.env, server)) {
      ctx.out.write(`Not logged in to ${server}\n`);
      return 0;
    }
    ctx.out.write(`Removing login credentials for ${server}\n`);
    return 0;
  },
};

interface SearchRow { name: string; description: string; star_count: number; is_official: boolean; is_automated: boolean }

export const search: Command = {
  name: 'search',
  usage: 'search [OPTIONS] TERM',
  description: 'Search Docker Hub for images',
  flags: [
    { long: 'filter', short: 'f', kind: 'list', type: 'filter', help: 'Filter output based on conditions provided' },
    { long: 'format', kind: 'string', help: 'Pretty-print search using a Go template' },
    { long: 'limit', kind: 'int', help: 'Max number of search results' },
    { long: 'no-trunc', kind: 'bool', help: "Don't truncate output" },
  ],
  args: { min: 1, max: 1 },
  async run(ctx, p) {
    const term = p.args[0]!;
    const slash = term.indexOf('/');
    const domain = slash > 0 && /[.:]|^localhost$/.test(term.slice(0, slash)) ? term.slice(0, slash) : 'docker.io';
    const limit = p.int('limit');
    const results = await ctx.client.json<SearchRow[]>('GET', '/images/search', {
      query: { term, limit: limit ? limit : undefined, filters: filtersJson(p.list('filter')) },
      headers: { 'X-Registry-Auth': registryAuth(ctx, domain) },
    });
    const trunc = !p.bool('no-trunc');
    const rows = results.map((r) => ({
      Name: r.name,
      Description: trunc ? ellipsis(r.description.replace(/\s+/g, ' '), 45) : r.description,
      StarCount: String(r.star_count),
      IsOfficial: r.is_official ? '[OK]' : '',
      IsAutomated: r.is_automated ? '[OK]' : '',
    }));
    ctx.out.write(renderRows(p.str('format') ?? 'table', rows, { Name: 'NAME', Description: 'DESCRIPTION', StarCount: 'STARS', IsOfficial: 'OFFICIAL', IsAutomated: 'AUTOMATED' },
      'table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}'));
    return 0;
  },
};
