/**
 * Image references, following the distribution reference grammar:
 *
 *   reference        := name [ ":" tag ] [ "@" digest ]
 *   name             := [domain '/'] remote-name
 *   domain           := host [':' port-number]
 *   host             := domain-name | IPv4address | '[' IPv6address ']'
 *   domain-name      := domain-component ['.' domain-component]*
 *   domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
 *   remote-name      := path-component ['/' path-component]*
 *   path-component   := alpha-numeric [separator alpha-numeric]*
 *   alpha-numeric    := /[a-z0-9]+/
 *   separator        := /[_.]|__|[-]+/
 *   tag              := /[\w][\w.-]{0,127}/
 *   digest           := algorithm ':' hex   (algorithm components [A-Za-z][A-Za-z0-9]* joined by [+._-])
 *
 * plus Docker's normalisation: no domain → docker.io, a single docker.io component → library/<name>,
 * index.docker.io → docker.io, and a name without tag or digest gets ":latest".
 */
import { InvalidParameter } from '../errors.js';

export interface Reference { domain: string; path: string; tag?: string; digest?: string }

export const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_REPO_PREFIX = 'library/';
const NAME_TOTAL_MAX = 255;

const alnum = '[a-z0-9]+';
const separator = '(?:[._]|__|[-]+)';
const pathComponent = `${alnum}(?:${separator}${alnum})*`;
const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const ipv6 = '\\[(?:[a-fA-F0-9:]+)\\]';
const host = `(?:${domainComponent}(?:\\.${domainComponent})*|${ipv6})`;
const domainRe = `${host}(?::[0-9]+)?`;
const tagRe = '[\\w][\\w.-]{0,127}';
const digestRe = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const nameRe = `(?:${domainRe}/)?${pathComponent}(?:/${pathComponent})*`;
const REFERENCE_RE = new RegExp(`^(${nameRe})(?::(${tagRe}))?(?:@(${digestRe}))?$`);
const DOMAIN_RE = new RegExp(`^${domainRe}$`);
const TAG_RE = new RegExp(`^${tagRe}$`);
const ID_RE = /^[a-f0-9]{64}$/;

function invalid(detail?: string): InvalidParameter {
  return new InvalidParameter(detail ? `invalid reference format: ${detail}` : 'invalid reference format');
}

/** Splits "domain/remainder" the way docker does: the first component is a domain only if it looks like one. */
function splitDomain(name: string): { domain: string; remainder: string } {
  const i = name.indexOf('/');
  let domain: string;
  let remainder: string;
  const first = name.slice(0, i);
  if (i === -1 || (!/[.:]/.test(first) && first !== 'localhost' && first.toLowerCase() === first)) {
    domain = DEFAULT_DOMAIN;
    remainder = name;
  } else {
    domain = first;
    remainder = name.slice(i + 1);
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) remainder = OFFICIAL_REPO_PREFIX + remainder;
  return { domain, remainder };
}

function checkDigest(d: string): void {
  const [algo, hex] = d.split(':') as [string, string];
  if (algo !== 'sha256') throw new InvalidParameter('unsupported digest algorithm');
  if (hex.length !== 64) throw new InvalidParameter('invalid checksum digest length');
  if (!/^[a-f0-9]+$/.test(hex)) throw new InvalidParameter('invalid checksum digest format');
}

/**
 * Parses a user-supplied reference into its normalised full form (tag "latest" added when neither tag
 * nor digest is given). Throws InvalidParameter with docker's messages.
 */
export function parseReference(s: string): Reference {
  const ref = parseNormalizedNamed(s);
  if (ref.tag === undefined && ref.digest === undefined) ref.tag = 'latest';
  return ref;
}

/** Like parseReference, without adding a default tag ("busybox" → docker.io/library/busybox, no tag). */
export function parseNormalizedNamed(s: string): Reference {
  if (ID_RE.test(s)) {
    throw new InvalidParameter(`invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`);
  }
  const { domain, remainder } = splitDomain(s);
  const tagSep = remainder.indexOf(':');
  const remoteName = tagSep > -1 ? remainder.slice(0, tagSep) : remainder;
  if (remoteName.toLowerCase() !== remoteName) {
    throw invalid(`repository name (${remoteName}) must be lowercase`);
  }
  const full = `${domain}/${remainder}`;
  const m = REFERENCE_RE.exec(full);
  if (!m) {
    if (s === '') throw invalid('repository name must have at least one component');
    throw invalid();
  }
  const name = m[1]!;
  if (name.length > NAME_TOTAL_MAX) throw invalid(`repository name must not be more than ${NAME_TOTAL_MAX} characters`);
  const slash = name.indexOf('/');
  const ref: Reference = { domain: name.slice(0, slash), path: name.slice(slash + 1) };
  if (!DOMAIN_RE.test(ref.domain)) throw invalid();
  if (m[2] !== undefined) ref.tag = m[2];
  if (m[3] !== undefined) {
    checkDigest(m[3]);
    ref.digest = m[3];
  }
  return ref;
}

/** True when `s` is a valid tag (the part after ':'). */
export function isValidTag(s: string): boolean {
  return TAG_RE.test(s);
}

/** The repository name in full form: docker.io/library/busybox. */
export function repositoryName(r: Reference): string {
  return `${r.domain}/${r.path}`;
}

export function formatReference(r: Reference): string {
  let s = repositoryName(r);
  if (r.tag !== undefined) s += `:${r.tag}`;
  if (r.digest !== undefined) s += `@${r.digest}`;
  return s;
}

export function familiarName(r: Reference): string {
  if (r.domain !== DEFAULT_DOMAIN) return repositoryName(r);
  if (r.path.startsWith(OFFICIAL_REPO_PREFIX) && !r.path.slice(OFFICIAL_REPO_PREFIX.length).includes('/')) {
    return r.path.slice(OFFICIAL_REPO_PREFIX.length);
  }
  return r.path;
}

export function familiarString(r: Reference): string {
  let s = familiarName(r);
  if (r.tag !== undefined) s += `:${r.tag}`;
  if (r.digest !== undefined) s += `@${r.digest}`;
  return s;
}
