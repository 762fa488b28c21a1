/**
 * .dockerignore with Docker's pattern rules: one pattern a line, `#` comments, surrounding blanks
 * trimmed, paths cleaned and a leading `/` dropped (patterns are relative to the context root);
 * `*` and `?` stay within one path component, `**` spans any number of them, `[...]` classes and `\`
 * escapes as in Go's filepath.Match; `!` re-includes. A path is excluded when the last pattern that
 * matches it, or one of its parent directories, is not an exception.
 */
import path from 'node:path';

interface Pattern { re: RegExp; exclusion: boolean; dirs: string[] }

function toRegExp(p: string): RegExp {
  let re = '^';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*') {
      if (p[i + 1] === '*') {
        i++;
        // "**/" matches zero or more directories; a trailing "**" anything below.
        if (p[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = p.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += '[' + p.slice(i + 1, end).replace(/^\^/, '\\^').replace(/^!/, '^') + ']';
        i = end;
      }
    } else if (c === '\\' && i + 1 < p.length) re += p[++i]!.replace(/[.+^${}()|[\]\\*?]/g, '\\$&');
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(re + '$', 's');
}

export class IgnoreRules {
  private readonly patterns: Pattern[];
  readonly hasExceptions: boolean;

  constructor(lines: string[]) {
    this.patterns = [];
    for (let raw of lines) {
      raw = raw.trim();
      if (raw === '' || raw.startsWith('#')) continue;
      let exclusion = false;
      if (raw.startsWith('!')) {
        exclusion = true;
        raw = raw.slice(1).trim();
      }
      let p = path.posix.normalize(raw).replace(/^\/+/, '').replace(/\/+$/, '');
      if (p === '.' || p === '') p = '.';
      this.patterns.push({ re: toRegExp(p), exclusion, dirs: p.split('/') });
    }
    this.hasExceptions = this.patterns.some((p) => p.exclusion);
  }

  static parse(text: string): IgnoreRules {
    return new IgnoreRules(text.split(/\r?\n/));
  }

  get empty(): boolean {
    return this.patterns.length === 0;
  }

  /** Is `rel` (a context-relative path, `/`-separated, no leading slash) excluded? */
  excludes(rel: string): boolean {
    const parts = rel.split('/');
    let matched = false;
    for (const p of this.patterns) {
      if (p.exclusion !== matched) continue; // cannot change the outcome
      let hit = p.re.test(rel);
      // A pattern that names a parent directory covers everything below it.
      for (let n = 1; !hit && n < parts.length; n++) if (p.re.test(parts.slice(0, n).join('/'))) hit = true;
      if (hit) matched = !p.exclusion;
    }
    return matched;
  }

  /** May something under the excluded directory `rel` be re-included by an exception? */
  mayReinclude(rel: string): boolean {
    if (!this.hasExceptions) return false;
    for (const p of this.patterns) {
      if (!p.exclusion) continue;
      // An exception's leading components must be able to match this dir's (or use **).
      const parts = rel.split('/');
      let ok = true;
      for (let i = 0; i < parts.length && i < p.dirs.length; i++) {
        const seg = p.dirs[i]!;
        if (seg.includes('**')) break;
        if (!toRegExp(seg).test(parts[i]!)) {
          ok = false;
          break;
        }
      }
      if (ok) return true;
    }
    return false;
  }
}
