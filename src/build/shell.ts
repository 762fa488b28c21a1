/**
 * Docker's variable expansion for Dockerfile words (what the Dockerfile reference calls "environment
 * replacement"): `$v`, `${v}`, `${v:-x}`, `${v-x}`, `${v:+x}`, `${v+x}`, `${v:?msg}`, `${v?msg}`,
 * `${v#p}`, `${v##p}`, `${v%p}`, `${v%%p}`; single quotes are literal, double quotes expand, the escape
 * character (`\` or the `# escape=` one) makes the next character literal (inside double quotes only
 * before `"`, `$` and itself). Quotes are removed, as a shell would. An unset variable is empty.
 */
import { InvalidParameter } from '../errors.js';

export type Env = ReadonlyMap<string, string>;

class Lexer {
  private i = 0;
  constructor(private readonly s: string, private readonly env: Env, private readonly escape: string) {}

  private peek(): string | undefined { return this.s[this.i]; }
  private next(): string | undefined { return this.s[this.i++]; }

  /** Characters up to `stop` (consumed) or the end; `stop` unset = the whole rest. */
  run(stop?: string): { text: string; stopped: boolean; words: string[] } {
    let text = '';
    // Word splitting of the unquoted parts, for processWords.
    const words: string[] = [];
    let cur = '';
    let inWord = false;
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) {
        if (inWord) words.push(cur);
        return { text, stopped: false, words };
      }
      if (stop !== undefined && ch === stop) {
        this.i++;
        if (inWord) words.push(cur);
        return { text, stopped: true, words };
      }
      let piece: string;
      if (ch === "'") piece = this.singleQuoted();
      else if (ch === '"') piece = this.doubleQuoted();
      else if (ch === '$') piece = this.dollar();
      else if (ch === this.escape) {
        this.i++;
        piece = this.next() ?? '';
      } else {
        this.i++;
        if (/\s/.test(ch)) {
          text += ch;
          if (inWord) words.push(cur);
          cur = '';
          inWord = false;
          continue;
        }
        piece = ch;
      }
      text += piece;
      cur += piece;
      inWord = true;
    }
  }

  private singleQuoted(): string {
    this.i++;
    let out = '';
    for (;;) {
      const ch = this.next();
      if (ch === undefined) throw new InvalidParameter('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") return out;
      out += ch;
    }
  }

  private doubleQuoted(): string {
    this.i++;
    let out = '';
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) throw new InvalidParameter('unexpected end of statement while looking for matching double-quote');
      if (ch === '"') {
        this.i++;
        return out;
      }
      if (ch === '$') {
        out += this.dollar();
        continue;
      }
      this.i++;
      if (ch === this.escape) {
        const n = this.peek();
        if (n === '"' || n === '$' || n === this.escape) {
          out += n;
          this.i++;
          continue;
        }
      }
      out += ch;
    }
  }

  private name(): string {
    const rest = this.s.slice(this.i);
    const m = /^[0-9]/.exec(rest) ?? /^[A-Za-z0-9_]+/.exec(rest);
    if (!m) return '';
    this.i += m[0].length;
    return m[0];
  }

  private dollar(): string {
    this.i++;
    if (this.peek() !== '{') {
      const n = this.name();
      return n === '' ? '$' : (this.env.get(n) ?? '');
    }
    this.i++;
    const n = this.name();
    if (n === '') throw new InvalidParameter(`bad substitution in ${this.s}`);
    const value = this.env.get(n);
    const ch = this.next();
    if (ch === '}') return value ?? '';
    if (ch === undefined) throw new InvalidParameter("syntax error: missing '}'");
    let mod = ch;
    if (mod === ':') {
      const m2 = this.next();
      if (m2 !== '-' && m2 !== '+' && m2 !== '?') throw new InvalidParameter(`unsupported modifier (:${m2 ?? ''}) in substitution`);
      mod = ':' + m2;
    } else if ((mod === '#' || mod === '%') && this.peek() === mod) {
      this.i++;
      mod += mod;
    }
    const word = this.run('}');
    if (!word.stopped) throw new InvalidParameter("syntax error: missing '}'");
    const arg = word.text;
    const set = value !== undefined;
    const nonEmpty = set && value !== '';
    switch (mod) {
      case ':-': return nonEmpty ? value! : arg;
      case '-': return set ? value! : arg;
      case ':+': return nonEmpty ? arg : '';
      case '+': return set ? arg : '';
      case ':?': if (!nonEmpty) throw new InvalidParameter(`${n}: ${arg || 'parameter null or not set'}`); return value!;
      case '?': if (!set) throw new InvalidParameter(`${n}: ${arg || 'parameter not set'}`); return value!;
      case '#': case '##': return trimPrefix(value ?? '', arg, mod === '##');
      case '%': case '%%': return trimSuffix(value ?? '', arg, mod === '%%');
      default: throw new InvalidParameter(`unsupported modifier (${mod}) in substitution`);
    }
  }
}

/** A shell glob (`*`, `?`, `[…]`) as a regular expression body. */
function globBody(p: string): string {
  let re = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = p.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += '[' + p.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\') + ']';
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return re;
}

function trimPrefix(v: string, pat: string, longest: boolean): string {
  const re = new RegExp(`^(${globBody(pat).replace(/\.\*/g, longest ? '.*' : '.*?')})`, 's');
  const m = re.exec(v);
  return m ? v.slice(m[1]!.length) : v;
}

function trimSuffix(v: string, pat: string, longest: boolean): string {
  const body = globBody(pat);
  for (let i = longest ? 0 : v.length; longest ? i <= v.length : i >= 0; i += longest ? 1 : -1) {
    if (new RegExp(`^(?:${body})$`, 's').test(v.slice(i))) return v.slice(0, i);
  }
  return v;
}

/** One word, expanded and unquoted (ENV values, WORKDIR, USER, COPY sources…). */
export function expandWord(word: string, env: Env, escape = '\\'): string {
  return new Lexer(word, env, escape).run().text;
}

/** Expanded and split on unquoted whitespace (quoted spaces stay in their word). */
export function expandWords(word: string, env: Env, escape = '\\'): string[] {
  return new Lexer(word, env, escape).run().words;
}
