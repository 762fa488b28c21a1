/**
 * POST /build: the classic builder's API. The body is the context tar; the answer is Docker's JSON
 * stream ({"stream": "Step 1/5 : …"}, {"aux": {"ID": …}}, errors as errorDetail), so `docker build`
 * works unchanged. Query options berth does not implement are refused by name.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { BuildContext } from '../build/context.js';
import { type BuildMessage, BuildError, Builder, type BuilderDeps } from '../build/builder.js';
import { InvalidParameter, errorMessage } from '../errors.js';
import { parseReference, pruneImages } from '../image/index.js';
import { parseFilters, untilOf } from './filters.js';
import type { Router } from './server.js';

export interface BuildRouteDeps extends BuilderDeps {
  /** Where contexts are unpacked while a build runs (under the data root). */
  workRoot: string;
}

function bool(q: URLSearchParams, key: string, def = false): boolean {
  const v = q.get(key);
  if (v === null || v === '') return def;
  return !(v === '0' || v.toLowerCase() === 'false');
}

function jsonParam<T>(q: URLSearchParams, key: string, def: T): T {
  const v = q.get(key);
  if (v === null || v === '' || v === 'null') return def;
  try {
    return JSON.parse(v) as T;
  } catch {
    throw new InvalidParameter(`invalid ${key} value: ${v}`);
  }
}

/** Options of the API that berth's builder does not implement: refused unless left at their default. */
const NOT_YET: [string, (v: string) => boolean][] = [
  ['extrahosts', (v) => v !== ''],
  ['cpusetcpus', (v) => v !== ''],
  ['cpusetmems', (v) => v !== ''],
  ['cpushares', (v) => v !== '0'],
  ['cpuperiod', (v) => v !== '0'],
  ['cpuquota', (v) => v !== '0'],
  ['memswap', (v) => v !== '0' && v !== '-1'],
  ['cgroupparent', (v) => v !== ''],
  ['shmsize', (v) => v !== '0'],
  ['squash', (v) => v !== '0' && v !== 'false'],
  ['cachefrom', (v) => v !== '[]' && v !== 'null'],
  ['ulimits', (v) => v !== '[]' && v !== 'null'],
  ['isolation', (v) => v !== '' && v !== 'default'],
  ['outputs', (v) => v !== '' && v !== '[]' && v !== 'null'],
];

const ARCHIVE_MAGIC = (b: Buffer) => (b[0] === 0x1f && b[1] === 0x8b) || (b.length >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar');

export function buildRoutes(router: Router, d: BuildRouteDeps): void {
  /**
   * `docker builder prune` (and `system prune`): the classic builder's cache is its step records and
   * the intermediate images they name. Forget the records, then remove those images that nothing
   * needs any more (no tag, no child image, no container); images that still back a tagged one stay.
   */
  router.post('/build/prune', async (ctx) => {
    const q = ctx.query;
    for (const key of ['keep-storage', 'reserved-space', 'max-used-space', 'min-free-space']) {
      const v = q.get(key);
      if (v !== null && v !== '' && v !== '0') throw new InvalidParameter(`build prune option ${key} is not supported by berth yet`);
    }
    const filters = parseFilters(q.get('filters'), ['until']);
    const removed = d.cache.prune(untilOf(filters));
    const cached = new Set(removed.map((r) => r.imageId));
    const pruned = await pruneImages(d.images, (id) => d.containers.usersOf(id), { all: false, match: (img) => cached.has(img.id) });
    return { CachesDeleted: removed.length ? removed.map((r) => r.key) : null, SpaceReclaimed: pruned.SpaceReclaimed };
  });

  router.post('/build', async (ctx) => {
    const q = ctx.query;
    if (q.get('version') === '2') throw new InvalidParameter('BuildKit (version=2) is not supported by berth; use the classic builder (DOCKER_BUILDKIT=0)');
    for (const [key, isSet] of NOT_YET) {
      const v = q.get(key);
      if (v !== null && isSet(v)) throw new InvalidParameter(`build option ${key} is not supported by berth yet`);
    }
    const tags = q.getAll('t').filter(Boolean);
    for (const t of tags) {
      if (parseReference(t).digest !== undefined) throw new InvalidParameter('refusing to create a tag with a digest reference');
    }
    const buildArgs = jsonParam<Record<string, string | null>>(q, 'buildargs', {});
    const labels = jsonParam<Record<string, string>>(q, 'labels', {});
    const memoryRaw = q.get('memory');
    if (memoryRaw && !/^\d+$/.test(memoryRaw)) throw new InvalidParameter(`invalid memory value: ${memoryRaw}`);
    const memory = memoryRaw ? Number(memoryRaw) : 0;
    const networkMode = q.get('networkmode') || 'default';
    if (!['default', 'bridge', 'none', 'host'].includes(networkMode)) throw new InvalidParameter(`network mode ${networkMode} is not supported for builds yet`);
    const quiet = bool(q, 'q');
    const remote = q.get('remote');
    let dockerfileName = q.get('dockerfile') || 'Dockerfile';

    const dir = path.join(d.workRoot, crypto.randomBytes(12).toString('hex'));
    const abort = new AbortController();
    ctx.res.on('close', () => { if (!ctx.res.writableFinished) abort.abort(); });
    ctx.res.writeHead(200, { 'Content-Type': 'application/json' });
    const write = (m: BuildMessage) => {
      if (quiet && m.stream !== undefined) return;
      if (!ctx.res.destroyed) ctx.res.write(JSON.stringify(m) + '\r\n');
    };
    let context: BuildContext | null = null;
    let failure: unknown;
    try {
      let body: Readable = ctx.req;
      let dockerfileText: string | null = null;
      if (remote) {
        // Only for contexts served on this machine: the daemon makes no other outbound request.
        const url = new URL(remote);
        if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname) || !/^https?:$/.test(url.protocol)) {
          throw new InvalidParameter(`remote contexts other than http(s) on the loopback address are not supported: ${remote}`);
        }
        ctx.req.resume();
        const res = await fetch(remote, { signal: abort.signal });
        if (!res.ok || !res.body) throw new InvalidParameter(`unable to download remote context ${remote}: ${res.status} ${res.statusText}`);
        await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
        const file = `${dir}.remote`;
        await pipeline(Readable.fromWeb(res.body as WebReadableStream), fs.createWriteStream(file));
        const head = Buffer.alloc(512);
        const fh = await fsp.open(file, 'r');
        const { bytesRead } = await fh.read(head, 0, 512, 0);
        await fh.close();
        if (ARCHIVE_MAGIC(head.subarray(0, bytesRead))) body = fs.createReadStream(file);
        else {
          dockerfileText = await fsp.readFile(file, 'utf8');
          body = Readable.from([Buffer.alloc(1024)]);
        }
        await fsp.rm(file, { force: true });
      }
      const unpacked = await BuildContext.unpack(body, dir, dockerfileName);
      context = unpacked.context;
      if (dockerfileText === null) dockerfileText = unpacked.dockerfile;
      else dockerfileName = 'Dockerfile';
      if (dockerfileText === null) throw new InvalidParameter(`Cannot locate specified Dockerfile: ${dockerfileName}`);
      const builder = new Builder(d, {
        dockerfile: dockerfileText,
        dockerfileName: path.posix.basename(dockerfileName),
        context,
        tags,
        buildArgs,
        target: q.get('target') || undefined,
        labels,
        noCache: bool(q, 'nocache'),
        pull: bool(q, 'pull'),
        rm: bool(q, 'rm', true),
        forceRm: bool(q, 'forcerm'),
        memory,
        networkMode,
        platform: q.get('platform') || undefined,
        out: write,
        signal: abort.signal,
      });
      const img = await builder.run();
      if (quiet) ctx.res.write(JSON.stringify({ stream: `${img.id}\n` }) + '\r\n');
    } catch (err) {
      failure = err;
    }
    // Cleaned up before the last message: a client that exits on it finds nothing left behind.
    if (context) await context.remove();
    else await fsp.rm(dir, { recursive: true, force: true });
    if (failure !== undefined) {
      const message = errorMessage(failure);
      const code = failure instanceof BuildError ? failure.code : 1;
      if (!ctx.res.destroyed) ctx.res.write(JSON.stringify({ errorDetail: { code, message }, error: message }) + '\r\n');
    }
    ctx.res.end();
  });
}
