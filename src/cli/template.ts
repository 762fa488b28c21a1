/**
 * A subset of Go's text/template, enough for docker's --format and inspect -f:
 * fields `{{.A.B}}`, variables `{{$x := .A}}`, pipelines `{{.A | json}}`, parentheses,
 * `if / else if / else / end`, `range` (with `$k, $v :=`), `with`, trim markers
 * `{{- -}}`, comments, and docker's functions (json, join, split, upper, lower, title,
 * index, len, eq/ne/lt/le/gt/ge, not/and/or, print/printf/println, pad, truncate).
 *
 * Lifecycle: compile(text) parses once (throws TemplateError on syntax errors);
 * execute(data) may be called per row. Missing map keys are errors, like
 * missingkey=error, so a typo does not silently print "<no value>".
 */

export class TemplateError extends Error {}

type Arg =
  | { t: 'field'; base: 'dot' | string; chain: string[]; pos: number; src: string }
  | { t: 'lit'; v: unknown }
  | { t: 'ident'; name: string; pos: number }
  | { t: 'pipe'; pipe: Pipe; chain: string[]; pos: number; src: string };
type Cmd = Arg[];
interface Pipe {
  decl: string[];
  cmds: Cmd[];
}
type Node =
  | { t: 'text'; s: string }
  | { t: 'action'; pipe: Pipe }
  | { t: 'if' | 'with' | 'range'; pipe: Pipe; list: Node[]; elseList?: Node[] };

interface Tok {
  k: 'field' | 'var' | 'str' | 'num' | 'ident' | '|' | '(' | ')' | ':=' | '=' | ',';
  v: string;
  pos: number;
}

const lineCol = (src: string, pos: number): string => {
  const before = src.slice(0, pos);
  const nl = before.lastIndexOf('\n');
  const line = before.split('\n').length;
  return `${line}:${nl < 0 ? pos : pos - nl - 1}`;
};

function lexAction(src: string, start: number, end: number): Tok[] {
  const toks: Tok[] = [];
  let i = start;
  const syntax = (msg: string): never => {
    throw new TemplateError(`template: :${src.slice(0, i).split('\n').length}: ${msg}`);
  };
  while (i < end) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const pos = i;
    if (c === '"') {
      let j = i + 1;
      let s = '';
      while (j < end && src[j] !== '"') {
        if (src[j] === '\\') {
          const e = src[j + 1];
          s += e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e;
          j += 2;
        } else s += src[j++];
      }
      if (j >= end) syntax('unterminated quoted string');
      toks.push({ k: 'str', v: s, pos });
      i = j + 1;
    } else if (c === '`') {
      const j = src.indexOf('`', i + 1);
      if (j < 0 || j >= end) syntax('unterminated raw quoted string');
      toks.push({ k: 'str', v: src.slice(i + 1, j), pos });
      i = j + 1;
    } else if (c === '.' || c === '$') {
      const m = /^[.$][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*/.exec(src.slice(i, end)) as RegExpExecArray;
      toks.push({ k: c === '.' ? 'field' : 'var', v: m[0], pos });
      i += m[0].length;
    } else if (/[-+0-9]/.test(c)) {
      const m = /^[-+]?\d+(?:\.\d+)?/.exec(src.slice(i, end));
      if (!m) syntax(`bad number syntax: "${c}"`);
      toks.push({ k: 'num', v: (m as RegExpExecArray)[0], pos });
      i += (m as RegExpExecArray)[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i, end)) as RegExpExecArray;
      toks.push({ k: 'ident', v: m[0], pos });
      i += m[0].length;
    } else if (c === ':' && src[i + 1] === '=') {
      toks.push({ k: ':=', v: ':=', pos });
      i += 2;
    } else if ('|()=,'.includes(c)) {
      toks.push({ k: c as Tok['k'], v: c, pos });
      i++;
    } else syntax(`unexpected "${c}" in command`);
  }
  return toks;
}

interface Action {
  toks: Tok[];
  pos: number;
}

/** Splits the source into text and action token lists, applying trim markers. */
function scan(src: string): Array<string | Action> {
  const out: Array<string | Action> = [];
  let i = 0;
  let trimNext = false;
  while (i <= src.length) {
    const open = src.indexOf('{{', i);
    let text = open < 0 ? src.slice(i) : src.slice(i, open);
    if (trimNext) text = text.replace(/^\s+/, '');
    trimNext = false;
    if (open < 0) {
      if (text) out.push(text);
      break;
    }
    let start = open + 2;
    if (src.startsWith('- ', start) || (src[start] === '-' && /\s/.test(src[start + 1] ?? ''))) {
      text = text.replace(/\s+$/, '');
      start += 1;
    }
    if (text) out.push(text);
    const close = src.indexOf('}}', start);
    if (close < 0) throw new TemplateError(`template: :${src.slice(0, open).split('\n').length}: unclosed action`);
    let end = close;
    if (src[close - 1] === '-' && /\s/.test(src[close - 2] ?? '')) {
      end = close - 1;
      trimNext = true;
    }
    const inner = src.slice(start, end).trim();
    if (!(inner.startsWith('/*') && inner.endsWith('*/'))) out.push({ toks: lexAction(src, start, end), pos: start });
    i = close + 2;
  }
  return out;
}

class Parser {
  private items: Array<string | Action>;
  private idx = 0;
  constructor(private src: string) {
    this.items = scan(src);
  }
  private err(msg: string, pos: number): never {
    throw new TemplateError(`template: :${lineCol(this.src, pos).split(':')[0]}: ${msg}`);
  }

  parseAll(): Node[] {
    const { list, stop } = this.list();
    if (stop) this.err(`unexpected {{${stop.toks[0].v}}}`, stop.pos);
    return list;
  }

  /** Parses nodes up to an {{end}} or {{else ...}}, which is returned (not consumed further). */
  private list(): { list: Node[]; stop?: Action } {
    const list: Node[] = [];
    while (this.idx < this.items.length) {
      const it = this.items[this.idx++];
      if (typeof it === 'string') {
        list.push({ t: 'text', s: it });
        continue;
      }
      const first = it.toks[0];
      if (!first) this.err('missing value for command', it.pos);
      if (first.k === 'ident' && (first.v === 'end' || first.v === 'else')) return { list, stop: it };
      if (first.k === 'ident' && (first.v === 'if' || first.v === 'with' || first.v === 'range')) {
        list.push(this.control(first.v, it.toks.slice(1), it.pos));
        continue;
      }
      list.push({ t: 'action', pipe: this.pipe(it.toks, it.pos) });
    }
    return { list };
  }

  private control(kind: 'if' | 'with' | 'range', toks: Tok[], pos: number): Node {
    const pipe = this.pipe(toks, pos);
    const { list, stop } = this.list();
    if (!stop) this.err(`unexpected EOF`, pos);
    const node: Node = { t: kind, pipe, list };
    if (stop.toks[0].v === 'else') {
      const rest = stop.toks.slice(1);
      if (rest.length > 0 && rest[0].k === 'ident' && (rest[0].v === 'if' || rest[0].v === 'with')) {
        // {{else if x}} is {{else}}{{if x}}...{{end}} sharing the outer {{end}}.
        node.elseList = [this.control(rest[0].v as 'if' | 'with', rest.slice(1), stop.pos)];
      } else {
        const r = this.list();
        if (!r.stop || r.stop.toks[0].v !== 'end') this.err('expected end', stop.pos);
        node.elseList = r.list;
      }
    }
    return node;
  }

  private pipe(toks: Tok[], pos: number): Pipe {
    const decl: string[] = [];
    let k = 0;
    // Declarations: $x := ... or $k, $v := ...
    const declEnd = toks.findIndex((t) => t.k === ':=' || t.k === '=');
    if (declEnd > 0 && toks.slice(0, declEnd).every((t) => t.k === 'var' || t.k === ',')) {
      for (const t of toks.slice(0, declEnd)) if (t.k === 'var') decl.push(t.v);
      k = declEnd + 1;
    }
    const cmds: Cmd[] = [];
    let cur: Cmd = [];
    while (k < toks.length) {
      const t = toks[k];
      if (t.k === '|') {
        if (cur.length === 0) this.err('missing command', t.pos);
        cmds.push(cur);
        cur = [];
        k++;
        continue;
      }
      if (t.k === '(') {
        let depth = 1;
        let j = k + 1;
        while (j < toks.length && depth > 0) {
          if (toks[j].k === '(') depth++;
          else if (toks[j].k === ')') depth--;
          j++;
        }
        if (depth !== 0) this.err('unclosed left paren', t.pos);
        const inner = this.pipe(toks.slice(k + 1, j - 1), t.pos);
        let chain: string[] = [];
        let src = '(...)';
        // (index .A 0).Field
        if (j < toks.length && toks[j].k === 'field' && toks[j].pos === toks[j - 1].pos + 1) {
          chain = toks[j].v.split('.').filter(Boolean);
          src += toks[j].v;
          j++;
        }
        cur.push({ t: 'pipe', pipe: inner, chain, pos: t.pos, src });
        k = j;
        continue;
      }
      cur.push(this.arg(t));
      k++;
    }
    if (cur.length) cmds.push(cur);
    if (cmds.length === 0) this.err('missing value for command', pos);
    return { decl, cmds };
  }

  private arg(t: Tok): Arg {
    switch (t.k) {
      case 'field':
        return { t: 'field', base: 'dot', chain: t.v.split('.').filter(Boolean), pos: t.pos, src: t.v };
      case 'var': {
        const [name, ...chain] = t.v.split('.');
        return { t: 'field', base: name, chain, pos: t.pos, src: t.v };
      }
      case 'str':
        return { t: 'lit', v: t.v };
      case 'num':
        return { t: 'lit', v: Number(t.v) };
      case 'ident':
        if (t.v === 'true' || t.v === 'false') return { t: 'lit', v: t.v === 'true' };
        if (t.v === 'nil') return { t: 'lit', v: null };
        if (!(t.v in funcs)) this.err(`function "${t.v}" not defined`, t.pos);
        return { t: 'ident', name: t.v, pos: t.pos };
      default:
        return this.err(`unexpected "${t.v}" in operand`, t.pos);
    }
  }
}

const NONE = Symbol('none');

export function truthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

/** Prints a value like Go's fmt %v does for JSON-decoded data. */
export function printValue(v: unknown): string {
  if (v === null || v === undefined) return '<no value>';
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isInteger(v) && Math.abs(v) < 1e21 ? v.toFixed(0) : String(v);
  if (typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(printValue).join(' ')}]`;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `map[${Object.keys(o)
      .sort()
      .map((k) => `${k}:${printValue(o[k])}`)
      .join(' ')}]`;
  }
  return String(v);
}

function sprintf(fmt: string, args: unknown[]): string {
  let n = 0;
  return fmt.replace(/%([-+ 0#]*)(\d*)(?:\.(\d+))?([%svdqtfxXg])/g, (_m, fl: string, w: string, prec: string | undefined, verb: string) => {
    if (verb === '%') return '%';
    const a = args[n++];
    let s: string;
    switch (verb) {
      case 'q':
        s = JSON.stringify(typeof a === 'string' ? a : printValue(a));
        break;
      case 'd':
        s = String(Math.trunc(Number(a)));
        break;
      case 'f':
        s = Number(a).toFixed(prec === undefined ? 6 : Number(prec));
        break;
      case 'x':
      case 'X':
        s = typeof a === 'number' ? a.toString(16) : Buffer.from(String(a)).toString('hex');
        if (verb === 'X') s = s.toUpperCase();
        break;
      default:
        s = printValue(a);
        if (prec !== undefined && verb === 's') s = s.slice(0, Number(prec));
    }
    if (w) s = fl.includes('-') ? s.padEnd(Number(w)) : s.padStart(Number(w), fl.includes('0') ? '0' : ' ');
    return s;
  });
}

function compare(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  throw new Error('incompatible types for comparison');
}

const funcs: Record<string, (...a: unknown[]) => unknown> = {
  json: (v) => JSON.stringify(v === undefined ? null : v),
  join: (l, sep) => (Array.isArray(l) ? l.map(printValue).join(String(sep)) : printValue(l)),
  split: (s, sep) => String(s).split(String(sep)),
  upper: (s) => String(s).toUpperCase(),
  lower: (s) => String(s).toLowerCase(),
  title: (s) => String(s).replace(/(^|[^\p{L}\p{N}'])(\p{L})/gu, (_m, p: string, c: string) => p + c.toUpperCase()),
  pad: (s, pre, post) => ' '.repeat(Number(pre)) + printValue(s) + ' '.repeat(Number(post)),
  truncate: (s, n) => [...String(s)].slice(0, Number(n)).join(''),
  len: (v) => (typeof v === 'string' || Array.isArray(v) ? v.length : v && typeof v === 'object' ? Object.keys(v).length : 0),
  index: (v, ...keys) => {
    let cur = v;
    for (const k of keys) {
      if (cur === null || cur === undefined) return null;
      if (Array.isArray(cur)) {
        if (typeof k !== 'number' || k < 0 || k >= cur.length) throw new Error(`index out of range: ${printValue(k)}`);
        cur = cur[k];
      } else if (typeof cur === 'object') cur = (cur as Record<string, unknown>)[String(k)] ?? null;
      else throw new Error(`can't index item of type ${typeof cur}`);
    }
    return cur;
  },
  eq: (a, ...b) => b.some((x) => a === x || (a == null && x == null)),
  ne: (a, b) => a !== b,
  lt: (a, b) => compare(a, b) < 0,
  le: (a, b) => compare(a, b) <= 0,
  gt: (a, b) => compare(a, b) > 0,
  ge: (a, b) => compare(a, b) >= 0,
  not: (a) => !truthy(a),
  and: (...a) => a.find((x) => !truthy(x)) ?? a[a.length - 1],
  or: (...a) => a.find((x) => truthy(x)) ?? a[a.length - 1],
  print: (...a) => a.map(printValue).join(''),
  println: (...a) => a.map(printValue).join(' ') + '\n',
  printf: (f, ...a) => sprintf(String(f), a),
};

interface Scope {
  vars: Map<string, unknown>;
}

export class Template {
  private constructor(
    private readonly src: string,
    private readonly nodes: Node[],
  ) {}

  static compile(src: string): Template {
    return new Template(src, new Parser(src).parseAll());
  }

  execute(data: unknown): string {
    const scope: Scope = { vars: new Map([['$', data]]) };
    let out = '';
    const emit = (s: string): void => {
      out += s;
    };
    this.walk(this.nodes, data, scope, emit);
    return out;
  }

  private fail(pos: number, src: string, msg: string): never {
    throw new TemplateError(`template: :${lineCol(this.src, pos)}: executing "" at <${src}>: ${msg}`);
  }

  private walk(nodes: Node[], dot: unknown, scope: Scope, emit: (s: string) => void): void {
    for (const n of nodes) {
      switch (n.t) {
        case 'text':
          emit(n.s);
          break;
        case 'action': {
          const v = this.pipe(n.pipe, dot, scope);
          if (n.pipe.decl.length === 0) emit(printValue(v));
          break;
        }
        case 'if':
        case 'with': {
          const v = this.pipe(n.pipe, dot, scope);
          if (truthy(v)) this.walk(n.list, n.t === 'with' ? v : dot, scope, emit);
          else if (n.elseList) this.walk(n.elseList, dot, scope, emit);
          break;
        }
        case 'range': {
          const v = this.pipe({ decl: [], cmds: n.pipe.cmds }, dot, scope);
          const entries: Array<[unknown, unknown]> = Array.isArray(v)
            ? v.map((x, i) => [i, x])
            : v && typeof v === 'object'
              ? Object.keys(v as object)
                  .sort()
                  .map((k) => [k, (v as Record<string, unknown>)[k]])
              : typeof v === 'number'
                ? Array.from({ length: v }, (_x, i) => [i, i])
                : [];
          if (entries.length === 0) {
            if (n.elseList) this.walk(n.elseList, dot, scope, emit);
            break;
          }
          for (const [k, x] of entries) {
            if (n.pipe.decl.length === 1) scope.vars.set(n.pipe.decl[0], x);
            if (n.pipe.decl.length === 2) {
              scope.vars.set(n.pipe.decl[0], k);
              scope.vars.set(n.pipe.decl[1], x);
            }
            this.walk(n.list, x, scope, emit);
          }
          break;
        }
      }
    }
  }

  private pipe(p: Pipe, dot: unknown, scope: Scope): unknown {
    let v: unknown = NONE;
    for (const cmd of p.cmds) v = this.cmd(cmd, dot, scope, v);
    if (p.decl.length) scope.vars.set(p.decl[p.decl.length - 1], v);
    return v;
  }

  private cmd(cmd: Cmd, dot: unknown, scope: Scope, final: unknown): unknown {
    const head = cmd[0];
    if (head.t === 'ident') {
      const args = cmd.slice(1).map((a) => this.arg(a, dot, scope));
      if (final !== NONE) args.push(final);
      try {
        return funcs[head.name](...args);
      } catch (e) {
        return this.fail(head.pos, head.name, `error calling ${head.name}: ${(e as Error).message}`);
      }
    }
    if (cmd.length > 1 || final !== NONE) {
      const pos = head.t === 'field' || head.t === 'pipe' ? head.pos : 0;
      throw new TemplateError(`template: :${lineCol(this.src, pos)}: can't give argument to non-function`);
    }
    return this.arg(head, dot, scope);
  }

  private arg(a: Arg, dot: unknown, scope: Scope): unknown {
    switch (a.t) {
      case 'lit':
        return a.v;
      case 'ident':
        return funcs[a.name]();
      case 'pipe':
        return this.walkChain(this.pipe(a.pipe, dot, scope), a.chain, a.pos, a.src);
      case 'field': {
        let base: unknown = dot;
        if (a.base !== 'dot') {
          if (!scope.vars.has(a.base)) throw new TemplateError(`template: :${lineCol(this.src, a.pos)}: undefined variable "${a.base}"`);
          base = scope.vars.get(a.base);
        }
        return this.walkChain(base, a.chain, a.pos, a.src);
      }
    }
  }

  private walkChain(v: unknown, chain: string[], pos: number, src: string): unknown {
    let cur = v;
    for (const key of chain) {
      if (cur === null || cur === undefined) this.fail(pos, src, `nil pointer evaluating interface {}.${key}`);
      if (typeof cur !== 'object' || Array.isArray(cur)) this.fail(pos, src, `can't evaluate field ${key} in type ${Array.isArray(cur) ? '[]interface {}' : typeof cur}`);
      const o = cur as Record<string, unknown>;
      if (!Object.prototype.hasOwnProperty.call(o, key)) this.fail(pos, src, `map has no entry for key "${key}"`);
      cur = o[key];
    }
    return cur;
  }
}

/** Docker's preprocessing of --format: "json" is `{{json .}}`, `\t` and `\n` escapes become real. */
export function normalizeFormat(format: string): { table: boolean; body: string } {
  let f = format;
  if (f === 'json') f = '{{json .}}';
  let table = false;
  if (f === 'table' || f.startsWith('table ')) {
    table = true;
    f = f.slice(5);
  }
  f = f.trim().replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  return { table, body: f };
}
