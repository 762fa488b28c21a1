/**
 * The Dockerfile parser: text → instructions, pure (no I/O), with Docker's rules:
 *  - parser directives (`# syntax=`, `# escape=`, `# check=`) only before anything else;
 *  - `#` comment lines (also inside a continued instruction), blank lines, line continuations with
 *    the escape character (`\`, or `` ` `` after `# escape=```) and empty continuation lines;
 *  - the instruction keyword is case-insensitive; `--name[=value]` flags come first, checked per
 *    instruction; exec (JSON) form vs shell form; heredocs (`<<EOF`, `<<-EOF`, quoted names,
 *    several per line) on RUN, COPY and ADD, their bodies following the instruction's line.
 * Expansion of variables is not done here (shell.ts, at build time, where values are known), only
 * the split into the words that will later be expanded. Errors name the line.
 */
import { InvalidParameter } from '../errors.js';

export interface Heredoc {
  name: string;
  content: string;
  /** Unquoted name: the body is expanded (RUN: by the shell). */
  expand: boolean;
  /** <<- : leading tabs removed. */
  chomp: boolean;
}

export interface Flag { name: string; value: string | null }

export interface Instruction {
  /** Lower-case keyword: 'from', 'run', … */
  cmd: string;
  /** The instruction as written, continuation lines joined (shown in "Step n/m : …"). */
  original: string;
  flags: Flag[];
  /** Everything after the keyword and flags, as written. */
  rest: string;
  /** Exec form: the JSON array; else null. */
  json: string[] | null;
  /** The words of the shell form, split as Docker splits them for this instruction (quotes kept). */
  args: string[];
  heredocs: Heredoc[];
  /** ONBUILD: the instruction it wraps. */
  sub?: Instruction;
  line: number;
  endLine: number;
}

export interface Dockerfile {
  escape: string;
  syntax?: string;
  instructions: Instruction[];
  /** ARG instructions before the first FROM (their defaults are global). */
  warnings: string[];
}

export class DockerfileError extends InvalidParameter {
  constructor(readonly line: number, message: string) {
    super(`dockerfile parse error on line ${line}: ${message}`);
  }
}

/** Flags each instruction accepts. */
const FLAGS: Record<string, readonly string[]> = {
  from: ['platform'],
  run: ['mount', 'network', 'security'],
  copy: ['from', 'chown', 'chmod', 'link', 'parents', 'exclude'],
  add: ['chown', 'chmod', 'link', 'keep-git-dir', 'checksum', 'exclude', 'unpack'],
  healthcheck: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
};

export const INSTRUCTIONS = new Set([
  'from', 'run', 'cmd', 'entrypoint', 'env', 'arg', 'label', 'expose', 'volume', 'user', 'workdir', 'shell',
  'stopsignal', 'healthcheck', 'onbuild', 'copy', 'add', 'maintainer',
]);

const HEREDOC_CMDS = new Set(['run', 'copy', 'add']);

const DIRECTIVE_RE = /^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$/;

/** Splits on whitespace outside quotes, keeping quotes and escapes in the words (Docker's parseWords). */
export function splitWords(s: string, escape: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote = '';
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (!quote && /\s/.test(ch)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    inWord = true;
    cur += ch;
    if (ch === escape && i + 1 < s.length && quote !== "'") {
      cur += s[++i];
      continue;
    }
    if (quote) {
      if (ch === quote) quote = '';
    } else if (ch === '"' || ch === "'") quote = ch;
  }
  if (inWord) words.push(cur);
  return words;
}

function whitespaceFields(s: string): string[] {
  return s.split(/[\t\v\f\r ]+/).filter((w) => w !== '');
}

function parseJson(rest: string): string[] | null {
  if (!rest.startsWith('[')) return null;
  try {
    const v: unknown = JSON.parse(rest);
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : null;
  } catch {
    return null;
  }
}

/** `--a=b --c rest` → flags and the rest. */
function extractFlags(s: string, line: number, cmd: string): { flags: Flag[]; rest: string } {
  const flags: Flag[] = [];
  let rest = s;
  for (;;) {
    const m = /^--([^\s=]*)(?:=(\S*))?(?:\s+|$)/.exec(rest);
    if (!m) break;
    rest = rest.slice(m[0].length);
    if (m[1] === '') break; // "--" ends the flags
    const name = m[1]!;
    if (!(FLAGS[cmd] ?? []).includes(name)) throw new DockerfileError(line, `unknown flag: ${name}`);
    flags.push({ name, value: m[2] ?? null });
  }
  return { flags, rest };
}

/** Heredoc markers of a line, in order: `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`, `2<<EOF`. */
function heredocMarkers(rest: string): { name: string; expand: boolean; chomp: boolean }[] {
  const out: { name: string; expand: boolean; chomp: boolean }[] = [];
  const re = /(?:^|[\s\d])<<(-?)(["']?)([A-Za-z_][A-Za-z0-9_]*)\2/g;
  for (let m; (m = re.exec(rest));) out.push({ name: m[3]!, expand: m[2] === '', chomp: m[1] === '-' });
  return out;
}

interface Logical { text: string; line: number; endLine: number }

/** Arguments of one instruction, split as Docker does for its keyword. */
function splitArgs(cmd: string, rest: string, escape: string, line: number): { json: string[] | null; args: string[] } {
  switch (cmd) {
    case 'run': case 'cmd': case 'entrypoint': case 'shell': {
      const json = parseJson(rest);
      return { json, args: json ?? [rest] };
    }
    case 'copy': case 'add': case 'volume': {
      const json = parseJson(rest);
      return { json, args: json ?? whitespaceFields(rest) };
    }
    case 'from': case 'expose':
      return { json: null, args: whitespaceFields(rest) };
    case 'env': case 'label': case 'arg':
      return { json: null, args: splitWords(rest, escape) };
    case 'healthcheck':
      return { json: parseJson(rest), args: whitespaceFields(rest) };
    default:
      if (!INSTRUCTIONS.has(cmd)) throw new DockerfileError(line, `unknown instruction: ${cmd.toUpperCase()}`);
      return { json: null, args: [rest] };
  }
}

function instruction(text: string, line: number, endLine: number, escape: string, heredocs: Heredoc[]): Instruction {
  const m = /^(\S+)\s*(.*)$/s.exec(text)!;
  const cmd = m[1]!.toLowerCase();
  if (!INSTRUCTIONS.has(cmd)) throw new DockerfileError(line, `unknown instruction: ${m[1]!.toUpperCase()}`);
  let after = m[2]!;
  if (cmd === 'onbuild') {
    const inner = /^(\S+)\s*(.*)$/s.exec(after.trim());
    if (!inner) throw new DockerfileError(line, 'ONBUILD requires at least one argument');
    const k = inner[1]!.toLowerCase();
    if (k === 'onbuild') throw new DockerfileError(line, 'Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
    if (k === 'from' || k === 'maintainer') throw new DockerfileError(line, `${k.toUpperCase()} isn't allowed as an ONBUILD trigger`);
    const sub = instruction(after.trim(), line, endLine, escape, heredocs);
    return { cmd, original: text, flags: [], rest: after.trim(), json: null, args: [after.trim()], heredocs: [], sub, line, endLine };
  }
  const { flags, rest: afterFlags } = extractFlags(after, line, cmd);
  after = afterFlags.trim();
  const { json, args } = splitArgs(cmd, after, escape, line);
  if (after === '' && cmd !== 'healthcheck') throw new DockerfileError(line, `${cmd.toUpperCase()} requires at least one argument`);
  return { cmd, original: text, flags, rest: after, json, args, heredocs, line, endLine };
}

export function parse(text: string): Dockerfile {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let escape = '\\';
  let syntax: string | undefined;
  const warnings: string[] = [];
  let i = 0;

  // Parser directives: only at the very top, before any blank line, comment or instruction.
  const seen = new Set<string>();
  for (; i < lines.length; i++) {
    const m = DIRECTIVE_RE.exec(lines[i]!);
    if (!m) break;
    const key = m[1]!.toLowerCase();
    if (seen.has(key)) throw new DockerfileError(i + 1, `only one ${key} parser directive can be used`);
    seen.add(key);
    if (key === 'escape') {
      if (m[2] !== '\\' && m[2] !== '`') throw new DockerfileError(i + 1, `invalid escape token '${m[2]}' does not match \` or \\`);
      escape = m[2];
    } else if (key === 'syntax') syntax = m[2];
  }

  const isComment = (l: string) => /^[ \t]*#/.test(l);
  const isBlank = (l: string) => l.trim() === '';
  const contRe = new RegExp(`${escape === '\\' ? '\\\\' : '`'}[ \\t]*$`);

  const instructions: Instruction[] = [];
  while (i < lines.length) {
    const first = lines[i]!;
    if (isComment(first) || isBlank(first)) {
      i++;
      continue;
    }
    const start = i + 1;
    let logical = first.replace(/^[ \t]+/, '');
    let continued = contRe.test(logical);
    if (continued) logical = logical.replace(contRe, '');
    i++;
    let emptyContinuation = false;
    while (continued && i < lines.length) {
      const l = lines[i]!;
      i++;
      if (isComment(l)) continue;
      if (isBlank(l)) {
        emptyContinuation = true;
        continue;
      }
      continued = contRe.test(l);
      logical += continued ? l.replace(contRe, '') : l;
    }
    if (emptyContinuation) warnings.push(`Empty continuation line found in: ${logical}`);
    const l: Logical = { text: logical, line: start, endLine: i };

    // Heredoc bodies follow the line, in the order of their markers.
    const kw = /^(\S+)/.exec(l.text)![1]!.toLowerCase();
    const heredocs: Heredoc[] = [];
    const candidate = kw === 'onbuild' ? (/^\S+\s+(\S+)/.exec(l.text)?.[1] ?? '').toLowerCase() : kw;
    if (HEREDOC_CMDS.has(candidate)) {
      for (const mk of heredocMarkers(l.text)) {
        const body: string[] = [];
        let closed = false;
        while (i < lines.length) {
          let bl = lines[i++]!;
          if (mk.chomp) bl = bl.replace(/^\t+/, '');
          if (bl === mk.name) {
            closed = true;
            break;
          }
          body.push(bl);
        }
        if (!closed) throw new DockerfileError(l.line, `unterminated heredoc ${mk.name}`);
        heredocs.push({ ...mk, content: body.length ? body.join('\n') + '\n' : '' });
      }
      l.endLine = i;
    }
    instructions.push(instruction(l.text, l.line, l.endLine, escape, heredocs));
  }
  if (instructions.length === 0) throw new InvalidParameter('the Dockerfile cannot be empty');
  return { escape, syntax, instructions, warnings };
}

export interface Stage {
  /** Lower-cased `AS` name, or null. */
  name: string | null;
  index: number;
  /** The FROM word, unexpanded. */
  base: string;
  platform: string | null;
  from: Instruction;
  instructions: Instruction[];
}

/** Global ARGs (before the first FROM) and the stages, each FROM … up to the next FROM. */
export function splitStages(df: Dockerfile): { globalArgs: Instruction[]; stages: Stage[] } {
  const globalArgs: Instruction[] = [];
  const stages: Stage[] = [];
  for (const ins of df.instructions) {
    if (ins.cmd === 'from') {
      const a = ins.args;
      if (a.length !== 1 && !(a.length === 3 && a[1]!.toLowerCase() === 'as')) {
        throw new DockerfileError(ins.line, 'FROM requires either one or three arguments');
      }
      const name = a.length === 3 ? a[2]!.toLowerCase() : null;
      if (name !== null && !/^[a-z][a-z0-9-_.]*$/.test(name)) throw new DockerfileError(ins.line, `invalid name for build stage: "${a[2]}", name can't start with a number or contain symbols`);
      if (name !== null && stages.some((s) => s.name === name)) throw new DockerfileError(ins.line, `duplicate stage name "${name}"`);
      const platform = ins.flags.find((f) => f.name === 'platform')?.value ?? null;
      stages.push({ name, index: stages.length, base: a[0]!, platform, from: ins, instructions: [] });
    } else if (stages.length === 0) {
      if (ins.cmd !== 'arg') throw new DockerfileError(ins.line, 'no build stage in current context');
      globalArgs.push(ins);
    } else stages[stages.length - 1]!.instructions.push(ins);
  }
  if (stages.length === 0) throw new InvalidParameter('no build stage in current context');
  return { globalArgs, stages };
}
