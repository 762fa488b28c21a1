/**
 * Commands that make images from containers and Dockerfiles: commit, build.
 */
import crypto from 'node:crypto';
import { createReadStream } from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { IgnoreRules } from '../../build/dockerignore.js';
import type { Command } from '../command.js';
import { StatusError } from '../command.js';
import { ramInBytes } from '../format.js';
import type { Query } from '../http.js';
import type { JsonMessage } from '../progress.js';
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

/** A context dir as a tar stream, with .dockerignore applied (the Dockerfile and .dockerignore always go). */
function contextTar(dir: string, rules: IgnoreRules, always: Set<string>, extra: { name: string; data: Buffer }[]): Readable {
  const pack = tar.pack();
  const add = (header: Partial<tar.Header> & { name: string }, body?: Buffer | Readable): Promise<void> => new Promise((resolve, reject) => {
    if (body === undefined || Buffer.isBuffer(body)) {
      pack.entry(header, body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
      return;
    }
    const entry = pack.entry(header, (err) => (err ? reject(err) : resolve()));
    body.on('error', reject);
    body.pipe(entry as unknown as NodeJS.WritableStream);
  });
  const walk = async (rel: string): Promise<void> => {
    const abs = rel ? path.join(dir, rel) : dir;
    for (const n of (await fsp.readdir(abs)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const st = await fsp.lstat(path.join(dir, r));
      const excluded = !always.has(r) && rules.excludes(r);
      if (excluded && !(st.isDirectory() && rules.mayReinclude(r))) continue;
      const common = { name: r, mode: st.mode & 0o7777, mtime: st.mtime, uid: 0, gid: 0 };
      if (st.isDirectory()) {
        if (!excluded) await add({ ...common, type: 'directory' });
        await walk(r);
      } else if (excluded) continue;
      else if (st.isSymbolicLink()) await add({ ...common, type: 'symlink', linkname: await fsp.readlink(path.join(dir, r)) });
      else if (st.isFile()) await add({ ...common, type: 'file', size: st.size }, createReadStream(path.join(dir, r)));
    }
  };
  void (async () => {
    await walk('');
    for (const e of extra) await add({ name: e.name, mode: 0o644, mtime: new Date(), uid: 0, gid: 0, type: 'file', size: e.data.length }, e.data);
    pack.finalize();
  })().catch((err: Error) => pack.destroy(err));
  return pack as unknown as Readable;
}

async function readStdin(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const isTar = (b: Buffer) => (b[0] === 0x1f && b[1] === 0x8b) || (b.length >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar');

export const build: Command = {
  name: 'build',
  usage: 'build [OPTIONS] PATH | URL | -',
  description: 'Build an image from a Dockerfile',
  flags: [
    { long: 'build-arg', kind: 'list', help: 'Set build-time variables' },
    { long: 'file', short: 'f', kind: 'string', help: "Name of the Dockerfile (Default is 'PATH/Dockerfile')" },
    { long: 'force-rm', kind: 'bool', help: 'Always remove intermediate containers' },
    { long: 'iidfile', kind: 'string', help: 'Write the image ID to the file' },
    { long: 'label', kind: 'list', help: 'Set metadata for an image' },
    { long: 'memory', short: 'm', kind: 'string', type: 'bytes', help: 'Memory limit' },
    { long: 'network', kind: 'string', help: 'Set the networking mode for the RUN instructions during build', default: 'default' },
    { long: 'no-cache', kind: 'bool', help: 'Do not use cache when building the image' },
    { long: 'platform', kind: 'string', help: 'Set platform if server is multi-platform capable' },
    { long: 'pull', kind: 'bool', help: 'Always attempt to pull a newer version of the image' },
    { long: 'quiet', short: 'q', kind: 'bool', help: 'Suppress the build output and print image ID on success' },
    { long: 'rm', kind: 'bool', help: 'Remove intermediate containers after a successful build', default: 'true' },
    { long: 'tag', short: 't', kind: 'list', help: 'Name and optionally a tag in the "name:tag" format' },
    { long: 'target', kind: 'string', help: 'Set the target build stage to build.' },
  ],
  args: { min: 1, max: 1 },
  async run(ctx, p) {
    const [src] = p.args as [string];
    const file = p.str('file');
    const query: Query = {
      t: p.list('tag'),
      buildargs: JSON.stringify(Object.fromEntries(p.list('build-arg').map((a) => {
        const eq = a.indexOf('=');
        // "--build-arg NAME" takes the value from the environment, like docker.
        return eq < 0 ? [a, ctx.env[a] ?? null] : [a.slice(0, eq), a.slice(eq + 1)];
      }).filter(([, v]) => v !== null))),
      labels: JSON.stringify(Object.fromEntries(p.list('label').map((l) => {
        const eq = l.indexOf('=');
        return eq < 0 ? [l, ''] : [l.slice(0, eq), l.slice(eq + 1)];
      }))),
      target: p.str('target'),
      nocache: p.bool('no-cache') || undefined,
      pull: p.bool('pull') || undefined,
      q: p.bool('quiet') || undefined,
      rm: p.has('rm') && !p.bool('rm') ? '0' : '1',
      forcerm: p.bool('force-rm') || undefined,
      memory: p.str('memory') ? ramInBytes(p.str('memory')!) : undefined,
      networkmode: p.str('network'),
      platform: p.str('platform'),
    };
    for (const t of p.list('tag')) {
      try {
        parseRef(t);
      } catch (e) {
        throw new StatusError(`invalid argument "${t}" for "-t, --tag" flag: ${(e as Error).message}`, 125);
      }
    }
    let body: Readable;
    if (src === '-') {
      if (file === '-') throw new StatusError('invalid argument: can\'t use stdin for both build context and dockerfile', 125);
      const data = await readStdin(ctx.stdin);
      if (isTar(data)) {
        body = Readable.from([data]);
        if (file) query.dockerfile = file;
      } else {
        body = contextTarFromFiles([{ name: 'Dockerfile', data }]);
      }
    } else if (/^https?:\/\//.test(src)) {
      query.remote = src;
      if (file) query.dockerfile = file;
      body = Readable.from([]);
    } else {
      const dir = path.resolve(src);
      const st = await fsp.stat(dir).catch(() => null);
      if (!st?.isDirectory()) throw new StatusError(`unable to prepare context: path "${src}" not found`, 1);
      const ignoreText = await fsp.readFile(path.join(dir, '.dockerignore'), 'utf8').catch(() => '');
      const rules = IgnoreRules.parse(ignoreText);
      const extra: { name: string; data: Buffer }[] = [];
      let dfRel = 'Dockerfile';
      if (file === '-') {
        dfRel = `.dockerfile.${crypto.randomBytes(10).toString('hex')}`;
        extra.push({ name: dfRel, data: await readStdin(ctx.stdin) });
      } else if (file) {
        const abs = path.resolve(file);
        const rel = path.relative(dir, abs);
        if (rel.startsWith('..') || path.isAbsolute(rel)) {
          dfRel = `.dockerfile.${crypto.randomBytes(10).toString('hex')}`;
          const data = await fsp.readFile(abs).catch(() => {
            throw new StatusError(`unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat ${abs}: no such file or directory`, 1);
          });
          extra.push({ name: dfRel, data });
        } else dfRel = rel.split(path.sep).join('/');
      }
      query.dockerfile = dfRel;
      body = contextTar(dir, rules, new Set([dfRel, '.dockerignore']), extra);
    }
    const res = await ctx.client.request('POST', '/build', { query, stream: body, contentType: 'application/x-tar' });
    let id = '';
    let buf = '';
    const quiet = p.bool('quiet');
    const handle = (line: string): number | null => {
      if (!line.trim()) return null;
      const m = JSON.parse(line) as JsonMessage;
      if (m.errorDetail || m.error) {
        ctx.err.write(`${m.errorDetail?.message ?? m.error}\n`);
        return m.errorDetail?.code || 1;
      }
      const aux = m.aux as { ID?: string } | undefined;
      if (aux?.ID) id = aux.ID;
      else if (m.stream !== undefined) {
        if (!quiet) ctx.out.write(m.stream);
      } else if (m.status && !quiet) ctx.out.write(`${m.id ? m.id + ': ' : ''}${m.status}\n`);
      return null;
    };
    for await (const chunk of res) {
      buf += (chunk as Buffer).toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const code = handle(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (code !== null) return code;
      }
    }
    const last = handle(buf);
    if (last !== null) return last;
    if (!id) throw new StatusError('the daemon ended the build without an image ID', 1);
    if (quiet) ctx.out.write(`${id}\n`);
    const iid = p.str('iidfile');
    if (iid) await fsp.writeFile(iid, id);
    return 0;
  },
};

function contextTarFromFiles(files: { name: string; data: Buffer }[]): Readable {
  const pack = tar.pack();
  for (const f of files) pack.entry({ name: f.name, mode: 0o644, size: f.data.length, mtime: new Date() }, f.data);
  pack.finalize();
  return pack as unknown as Readable;
}
