/**
 * Dockerfile-style `--change` lines for `docker import` / `docker commit`, applied to an image's
 * container config: CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK.
 */
import * as path from 'node:path';
import { InvalidParameter } from '../errors.js';
import type { ContainerConfig, HealthConfig } from './store.js';
import { parseGoDuration } from '../util/duration.js';

const ALLOWED = new Set(['CMD', 'ENTRYPOINT', 'ENV', 'WORKDIR', 'USER', 'LABEL', 'EXPOSE', 'VOLUME', 'STOPSIGNAL', 'HEALTHCHECK', 'ONBUILD']);
const SUPPORTED = new Set(['CMD', 'ENTRYPOINT', 'ENV', 'WORKDIR', 'USER', 'LABEL', 'EXPOSE', 'VOLUME', 'STOPSIGNAL', 'HEALTHCHECK']);

/** JSON array of strings ("exec form"), or null if the text is not one. */
function jsonArray(s: string): string[] | null {
  if (!s.startsWith('[')) return null;
  try {
    const v: unknown = JSON.parse(s);
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : null;
  } catch {
    return null;
  }
}

/** Splits on unquoted whitespace, honouring "…", '…' and backslash escapes, and removing the quotes. */
function words(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (quote) {
      if (ch === quote) quote = null;
      else if (ch === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (ch === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (quote) throw new InvalidParameter(`unexpected end of statement while looking for matching ${quote}`);
  if (inWord) out.push(cur);
  return out;
}

/** "k=v k2='v 2'" → pairs; the legacy "k v w" form (one pair, value is the rest) when there is no '='. */
function keyValues(instr: string, rest: string): [string, string][] {
  const first = words(rest)[0] ?? '';
  if (!first.includes('=')) {
    const m = /^(\S+)\s+(.*)$/s.exec(rest);
    if (!m) throw new InvalidParameter(`${instr} requires at least one argument`);
    return [[m[1]!, words(m[2]!).join(' ')]];
  }
  return words(rest).map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw new InvalidParameter(`${instr} names can not be blank`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

const HEALTH_FLAGS: Record<string, Exclude<keyof HealthConfig, 'Test'>> = {
  interval: 'Interval', timeout: 'Timeout', 'start-period': 'StartPeriod', 'start-interval': 'StartInterval', retries: 'Retries',
};

/**
 * The Dockerfile's HEALTHCHECK arguments: `NONE`, or `[--interval=D] [--timeout=D] [--start-period=D]
 * [--start-interval=D] [--retries=N] CMD command` (exec form → CMD, shell form → CMD-SHELL).
 */
export function parseHealthcheck(rest: string): HealthConfig {
  let s = rest.trim();
  const hc: HealthConfig = {};
  for (let m = /^--([a-z-]+)=(\S*)\s*/.exec(s); m; m = /^--([a-z-]+)=(\S*)\s*/.exec(s)) {
    const key = HEALTH_FLAGS[m[1]!];
    if (!key) throw new InvalidParameter(`unknown flag: ${m[1]}`);
    if (key === 'Retries') {
      if (!/^-?\d+$/.test(m[2]!)) throw new InvalidParameter(`strconv.ParseInt: parsing ${JSON.stringify(m[2])}: invalid syntax`);
      const n = Number(m[2]);
      if (n < 1) throw new InvalidParameter(`--retries must be at least 1 (not ${n})`);
      hc.Retries = n;
    } else {
      let ns: number;
      try {
        ns = parseGoDuration(m[2]!);
      } catch (e) {
        throw new InvalidParameter((e as Error).message);
      }
      if (ns !== 0 && ns < 1e6) throw new InvalidParameter(`${m[1]} cannot be less than 1ms`);
      hc[key] = ns;
    }
    s = s.slice(m[0].length);
  }
  const m = /^(\S+)\s*(.*)$/s.exec(s);
  const type = m?.[1]?.toUpperCase();
  if (type === 'NONE') {
    if (m![2] || Object.keys(hc).length) throw new InvalidParameter('HEALTHCHECK NONE takes no arguments');
    return { Test: ['NONE'] };
  }
  if (type !== 'CMD') throw new InvalidParameter(`Unknown type ${JSON.stringify(m?.[1] ?? '')} in HEALTHCHECK (try CMD)`);
  const cmd = m![2]!.trim();
  if (!cmd) throw new InvalidParameter('Missing command after HEALTHCHECK CMD');
  const argv = jsonArray(cmd);
  return { Test: argv ? ['CMD', ...argv] : ['CMD-SHELL', cmd], ...hc };
}

/** Applies each change line to a copy of `config`; InvalidParameter on anything docker would refuse. */
export function applyChanges(config: ContainerConfig, changes: string[]): ContainerConfig {
  const c: ContainerConfig = structuredClone(config);
  for (const line of changes) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    const m = /^(\S+)\s*(.*)$/s.exec(trimmed)!;
    const instr = m[1]!.toUpperCase();
    const rest = m[2]!.trim();
    if (!ALLOWED.has(instr)) throw new InvalidParameter(`${m[1]} is not a valid change command`);
    if (!SUPPORTED.has(instr)) throw new InvalidParameter(`${instr} is not supported as an import change`);
    if (!rest) throw new InvalidParameter(`${instr} requires at least one argument`);
    switch (instr) {
      case 'CMD':
      case 'ENTRYPOINT': {
        const argv = jsonArray(rest) ?? ['/bin/sh', '-c', rest];
        if (instr === 'CMD') c.Cmd = argv;
        else c.Entrypoint = argv;
        break;
      }
      case 'ENV': {
        const env = [...(c.Env ?? [])];
        for (const [k, v] of keyValues(instr, rest)) {
          const i = env.findIndex((e) => e === k || e.startsWith(k + '='));
          if (i >= 0) env[i] = `${k}=${v}`;
          else env.push(`${k}=${v}`);
        }
        c.Env = env;
        break;
      }
      case 'LABEL': {
        const labels = { ...(c.Labels ?? {}) };
        for (const [k, v] of keyValues(instr, rest)) labels[k] = v;
        c.Labels = labels;
        break;
      }
      case 'WORKDIR': {
        const dir = words(rest).join(' ');
        c.WorkingDir = path.posix.resolve('/', c.WorkingDir || '/', dir);
        break;
      }
      case 'USER':
        c.User = words(rest).join(' ');
        break;
      case 'STOPSIGNAL':
        c.StopSignal = words(rest).join(' ');
        break;
      case 'EXPOSE': {
        const ports = { ...(c.ExposedPorts ?? {}) };
        for (const p of words(rest)) {
          const pm = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
          if (!pm) throw new InvalidParameter(`invalid containerPort: ${p}`);
          const lo = Number(pm[1]);
          const hi = pm[2] ? Number(pm[2]) : lo;
          if (lo < 1 || hi > 65535 || hi < lo) throw new InvalidParameter(`invalid port range: ${p}`);
          const proto = (pm[3] ?? 'tcp').toLowerCase();
          for (let n = lo; n <= hi; n++) ports[`${n}/${proto}`] = {};
        }
        c.ExposedPorts = ports;
        break;
      }
      case 'VOLUME': {
        const vols = { ...(c.Volumes ?? {}) };
        for (const v of jsonArray(rest) ?? words(rest)) {
          if (!v.trim()) throw new InvalidParameter('VOLUME specified can not be an empty string');
          vols[v] = {};
        }
        c.Volumes = vols;
        break;
      }
      case 'HEALTHCHECK':
        c.Healthcheck = parseHealthcheck(rest);
        break;
    }
  }
  return c;
}
