/** system df, system prune and builder prune: docker's tables and texts, computed from GET /system/df and the prune APIs. */
import type { Command, Ctx } from '../command.js';
import { filtersJson, renderRows, StatusError } from '../command.js';
import { ellipsis, goQuote, humanSize, ramInBytes, since, tabwrite, truncateId } from '../format.js';
import { ApiError } from '../http.js';
import { confirm } from './containers.js';

interface DfImage { Id: string; RepoTags?: string[] | null; Created: number; Size: number; SharedSize: number; Containers: number }
interface DfContainer { Id: string; Names: string[]; Image: string; Command: string; Created: number; State: string; Status: string; SizeRw?: number; Mounts?: { Type?: string }[] }
interface DfVolume { Name: string; UsageData?: { Size: number; RefCount: number } | null }
interface Df { LayersSize?: number; Images?: DfImage[] | null; Containers?: DfContainer[] | null; Volumes?: DfVolume[] | null; BuildCache?: { Size?: number }[] | null }

const active = (state: string): boolean => /running|paused|restarting/.test(state);

/** "1.2MB (50%)": the share in whole percent, as docker's integer division gives it. */
function reclaim(reclaimable: number, total: number): string {
  return total > 0 ? `${humanSize(reclaimable)} (${Math.floor((reclaimable * 100) / total)}%)` : humanSize(reclaimable);
}

/** The four summary rows of `docker system df`. */
export function dfSummary(df: Df): Record<string, string>[] {
  const images = df.Images ?? [];
  const total = df.LayersSize ?? 0;
  let used = 0;
  for (const i of images) if (i.Containers > 0 && i.Size !== -1 && i.SharedSize !== -1) used += i.Size - i.SharedSize;
  const containers = df.Containers ?? [];
  let cTotal = 0;
  let cFree = 0;
  for (const c of containers) {
    if (c.SizeRw === undefined || c.SizeRw === -1) continue;
    cTotal += c.SizeRw;
    if (!active(c.State)) cFree += c.SizeRw;
  }
  const volumes = df.Volumes ?? [];
  let vTotal = 0;
  let vFree = 0;
  for (const v of volumes) {
    const size = v.UsageData?.Size ?? -1;
    if (size === -1) continue;
    vTotal += size;
    if ((v.UsageData?.RefCount ?? 0) === 0) vFree += size;
  }
  const cache = df.BuildCache ?? [];
  const cacheSize = cache.reduce((a, b) => a + (b.Size ?? 0), 0);
  return [
    { Type: 'Images', TotalCount: String(images.length), Active: String(images.filter((i) => i.Containers > 0).length), Size: humanSize(total), Reclaimable: reclaim(total - used, total) },
    { Type: 'Containers', TotalCount: String(containers.length), Active: String(containers.filter((c) => active(c.State)).length), Size: humanSize(cTotal), Reclaimable: reclaim(cFree, cTotal) },
    { Type: 'Local Volumes', TotalCount: String(volumes.length), Active: String(volumes.filter((v) => (v.UsageData?.RefCount ?? 0) > 0).length), Size: humanSize(vTotal), Reclaimable: reclaim(vFree, vTotal) },
    { Type: 'Build Cache', TotalCount: String(cache.length), Active: '0', Size: humanSize(cacheSize), Reclaimable: humanSize(cacheSize) },
  ];
}

function verbose(df: Df, now = Date.now()): string {
  const img = ['REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS'];
  for (const i of df.Images ?? []) {
    const tags = i.RepoTags?.length ? i.RepoTags : ['<none>:<none>'];
    for (const t of tags) {
      const at = t.lastIndexOf(':');
      const cols = [t.slice(0, at), t.slice(at + 1), truncateId(i.Id), since(i.Created, now), humanSize(i.Size, 3), humanSize(i.SharedSize), humanSize(i.Size - i.SharedSize), String(i.Containers)];
      img.push(cols.join('\t'));
    }
  }
  const con = ['CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES'];
  for (const c of df.Containers ?? []) {
    const vols = (c.Mounts ?? []).filter((m) => m.Type === 'volume').length;
    con.push([truncateId(c.Id), c.Image, goQuote(ellipsis(c.Command, 20)), String(vols), humanSize(c.SizeRw ?? 0, 3), since(c.Created, now), c.Status, (c.Names[0] ?? '').replace(/^\//, '')].join('\t'));
  }
  const vol = ['VOLUME NAME\tLINKS\tSIZE'];
  for (const v of df.Volumes ?? []) vol.push([v.Name, String(v.UsageData?.RefCount ?? 0), humanSize(v.UsageData?.Size ?? 0, 3)].join('\t'));
  const cacheSize = (df.BuildCache ?? []).reduce((a, b) => a + (b.Size ?? 0), 0);
  return [
    'Images space usage:', '', tabwrite(img, 10, 3).trimEnd(), '',
    'Containers space usage:', '', tabwrite(con, 10, 3).trimEnd(), '',
    'Local Volumes space usage:', '', tabwrite(vol, 10, 3).trimEnd(), '',
    `Build cache usage: ${humanSize(cacheSize)}`, '', tabwrite(['CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED'], 10, 3).trimEnd(), '',
  ].join('\n');
}

export const systemDf: Command = {
  name: 'df',
  usage: 'df [OPTIONS]',
  description: 'Show docker disk usage',
  flags: [
    { long: 'format', kind: 'string', help: 'Format output using a custom template' },
    { long: 'verbose', short: 'v', kind: 'bool', help: 'Show detailed information on space usage' },
  ],
  args: { max: 0 },
  async run(ctx, p) {
    const df = await ctx.client.json<Df>('GET', '/system/df');
    const format = p.str('format');
    if (p.bool('verbose') && !format) {
      ctx.out.write(verbose(df));
      return 0;
    }
    const def = 'table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}';
    const headers = { Type: 'TYPE', TotalCount: 'TOTAL', Active: 'ACTIVE', Size: 'SIZE', Reclaimable: 'RECLAIMABLE' };
    ctx.out.write(renderRows(!format || format === 'table' ? def : format, dfSummary(df), headers, def));
    return 0;
  },
};

/** POST to a prune endpoint; null when this daemon has no such API (404 "page not found"). */
async function prune<T>(ctx: Ctx, what: string, filters: string[]): Promise<T | null> {
  try {
    return await ctx.client.json<T>('POST', `/${what}/prune`, { query: { filters: filtersJson(filters) } });
  } catch (e) {
    if (e instanceof ApiError && e.status === 404 && /page not found/.test(e.daemonMessage)) return null;
    throw e;
  }
}

async function hasApi(ctx: Ctx, p: string): Promise<boolean> {
  try {
    await ctx.client.call('GET', p);
    return true;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return false;
    throw e;
  }
}

export const systemPrune: Command = {
  name: 'prune',
  usage: 'prune [OPTIONS]',
  description: 'Remove unused data',
  flags: [
    { long: 'all', short: 'a', kind: 'bool', help: 'Remove all unused images not just dangling ones' },
    { long: 'filter', kind: 'list', type: 'filter', help: 'Provide filter values (e.g. "label=<key>=<value>")' },
    { long: 'force', short: 'f', kind: 'bool', help: 'Do not prompt for confirmation' },
    { long: 'volumes', kind: 'bool', help: 'Prune anonymous volumes' },
  ],
  args: { max: 0 },
  async run(ctx, p) {
    const all = p.bool('all');
    const volumes = p.bool('volumes');
    const filters = p.list('filter');
    // Refuse before anything is removed, rather than prune half of what was asked.
    if (volumes && !(await hasApi(ctx, '/volumes'))) {
      throw new StatusError('berth: this daemon does not manage volumes yet, so --volumes cannot be honoured; nothing was pruned', 1);
    }
    const warning = [
      'WARNING! This will remove:',
      '  - all stopped containers',
      '  - all networks not used by at least one container',
      ...(volumes ? ['  - all anonymous volumes not used by at least one container'] : []),
      all ? '  - all images without at least one container associated to them' : '  - all dangling images',
      all ? '  - all build cache' : '  - unused build cache',
      '',
    ].join('\n');
    if (!p.bool('force') && !(await confirm(ctx, warning))) return 0;
    let space = 0;
    const section = (title: string, lines: string[]): void => {
      if (lines.length) ctx.out.write(`${title}\n${lines.map((l) => `${l}\n`).join('')}\n`);
    };
    const c = await prune<{ ContainersDeleted?: string[] | null; SpaceReclaimed?: number }>(ctx, 'containers', filters);
    space += c?.SpaceReclaimed ?? 0;
    section('Deleted Containers:', c?.ContainersDeleted ?? []);
    const n = await prune<{ NetworksDeleted?: string[] | null }>(ctx, 'networks', filters);
    section('Deleted Networks:', n?.NetworksDeleted ?? []);
    if (volumes) {
      const v = await prune<{ VolumesDeleted?: string[] | null; SpaceReclaimed?: number }>(ctx, 'volumes', filters);
      space += v?.SpaceReclaimed ?? 0;
      section('Deleted Volumes:', v?.VolumesDeleted ?? []);
    }
    const i = await prune<{ ImagesDeleted?: { Untagged?: string; Deleted?: string }[] | null; SpaceReclaimed?: number }>(ctx, 'images', [...filters, `dangling=${!all}`]);
    space += i?.SpaceReclaimed ?? 0;
    section('Deleted Images:', (i?.ImagesDeleted ?? []).map((d) => (d.Untagged ? `untagged: ${d.Untagged}` : `deleted: ${d.Deleted}`)));
    // The build cache takes only `until` (docker passes its label filters too; berth's cache has no labels).
    const b = await prune<BuildPrune>(ctx, 'build', filters.filter((f) => f.startsWith('until=')));
    space += b?.SpaceReclaimed ?? 0;
    section('Deleted build cache objects:', b?.CachesDeleted ?? []);
    ctx.out.write(`Total reclaimed space: ${humanSize(space)}\n`);
    return 0;
  },
};

interface BuildPrune { CachesDeleted?: string[] | null; SpaceReclaimed?: number }

export const builderPrune: Command = {
  name: 'prune',
  usage: 'prune',
  description: 'Remove build cache',
  flags: [
    { long: 'all', short: 'a', kind: 'bool', help: 'Remove all unused build cache, not just dangling ones' },
    { long: 'filter', kind: 'list', type: 'filter', help: 'Provide filter values (e.g. "until=24h")' },
    { long: 'force', short: 'f', kind: 'bool', help: 'Do not prompt for confirmation' },
    { long: 'keep-storage', kind: 'string', help: 'Amount of disk space to keep for cache' },
  ],
  args: { max: 0 },
  async run(ctx, p) {
    const warning = p.bool('all') ? 'WARNING! This will remove all build cache.' : 'WARNING! This will remove all dangling build cache.';
    if (!p.bool('force') && !(await confirm(ctx, warning))) return 0;
    const keep = p.str('keep-storage');
    const r = await ctx.client.json<BuildPrune>('POST', '/build/prune', {
      query: { all: p.bool('all') || undefined, filters: filtersJson(p.list('filter')), 'keep-storage': keep === undefined ? undefined : ramInBytes(keep) },
    });
    const deleted = r.CachesDeleted ?? [];
    if (deleted.length) ctx.out.write(`Deleted build cache objects:\n${deleted.map((d) => `${d}\n`).join('')}\n`);
    ctx.out.write(`Total reclaimed space: ${humanSize(r.SpaceReclaimed ?? 0)}\n`);
    return 0;
  },
};
