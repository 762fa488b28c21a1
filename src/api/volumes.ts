/** /volumes routes: Docker's JSON shapes on top of the volume service. */
import { InvalidParameter } from '../errors.js';
import type { Volume, VolumeService } from '../volume/index.js';
import { parseFilters, matchLabels } from './filters.js';
import { type Router, sendJSON } from './server.js';

function bool(q: URLSearchParams, key: string): boolean {
  const v = q.get(key);
  return v !== null && v !== '' && v !== '0' && v !== 'false';
}

function boolFilter(key: string, v: string): boolean {
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new InvalidParameter(`invalid filter '${key}=${v}'`);
}

function stringMap(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) throw new InvalidParameter(`invalid ${what}: want a map of strings`);
  return v as Record<string, string>;
}

export function volumeRoutes(router: Router, volumes: VolumeService): void {
  router.get('/volumes', (ctx) => {
    const f = parseFilters(ctx.query.get('filters'), ['dangling', 'name', 'driver', 'label']);
    const dangling = f.get('dangling')?.map((v) => boolFilter('dangling', v));
    const list = volumes.list().filter((v: Volume) =>
      (!dangling || dangling.some((d) => d === (volumes.refs(v.Name).length === 0))) &&
      (!f.has('name') || f.get('name')!.some((n) => v.Name.includes(n))) &&
      (!f.has('driver') || f.get('driver')!.includes(v.Driver)) &&
      matchLabels(v.Labels ?? {}, f.get('label') ?? []),
    );
    return { Volumes: list, Warnings: [] };
  });

  router.post('/volumes/create', async (ctx) => {
    const body = (await ctx.json()) as Record<string, unknown>;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidParameter('invalid JSON: volume config must be an object');
    const name = body.Name ?? '';
    if (typeof name !== 'string') throw new InvalidParameter('invalid Name: want a string');
    const driver = body.Driver ?? '';
    if (typeof driver !== 'string') throw new InvalidParameter('invalid Driver: want a string');
    const { volume } = volumes.create(name || undefined, { driver, labels: stringMap(body.Labels, 'Labels'), driverOpts: stringMap(body.DriverOpts, 'DriverOpts') });
    sendJSON(ctx.res, 201, volume);
  });

  router.get('/volumes/{name}', (ctx) => volumes.get(ctx.params.name));

  router.delete('/volumes/{name}', async (ctx) => {
    await volumes.remove(ctx.params.name, { force: bool(ctx.query, 'force') });
  });

  router.post('/volumes/prune', (ctx) => {
    const f = parseFilters(ctx.query.get('filters'), ['label', 'label!', 'all']);
    const all = (f.get('all') ?? []).some((v) => boolFilter('all', v));
    const labels = f.get('label') ?? [];
    const notLabels = f.get('label!') ?? [];
    return volumes.prune((v) => matchLabels(v.Labels ?? {}, labels) && !notLabels.some((l) => matchLabels(v.Labels ?? {}, [l])), all);
  });
}
