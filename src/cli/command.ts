/**
 * What every `berth` subcommand is: a row in a table (name, usage, flags, arity)
 * plus an async run(ctx, parsed) → exit code. main.ts parses flags, checks arity,
 * builds the Ctx, calls run, and maps thrown errors to docker's messages and codes.
 */
import type { Readable, Writable } from 'node:stream';
import type { FlagSpec, Parsed } from './flags.js';
import type { ApiClient } from './http.js';
import { normalizeFormat, Template } from './template.js';
import { tabwrite } from './format.js';

export interface Ctx {
  client: ApiClient;
  out: Writable & { isTTY?: boolean; columns?: number; rows?: number };
  err: Writable & { isTTY?: boolean };
  stdin: Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  env: NodeJS.ProcessEnv;
  /** "berth run", "berth container ls": for help texts and error hints. */
  path: string;
}

export interface Command {
  name: string;
  aliases?: string[];
  usage: string;
  description: string;
  flags: FlagSpec[];
  /** false for run/create: flags end at IMAGE. */
  interspersed?: boolean;
  args?: { min?: number; max?: number };
  run(ctx: Ctx, p: Parsed): Promise<number>;
}

/** An error that already carries docker's final text and exit code. */
export class StatusError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

/** docker's `--filter key=value` → the API's {"key":{"value":true}} JSON. */
export function filtersJson(list: string[]): string | undefined {
  if (list.length === 0) return undefined;
  const f: Record<string, Record<string, boolean>> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new StatusError(`invalid argument "${item}" for "-f, --filter" flag: bad format of filter (expected name=value)`, 125);
    const k = item.slice(0, eq).trim().toLowerCase();
    (f[k] ??= {})[item.slice(eq + 1)] = true;
  }
  return JSON.stringify(f);
}

/**
 * Renders rows through a --format (or the default table). For `table` formats the
 * header line is the same template executed against the headers map, as docker does.
 */
export function renderRows(
  format: string,
  rows: Array<Record<string, unknown>>,
  headers: Record<string, string>,
  defaultTable: string,
): string {
  const { table } = normalizeFormat(format);
  let { body } = normalizeFormat(format);
  if (table && body === '') body = normalizeFormat(defaultTable).body;
  const tpl = Template.compile(body);
  const lines = rows.map((r) => tpl.execute(r));
  if (!table) return lines.map((l) => l + '\n').join('');
  const headerCtx: Record<string, unknown> = {};
  for (const k of Object.keys(rows[0] ?? headers)) headerCtx[k] = headers[k] ?? k.toUpperCase();
  for (const [k, v] of Object.entries(headers)) headerCtx[k] = v;
  let head: string;
  try {
    head = tpl.execute(headerCtx);
  } catch {
    head = '';
  }
  return tabwrite([head, ...lines].flatMap((l) => l.split('\n')));
}
