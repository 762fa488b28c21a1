/** Docker's `filters` query parameter: {"key":["v1","v2"]} or the older {"key":{"v1":true}}. */
import { InvalidParameter } from '../errors.js';
import { parseGoDuration } from '../util/duration.js';

export type Filters = Map<string, string[]>;

export function parseFilters(raw: string | null, allowed: string[]): Filters {
  const out: Filters = new Map();
  if (!raw) return out;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new InvalidParameter(`invalid filter: ${raw}`);
  }
  if (typeof parsed !== 'object' || parsed === null) throw new InvalidParameter(`invalid filter: ${raw}`);
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (!allowed.includes(key)) throw new InvalidParameter(`invalid filter '${key}'`);
    const values = Array.isArray(value) ? value.map(String) : Object.keys(value as object);
    out.set(key, values);
  }
  return out;
}

/** label filters: "k" (present) or "k=v" (equal). */
export function matchLabels(labels: Record<string, string> | undefined, wanted: string[]): boolean {
  return wanted.every((w) => {
    const eq = w.indexOf('=');
    if (eq < 0) return labels !== undefined && w in labels;
    return labels?.[w.slice(0, eq)] === w.slice(eq + 1);
  });
}

/** Docker's `until` filter as a time in ms: a unix time, an RFC 3339 date, or a Go duration ago. */
export function untilTime(v: string): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (!Number.isNaN(t)) return t;
  try {
    return Date.now() - parseGoDuration(v) / 1e6;
  } catch {
    throw new InvalidParameter(`failed to parse value as time or duration: "${v}"`);
  }
}

/** The earliest of the `until` filters (Infinity without one). */
export function untilOf(f: Filters): number {
  return Math.min(Infinity, ...(f.get('until') ?? []).map(untilTime));
}
