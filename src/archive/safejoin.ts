import fs from 'node:fs';
import path from 'node:path';
import { InvalidParameter } from '../errors.js';

/** Linux's own limit on symlinks followed while resolving one path (MAXSYMLINKS). */
const MAX_LINKS = 40;

/**
 * Join `p` under `root` as if `root` were `/`: `..` stops at root, absolute
 * names and absolute symlink targets restart at root, and every symlink met on
 * the way is resolved inside root. Components that do not exist yet are
 * joined lexically. The result always lies in root (or is root).
 *
 * Like chroot-style resolution, this is only as good as the tree staying put
 * while we look: callers use it for trees they alone write (layer dirs).
 */
export function safeJoin(root: string, p: string): string {
  const base = path.resolve(root);
  const todo = p.split('/').reverse();
  const done: string[] = [];
  let links = 0;
  while (todo.length > 0) {
    const part = todo.pop() as string;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const candidate = path.join(base, ...done, part);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(candidate);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    }
    if (st?.isSymbolicLink()) {
      if (++links > MAX_LINKS) throw new InvalidParameter(`too many levels of symbolic links resolving ${p} in ${root}`);
      const target = fs.readlinkSync(candidate);
      if (target.startsWith('/')) done.length = 0;
      todo.push(...target.split('/').reverse());
      continue;
    }
    done.push(part);
  }
  return done.length === 0 ? base : path.join(base, ...done);
}

const DOT_PART = /(^|\/)\.\.?(\/|$)/;

/** Clean a tar member name to a root-relative path ('' for the root itself); `..` cannot climb above root. */
export function cleanName(name: string): string {
  // Most names are clean already (no leading or double slash, no . or .. part): only a trailing slash to drop.
  if (name[0] !== '/' && !name.includes('//') && !DOT_PART.test(name)) return name.endsWith('/') ? name.slice(0, -1) : name;
  return path.posix.normalize('/' + name).replace(/^\/+/, '').replace(/\/+$/, '');
}

/** safeJoin for the parent of `rel`, then the last component as-is: the result is never followed. */
export function safeJoinParent(root: string, rel: string): { parent: string; target: string; base: string } {
  const base = path.posix.basename(rel);
  const parent = safeJoin(root, path.posix.dirname(rel));
  return { parent, target: path.join(parent, base), base };
}

/** True when `name` climbs above its root with `..` (a leading `/` only anchors it at the root). */
export function climbsOut(name: string): boolean {
  let depth = 0;
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part !== '..') depth++;
    else if (depth-- === 0) return true;
  }
  return false;
}
