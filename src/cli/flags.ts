/**
 * Docker-style (pflag) command-line parsing, shared by every command.
 *
 * A command declares its flags as a table of FlagSpec; parseFlags() turns argv into
 * typed values keyed by the long name plus the positional arguments. The rules are
 * pflag's, because users' muscle memory (and scripts) depend on them:
 * `--flag=value` and `--flag value`, `-e VALUE`, `-eVALUE`, `-e=VALUE`, combined short
 * booleans (`-dit`, the last one may take a value: `-dp 80:80`), `--bool=false`,
 * `--` ends flags. With `interspersed: false` (run, create, the global flags) parsing
 * stops at the first positional argument so that everything after IMAGE is the command.
 */

export type FlagKind = 'bool' | 'string' | 'list' | 'int';

export interface FlagSpec {
  long: string;
  short?: string;
  kind: FlagKind;
  /** Placeholder shown in --help ("string", "list", "int", "duration", ...). */
  type?: string;
  help: string;
  default?: string;
}

export type FlagValue = string | boolean | string[] | number;

/** A flag error is a usage error: docker prints it with the usage line and exits 125. */
export class FlagError extends Error {}

export class Parsed {
  constructor(
    readonly values: Map<string, FlagValue>,
    readonly args: string[],
  ) {}
  has(name: string): boolean {
    return this.values.has(name);
  }
  bool(name: string): boolean {
    return this.values.get(name) === true;
  }
  str(name: string): string | undefined {
    const v = this.values.get(name);
    return typeof v === 'string' ? v : undefined;
  }
  int(name: string): number | undefined {
    const v = this.values.get(name);
    return typeof v === 'number' ? v : undefined;
  }
  list(name: string): string[] {
    const v = this.values.get(name);
    return Array.isArray(v) ? v : [];
  }
}

export interface ParseOptions {
  interspersed: boolean;
}

const helpFlag: FlagSpec = { long: 'help', kind: 'bool', help: 'Print usage' };

export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[], opts: ParseOptions): Parsed {
  const all = [...specs, helpFlag];
  const byLong = new Map(all.map((s) => [s.long, s]));
  const byShort = new Map(all.filter((s) => s.short).map((s) => [s.short as string, s]));
  const values = new Map<string, FlagValue>();
  const args: string[] = [];

  const set = (spec: FlagSpec, raw: string, shown: string): void => {
    switch (spec.kind) {
      case 'bool': {
        const b = parseBool(raw);
        if (b === undefined) throw new FlagError(`invalid argument "${raw}" for "${shown}" flag: strconv.ParseBool: parsing "${raw}": invalid syntax`);
        values.set(spec.long, b);
        return;
      }
      case 'int': {
        if (!/^[+-]?\d+$/.test(raw)) throw new FlagError(`invalid argument "${raw}" for "${shown}" flag: strconv.ParseInt: parsing "${raw}": invalid syntax`);
        values.set(spec.long, Number(raw));
        return;
      }
      case 'list': {
        const prev = values.get(spec.long);
        values.set(spec.long, [...(Array.isArray(prev) ? prev : []), raw]);
        return;
      }
      default:
        values.set(spec.long, raw);
    }
  };

  let i = 0;
  while (i < argv.length) {
    const a = argv[i++];
    if (a === '--') {
      args.push(...argv.slice(i));
      break;
    }
    if (a.startsWith('--') && a.length > 2) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const spec = byLong.get(name);
      if (!spec) throw new FlagError(`unknown flag: --${name}`);
      const shown = `--${name}`;
      if (eq >= 0) set(spec, a.slice(eq + 1), shown);
      else if (spec.kind === 'bool') set(spec, 'true', shown);
      else if (i < argv.length) set(spec, argv[i++], shown);
      else throw new FlagError(`flag needs an argument: --${name}`);
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      // A cluster of short flags: -dit, -p80:80, -e=FOO, -it=false is not pflag, keep simple.
      let j = 1;
      while (j < a.length) {
        const c = a[j];
        const spec = byShort.get(c);
        if (!spec) throw new FlagError(`unknown shorthand flag: '${c}' in ${a}`);
        const shown = `-${c}, --${spec.long}`;
        const rest = a.slice(j + 1);
        if (spec.kind === 'bool') {
          if (rest.startsWith('=')) {
            set(spec, rest.slice(1), shown);
            break;
          }
          set(spec, 'true', shown);
          j++;
          continue;
        }
        if (rest.length > 0) set(spec, rest.startsWith('=') ? rest.slice(1) : rest, shown);
        else if (i < argv.length) set(spec, argv[i++], shown);
        else throw new FlagError(`flag needs an argument: '${c}' in -${c}`);
        break;
      }
      continue;
    }
    args.push(a);
    if (!opts.interspersed) {
      args.push(...argv.slice(i));
      break;
    }
  }
  return new Parsed(values, args);
}

function parseBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(s)) return false;
  return undefined;
}

/** The "Options:" block of --help, aligned like cobra's. */
export function flagUsages(specs: readonly FlagSpec[]): string {
  const rows = specs.map((s) => {
    const type = s.type ?? (s.kind === 'bool' ? '' : s.kind === 'list' ? 'list' : s.kind === 'int' ? 'int' : 'string');
    const left = `${s.short ? `-${s.short}, ` : '    '}--${s.long}${type ? ' ' + type : ''}`;
    const def = s.default !== undefined ? ` (default ${s.kind === 'string' ? JSON.stringify(s.default) : s.default})` : '';
    return [left, s.help + def];
  });
  const w = Math.max(0, ...rows.map((r) => r[0].length));
  return rows.map(([l, r]) => `  ${l.padEnd(w)}   ${r}`).join('\n');
}

/** Reads a docker --env-file: KEY=VALUE lines, `#` comments, a bare KEY takes the caller's value. */
export function parseEnvFile(text: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.replace(/^\s+/, '');
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq === 0) throw new Error(`invalid environment variable: ${line}`);
    if (eq > 0) {
      out.push(line);
      continue;
    }
    const key = line.trimEnd();
    if (/\s/.test(key)) throw new Error(`variable '${key}' contains whitespaces`);
    if (env[key] !== undefined) out.push(`${key}=${env[key]}`);
  }
  return out;
}
