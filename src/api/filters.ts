/** Docker's `filters` query parameter: {"key":["v1","v2"]} or the older {"key":{"v1":true}}. */
import { InvalidParameter } from '../errors.js';

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
