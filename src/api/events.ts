/**
 * GET /events: the bus's events in Docker's wire JSON, one object a line.
 *
 * `since` replays what the bus still keeps from that time on, then streams live events; `until` ends the
 * stream at that time (at once when it has passed, after the replay; alone, it replays all that is kept). The replay and the live subscription
 * are taken in the same tick, so no event falls between them and none is sent twice.
 */
import type { ServerResponse } from 'node:http';
import { InvalidParameter } from '../errors.js';
import type { BerthEvent, EventBus } from '../events/index.js';
import type { Router } from './server.js';
import { matchLabels, parseFilters, type Filters } from './filters.js';

const FILTER_KEYS = ['config', 'container', 'daemon', 'event', 'image', 'label', 'network', 'node', 'plugin', 'scope', 'secret', 'service', 'type', 'volume'];

const NS_PER_S = 1_000_000_000n;

/**
 * Docker's timestamp query values: unix seconds with an optional fraction ("1700000000", "1700000000.123456789"),
 * which is what the docker CLI sends after resolving durations and dates itself; RFC 3339 is accepted too.
 * Returns nanoseconds since the epoch, or undefined for an absent value.
 */
export function parseEventTime(raw: string | null | undefined): bigint | undefined {
  if (raw === null || raw === undefined || raw === '') return undefined;
  const unix = /^(-?\d+)(?:\.(\d+))?$/.exec(raw);
  if (unix) {
    const frac = (unix[2] ?? '').slice(0, 9).padEnd(9, '0');
    const sec = BigInt(unix[1]!);
    return sec * NS_PER_S + (sec < 0n ? -1n : 1n) * BigInt(frac);
  }
  const rfc = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/i.exec(raw);
  if (rfc) {
    const ms = Date.parse(`${rfc[1]}${rfc[3]!.toUpperCase()}`);
    if (!Number.isNaN(ms)) return BigInt(ms) * 1_000_000n + BigInt((rfc[2] ?? '').padEnd(9, '0'));
  }
  // dockerd's own words for a value that is not "<seconds>[.<nanoseconds>]".
  const [sec, frac] = raw.split('.', 2) as [string, string | undefined];
  const bad = /^-?\d+$/.test(sec) && frac !== undefined ? frac : sec;
  throw new InvalidParameter(`strconv.ParseInt: parsing ${JSON.stringify(bad)}: invalid syntax`);
}

/** Docker's events filter (dockerd daemon/events): every given key must match. */
export function eventMatcher(filters: Filters): (e: BerthEvent) => boolean {
  const exact = (key: string, ...values: (string | undefined)[]) => {
    const want = filters.get(key);
    return !want || values.some((v) => v !== undefined && want.includes(v));
  };
  // container, network, volume, daemon…: the object's ID or name, either in full or by a prefix.
  const byName = (key: string, e: BerthEvent) => {
    const want = filters.get(key);
    if (!want) return true;
    return [e.id, e.attributes.name].some((v) => v !== undefined && want.some((w) => v.startsWith(w)));
  };
  // "busybox:latest" also matches image=busybox; an image ID ("sha256:…") is not a name with a tag.
  const withoutTag = (ref: string | undefined) => (ref?.startsWith('sha256:') ? ref : ref?.replace(/:[\w][\w.-]*$/, ''));
  return (e) => {
    const image = e.type === 'image' ? e.attributes.name : e.attributes.image;
    return (
      // "exec_start: sh -c …" is matched by "exec_start" too.
      exact('event', e.action, e.action.split(':')[0]) &&
      exact('type', e.type) &&
      exact('scope', 'local') &&
      ['container', 'daemon', 'network', 'volume', 'plugin', 'node', 'service', 'secret', 'config'].every((k) => byName(k, e)) &&
      exact('image', e.id, image, withoutTag(e.id), withoutTag(image)) &&
      (!filters.has('label') || matchLabels(e.attributes, filters.get('label')!))
    );
  };
}

/**
 * One event as dockerd (20.10+) writes it, newline-terminated. Container and image events carry the
 * legacy status/id/from fields too. timeNano is written from the bigint itself: it exceeds a double's precision.
 */
export function encodeEvent(e: BerthEvent): string {
  const legacy = e.type === 'container'
    ? { status: e.action, id: e.id, from: e.attributes.image ?? '' }
    : e.type === 'image' ? { status: e.action, id: e.id } : {};
  const head = JSON.stringify({
    ...legacy,
    Type: e.type,
    Action: e.action,
    Actor: { ID: e.id, Attributes: e.attributes },
    scope: 'local',
    time: Number(e.timeNano / NS_PER_S),
  });
  return `${head.slice(0, -1)},"timeNano":${e.timeNano}}\n`;
}

export function eventRoutes(router: Router, bus: EventBus): void {
  router.get('/events', async (ctx) => {
    const q = ctx.query;
    const since = parseEventTime(q.get('since'));
    const until = parseEventTime(q.get('until'));
    if (since !== undefined && until !== undefined && until < since) {
      throw new InvalidParameter(`\`since\` time (${q.get('since')}) cannot be after \`until\` time (${q.get('until')})`);
    }
    const match = eventMatcher(parseFilters(q.get('filters'), FILTER_KEYS));
    await stream(ctx.res, bus, match, since, until);
  });
}

async function stream(res: ServerResponse, bus: EventBus, match: (e: BerthEvent) => boolean, since?: bigint, until?: bigint): Promise<void> {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.flushHeaders();
  const send = (e: BerthEvent) => {
    if (match(e) && !res.destroyed) res.write(encodeEvent(e));
  };
  const nowNs = () => BigInt(Date.now()) * 1_000_000n;
  // Like dockerd, either bound asks for the kept history: `until` alone replays all of it up to then.
  if (since !== undefined || until !== undefined) for (const e of bus.history(since, until)) send(e);
  if (until !== undefined && until <= nowNs()) {
    res.end();
    return;
  }
  await new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      off();
      clearTimeout(timer);
      resolve();
    };
    const off = bus.subscribe((e) => {
      if (until !== undefined && e.timeNano > until) return done();
      send(e);
    });
    res.on('close', done);
    // Past setTimeout's range (~24 days) the first later event ends the stream instead.
    const delay = until === undefined ? Infinity : Number((until - nowNs()) / 1_000_000n) + 1;
    if (delay <= 2 ** 31 - 1) timer = setTimeout(done, delay);
  });
  res.end();
}
