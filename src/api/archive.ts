/** A container's files over HTTP: the archive API (cp), export and changes (diff). */
import type { ContainerFiles } from '../container/archive.js';
import { encodeStat } from '../container/archive.js';
import { InvalidParameter } from '../errors.js';
import type { Context, Router } from './server.js';

const STAT_HEADER = 'X-Docker-Container-Path-Stat';

function bool(q: URLSearchParams, key: string): boolean {
  const v = q.get(key);
  return v !== null && v !== '' && v !== '0' && v !== 'false';
}

function pathParam(ctx: Context): string {
  const p = ctx.query.get('path');
  if (!p) throw new InvalidParameter('path cannot be empty');
  return p;
}

export function archiveRoutes(router: Router, files: ContainerFiles): void {
  // HEAD first: the router lets HEAD fall through to a GET route of the same path.
  router.head('/containers/{id}/archive', async (ctx) => {
    const stat = await files.stat(ctx.params.id, pathParam(ctx));
    ctx.res.writeHead(200, { [STAT_HEADER]: encodeStat(stat), 'Content-Type': 'application/json' });
    ctx.res.end();
  });

  router.get('/containers/{id}/archive', async (ctx) => {
    await files.archive(ctx.params.id, pathParam(ctx), (stat) => {
      ctx.res.writeHead(200, { [STAT_HEADER]: encodeStat(stat), 'Content-Type': 'application/x-tar' });
      return ctx.res;
    });
  });

  router.put('/containers/{id}/archive', async (ctx) => {
    await files.extract(ctx.params.id, pathParam(ctx), ctx.req, {
      noOverwriteDirNonDir: bool(ctx.query, 'noOverwriteDirNonDir'),
      copyUIDGID: bool(ctx.query, 'copyUIDGID'),
    });
    // The docker client takes nothing but 200 here.
    ctx.res.writeHead(200, { 'Content-Length': '0' });
    ctx.res.end();
  });

  router.get('/containers/{id}/export', async (ctx) => {
    await files.export(ctx.params.id, () => {
      ctx.res.writeHead(200, { 'Content-Type': 'application/x-tar' });
      return ctx.res;
    });
  });

  router.get('/containers/{id}/changes', (ctx) => files.changes(ctx.params.id));
}
