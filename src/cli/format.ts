/**
 * Output helpers that reproduce what docker prints, byte for byte where scripts
 * care: Go's tabwriter layout (minwidth 10, padding 3), go-units human sizes and
 * durations, ID truncation and the "…" ellipsis.
 */

/** Width in runes, as tabwriter counts (not UTF-16 units). */
function width(s: string): number {
  return [...s].length;
}

/**
 * Lays out tab-separated lines like Go's tabwriter.NewWriter(out, 10, 1, 3, ' ', 0):
 * a cell is a tab-terminated segment; the last segment of a line is not part of a column.
 */
export function tabwrite(lines: readonly string[], minwidth = 10, padding = 3): string {
  const rows = lines.map((l) => l.split('\t'));
  const widths: number[] = [];
  for (const cells of rows) {
    for (let c = 0; c < cells.length - 1; c++) widths[c] = Math.max(widths[c] ?? 0, width(cells[c]) + padding, minwidth);
  }
  return rows
    .map((cells) => cells.map((cell, c) => (c < cells.length - 1 ? cell + ' '.repeat(widths[c] - width(cell)) : cell)).join(''))
    .map((l) => l + '\n')
    .join('');
}

export { humanDuration } from '../util/units.js';
import { humanDuration } from '../util/units.js';

/** "<duration> ago" for a unix timestamp in seconds, as ps/images/history print it. */
export function since(unixSeconds: number, now = Date.now()): string {
  return `${humanDuration(now - unixSeconds * 1000)} ago`;
}

/**
 * Go's %.{p}g: exact decimal rounding with ties to even (Go rounds 15.625 to "15.62",
 * where toPrecision gives "15.63"), exponent form when exp < -4 or exp >= p,
 * trailing zeros removed.
 */
export function goG(x: number, precision: number): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : x < 0 ? '-Inf' : 'NaN';
  const neg = x < 0;
  const [mant, expStr] = Math.abs(x).toExponential(80).split('e');
  const digits = mant.replace('.', '');
  let exp = Number(expStr);
  let kept = digits.slice(0, precision).split('').map(Number);
  const rest = digits.slice(precision);
  const tie = rest[0] === '5' && /^0*$/.test(rest.slice(1));
  const up = rest[0] > '5' || (rest[0] === '5' && !tie) || (tie && kept[kept.length - 1] % 2 === 1);
  if (up) {
    let i = kept.length - 1;
    while (i >= 0 && kept[i] === 9) kept[i--] = 0;
    if (i < 0) {
      kept = [1, ...kept.slice(0, -1)];
      exp++;
    } else kept[i]++;
  }
  const ds = kept.join('').replace(/0+$/, '') || '0';
  let out: string;
  if (exp < -4 || exp >= precision) {
    out = ds[0] + (ds.length > 1 ? '.' + ds.slice(1) : '') + 'e' + (exp < 0 ? '-' : '+') + String(Math.abs(exp)).padStart(2, '0');
  } else if (exp >= 0) {
    const int = ds.slice(0, exp + 1).padEnd(exp + 1, '0');
    const frac = ds.slice(exp + 1);
    out = frac ? `${int}.${frac}` : int;
  } else {
    out = '0.' + '0'.repeat(-exp - 1) + ds;
  }
  return neg ? '-' + out : out;
}

const decimal = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];
const binary = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB', 'ZiB', 'YiB'];

function scaled(size: number, base: number, units: string[], precision: number): string {
  let i = 0;
  while (size >= base && i < units.length - 1) {
    size /= base;
    i++;
  }
  return goG(size, precision) + units[i];
}

/** go-units HumanSizeWithPrecision (images and ps use precision 3). */
export function humanSize(bytes: number, precision = 4): string {
  return scaled(bytes, 1000, decimal, precision);
}

/** go-units BytesSize (binary units, as `info` prints Total Memory). */
export function bytesSize(bytes: number): string {
  return scaled(bytes, 1024, binary, 4);
}

/** go-units RAMInBytes: "512m", "1g", "100k", "1.5GiB" → bytes. */
export function ramInBytes(s: string): number {
  const m = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(s);
  if (!m) {
    const num = /^\d+(?:\.\d+)*/.exec(s);
    throw new Error(num ? `invalid suffix: '${s.slice(num[0].length)}'` : `invalid size: '${s}'`);
  }
  const mult: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
  return Math.trunc(Number(m[1]) * (m[2] ? mult[m[2].toLowerCase()] : 1));
}

/** Docker's stringid.TruncateID: drop the algorithm prefix, keep 12 hex digits. */
export function truncateId(id: string): string {
  const i = id.indexOf(':');
  const hex = i >= 0 ? id.slice(i + 1) : id;
  return hex.slice(0, 12);
}

/** Docker's formatter.Ellipsis: at most max runes, the last one "…" when cut. */
export function ellipsis(s: string, max: number): string {
  const r = [...s];
  if (r.length <= max) return s;
  if (max <= 0) return '';
  return r.slice(0, max - 1).join('') + '…';
}

/** Go's strconv.Quote for the strings a container command holds. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + '"';
}
