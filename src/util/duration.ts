/**
 * Go's time.Duration in text, both ways, in nanoseconds: what docker's duration flags accept
 * (`--health-interval 1m30s`) and how dockerd prints a duration in a message ("exceeded timeout (1.5s)").
 */

const UNITS: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** time.ParseDuration, in nanoseconds; throws an Error with Go's message. */
export function parseGoDuration(text: string): number {
  const quoted = JSON.stringify(text);
  let s = text;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') throw new Error(`time: invalid duration ${quoted}`);
  let total = 0;
  while (s !== '') {
    const num = /^(\d*)(?:\.(\d*))?/.exec(s)!;
    if (num[0] === '' || num[0] === '.') throw new Error(`time: invalid duration ${quoted}`);
    s = s.slice(num[0].length);
    const unit = /^[^\d.]*/.exec(s)![0];
    if (unit === '') throw new Error(`time: missing unit in duration ${quoted}`);
    const scale = UNITS[unit];
    if (scale === undefined) throw new Error(`time: unknown unit ${JSON.stringify(unit)} in duration ${quoted}`);
    s = s.slice(unit.length);
    total += Number(`${num[1] || '0'}.${num[2] || '0'}`) * scale;
  }
  return sign * Math.round(total);
}

/** The digits of n / 10^digits with trailing zeros (and a bare point) removed: 1500, 3 → "1.5". */
function fraction(n: number, digits: number): string {
  const whole = Math.trunc(n / 10 ** digits);
  const rest = String(n % 10 ** digits).padStart(digits, '0').replace(/0+$/, '');
  return rest ? `${whole}.${rest}` : String(whole);
}

/** time.Duration.String(): "0s", "500ms", "1.5s", "1m30s", "1h0m0s". */
export function formatGoDuration(ns: number): string {
  const n = Math.round(Math.abs(ns));
  const sign = ns < 0 ? '-' : '';
  if (n === 0) return '0s';
  if (n < 1e3) return `${sign}${n}ns`;
  if (n < 1e6) return `${sign}${fraction(n, 3)}µs`;
  if (n < 1e9) return `${sign}${fraction(n, 6)}ms`;
  const h = Math.trunc(n / 3600e9);
  const m = Math.trunc((n % 3600e9) / 60e9);
  const s = fraction(n % 60e9, 9);
  if (h > 0) return `${sign}${h}h${m}m${s}s`;
  if (m > 0) return `${sign}${m}m${s}s`;
  return `${sign}${s}s`;
}
