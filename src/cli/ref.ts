/**
 * Image references the way the docker CLI normalizes them: "busybox" is
 * docker.io/library/busybox:latest, shown back to users in familiar form.
 */
export interface ImageRef {
  /** registry host, "docker.io" by default */
  domain: string;
  /** repository path inside the registry ("library/busybox") */
  path: string;
  tag?: string;
  digest?: string;
}

const pathRe = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

export function parseRef(s: string): ImageRef {
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(digest)) throw new Error('invalid reference format');
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!/^[\w][\w.-]{0,127}$/.test(tag)) throw new Error('invalid reference format');
  }
  let domain = 'docker.io';
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash > 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      domain = first;
      path = rest.slice(slash + 1);
    }
  }
  if (domain === 'index.docker.io') domain = 'docker.io';
  if (domain === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  if (path !== path.toLowerCase()) throw new Error(`invalid reference format: repository name (${path}) must be lowercase`);
  if (!pathRe.test(path)) throw new Error('invalid reference format');
  return { domain, path, tag, digest };
}

/** "docker.io/library/busybox" */
export function fullName(r: ImageRef): string {
  return `${r.domain}/${r.path}`;
}

/** "busybox", "localhost:5000/x" */
export function familiarName(r: ImageRef): string {
  if (r.domain !== 'docker.io') return `${r.domain}/${r.path}`;
  return r.path.startsWith('library/') ? r.path.slice('library/'.length) : r.path;
}

/** Familiar string with ":latest" added when neither tag nor digest was given. */
export function familiarTagged(r: ImageRef): string {
  let s = familiarName(r);
  if (r.tag) s += `:${r.tag}`;
  if (r.digest) s += `@${r.digest}`;
  if (!r.tag && !r.digest) s += ':latest';
  return s;
}
