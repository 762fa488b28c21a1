/** save and load: GET /images/get, GET /images/{name}/get, POST /images/load. */
import type { ContentStore } from '../content/index.js';
import { errorMessage } from '../errors.js';
import type { EventBus } from '../events/index.js';
import type { ImageStore } from '../image/index.js';
import { parsePlatform } from '../image/index.js';
import { loadImages } from '../image/load.js';
import { planSave, writeSave } from '../image/save.js';
import type { LayerTarget } from '../storage/index.js';
import type { Context, Router } from './server.js';
import { progressBar } from '../registry/client/progress.js';

export interface SaveLoadDeps { images: ImageStore; content: ContentStore; storage: LayerTarget; events: EventBus; tmp: string }

async function save(ctx: Context, d: SaveLoadDeps, names: string[]): Promise<void> {
  const plan = planSave(d.images, names);
  ctx.res.writeHead(200, { 'Content-Type': 'application/x-tar' });
  await writeSave(plan, d.content, ctx.res);
  for (const item of plan.items) d.events.publish('image', 'save', item.image.id, { name: item.refs[0] ?? item.image.id });
}

export function saveLoadRoutes(router: Router, d: SaveLoadDeps): void {
  router.get('/images/get', (ctx) => save(ctx, d, ctx.query.getAll('names').flatMap((n) => n.split(',')).filter(Boolean)));
  router.get('/images/{name:.+}/get', (ctx) => save(ctx, d, [ctx.params.name]));

  router.post('/images/load', async (ctx) => {
    const q = ctx.query.get('quiet');
    const quiet = q !== null && q !== '' && q !== '0' && q !== 'false';
    ctx.res.writeHead(200, { 'Content-Type': 'application/json' });
    const send = (m: object): void => void ctx.res.write(JSON.stringify(m) + '\n');
    try {
      await loadImages({ ...d, arch: parsePlatform(undefined).architecture }, ctx.req, {
        layer: (id, current, total) => {
          if (!quiet) send({ status: 'Loading layer', progressDetail: { current, total }, progress: progressBar(current, total), id });
        },
        line: (text) => send({ stream: `${text}\n` }),
      });
    } catch (err) {
      // Whatever is left of the body is not read: stop it arriving.
      ctx.req.resume();
      send({ errorDetail: { message: errorMessage(err) }, error: errorMessage(err) });
    }
    ctx.res.end();
  });
}
