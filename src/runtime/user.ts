/**
 * Docker's --user against the container's own /etc/passwd and /etc/group.
 * The files are read through the rootfs with symlinks resolved inside it,
 * so an image cannot point /etc/passwd at a host file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InvalidParameter } from '../errors.js';

interface PasswdEntry { name: string; uid: number; gid: number; home: string }
interface GroupEntry { name: string; gid: number; members: string[] }

/** Resolve `p` (absolute, inside the container) to a host path under `root`, following symlinks without leaving root. */
export function scopedPath(root: string, p: string): string {
  const parts = p.split('/').filter((s) => s && s !== '.');
  let cur = '';
  let hops = 0;
  while (parts.length) {
    const part = parts.shift() as string;
    if (part === '..') { cur = path.posix.dirname(cur === '' ? '/' : cur); if (cur === '/') cur = ''; continue; }
    const next = `${cur}/${part}`;
    let st: fs.Stats;
    try { st = fs.lstatSync(path.join(root, next)); } catch { cur = next; continue; }
    if (st.isSymbolicLink()) {
      if (++hops > 40) throw new InvalidParameter(`too many levels of symbolic links: ${p}`);
      const target = fs.readlinkSync(path.join(root, next));
      if (target.startsWith('/')) cur = '';
      parts.unshift(...target.split('/').filter((s) => s && s !== '.'));
      continue;
    }
    cur = next;
  }
  return path.join(root, cur || '/');
}

function readLines(root: string, file: string): string[] {
  try {
    return fs.readFileSync(scopedPath(root, file), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
  } catch {
    return [];
  }
}

function parsePasswd(root: string): PasswdEntry[] {
  return readLines(root, '/etc/passwd').map((l) => l.split(':')).filter((f) => f.length >= 4).map((f) => ({
    name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] || '/',
  }));
}

function parseGroup(root: string): GroupEntry[] {
  return readLines(root, '/etc/group').map((l) => l.split(':')).filter((f) => f.length >= 3).map((f) => ({
    name: f[0], gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean),
  }));
}

const isId = (s: string) => /^\d+$/.test(s);

/** HOME for a uid as the image's passwd has it, "/" when there is no entry. */
export function lookupHomeSync(rootfs: string, uid: number): string {
  return parsePasswd(rootfs).find((e) => e.uid === uid)?.home ?? '/';
}

/**
 * `spec` (user[:group]) as dockerd resolves it: the supplementary groups are the primary group, the
 * groups whose member list names the user (when no group was given), then each of `groupAdd` (a
 * name from the image's group file, or a number).
 */
export function resolveUserSync(rootfs: string, spec: string, groupAdd: readonly string[] = []): { uid: number; gid: number; additionalGids: number[]; home: string } {
  const [userPart, groupPart] = spec.includes(':') ? [spec.slice(0, spec.indexOf(':')), spec.slice(spec.indexOf(':') + 1)] : [spec, ''];
  const passwd = parsePasswd(rootfs);
  let uid = 0;
  let gid = 0;
  let home = '/';
  let name: string | undefined;

  const u = userPart === '' ? passwd.find((e) => e.uid === 0) : passwd.find((e) => e.name === userPart) ?? (isId(userPart) ? passwd.find((e) => e.uid === Number(userPart)) : undefined);
  if (u) {
    ({ uid, gid, home, name } = u);
  } else if (userPart !== '') {
    if (!isId(userPart)) throw new InvalidParameter(`unable to find user ${userPart}: no matching entries in passwd file`);
    uid = Number(userPart);
  }

  const groups = parseGroup(rootfs);
  let additionalGids: number[] = [];
  if (groupPart !== '') {
    const g = groups.find((e) => e.name === groupPart) ?? (isId(groupPart) ? groups.find((e) => e.gid === Number(groupPart)) : undefined);
    if (g) gid = g.gid;
    else if (isId(groupPart)) gid = Number(groupPart);
    else throw new InvalidParameter(`unable to find group ${groupPart}: no matching entries in group file`);
  } else if (name !== undefined) {
    // Supplementary groups come from the group file only when the group was not given explicitly.
    additionalGids = groups.filter((g) => g.members.includes(name as string)).map((g) => g.gid);
  }
  for (const ag of groupAdd) {
    const g = groups.find((e) => e.name === ag);
    if (g) additionalGids.push(g.gid);
    else if (isId(ag) && Number(ag) <= 0xfffffffe) additionalGids.push(Number(ag));
    else throw new InvalidParameter(`Unable to find group ${ag}: no matching entries in group file`);
  }
  if (uid > 0xffffffff - 1 || gid > 0xffffffff - 1) throw new InvalidParameter(`uid/gid out of range: ${spec}`);
  return { uid, gid, additionalGids: [...new Set([gid, ...additionalGids])], home };
}

export async function resolveUser(rootfs: string, user: string, groupAdd: readonly string[] = []): Promise<{ uid: number; gid: number; additionalGids: number[]; home: string }> {
  return resolveUserSync(rootfs, user, groupAdd);
}
