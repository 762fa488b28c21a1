/**
 * The vocabulary of the OCI Distribution Spec v1.1 that the server speaks: name,
 * tag and digest grammars, the manifest media types it stores, and the error
 * codes with their HTTP statuses. Pure functions, no I/O.
 */

/** Repository names: path components of lower-case alphanumerics joined by separators. */
const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export function validName(name: string): boolean {
  return name.length <= 255 && NAME_RE.test(name);
}
export function validTag(tag: string): boolean {
  return TAG_RE.test(tag);
}
/** Only the algorithms the server can verify are valid; anything else is DIGEST_INVALID. */
export function validDigest(d: string): boolean {
  return DIGEST_RE.test(d);
}
export function digestAlgorithm(d: string): 'sha256' | 'sha512' {
  return d.startsWith('sha512:') ? 'sha512' : 'sha256';
}

export const MT = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

export const MANIFEST_TYPES: ReadonlySet<string> = new Set(Object.values(MT));
export const isIndexType = (mt: string): boolean => mt === MT.ociIndex || mt === MT.dockerList;

export type ErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'RANGE_INVALID'
  | 'TOOMANYREQUESTS';

const STATUS: Record<ErrorCode, number> = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  RANGE_INVALID: 416,
  TOOMANYREQUESTS: 429,
};

/** A failure the client sees as `{"errors":[{code,message,detail}]}` with the spec's status. */
export class RegistryError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly detail?: unknown,
    status?: number,
  ) {
    super(message);
    this.status = status ?? STATUS[code];
  }
  body(): string {
    // RANGE_INVALID is our name for a 416; on the wire it is BLOB_UPLOAD_INVALID, as distribution sends.
    const code = this.code === 'RANGE_INVALID' ? 'BLOB_UPLOAD_INVALID' : this.code;
    return JSON.stringify({ errors: [{ code, message: this.message, detail: this.detail ?? null }] });
  }
}

/** A descriptor as it appears inside manifests and indexes. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  artifactType?: string;
  platform?: Record<string, unknown>;
}

/** The fields of an image manifest or index that the registry looks at. */
export interface ParsedManifest {
  mediaType: string;
  schemaVersion: number;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
}

function isDescriptor(v: unknown): v is Descriptor {
  if (!v || typeof v !== 'object') return false;
  const d = v as Record<string, unknown>;
  return typeof d.mediaType === 'string' && typeof d.digest === 'string' && validDigest(d.digest) && typeof d.size === 'number' && d.size >= 0;
}

/**
 * Parses a pushed manifest. The media type comes from the body's `mediaType` or, when the
 * body has none (allowed for OCI), from Content-Type; the two must agree when both are given.
 */
export function parseManifest(body: Buffer, contentType: string | undefined): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw new RegistryError('MANIFEST_INVALID', 'manifest invalid', 'body is not JSON');
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new RegistryError('MANIFEST_INVALID', 'manifest invalid', 'body is not a JSON object');
  const m = doc as Record<string, unknown>;
  const ct = contentType?.split(';')[0].trim();
  const bodyType = typeof m.mediaType === 'string' ? m.mediaType : undefined;
  if (bodyType && ct && MANIFEST_TYPES.has(ct) && ct !== bodyType) {
    throw new RegistryError('MANIFEST_INVALID', 'manifest invalid', `mediaType ${bodyType} does not match Content-Type ${ct}`);
  }
  const mediaType = bodyType ?? ct ?? '';
  if (!MANIFEST_TYPES.has(mediaType)) throw new RegistryError('MANIFEST_INVALID', 'manifest invalid', `unsupported manifest media type "${mediaType}"`);
  if (m.schemaVersion !== 2) throw new RegistryError('MANIFEST_INVALID', 'manifest invalid', 'schemaVersion must be 2');
  const out: ParsedManifest = { mediaType, schemaVersion: 2 };
  if (isIndexType(mediaType)) {
    if (!Array.isArray(m.manifests) || !m.manifests.every(isDescriptor)) throw new RegistryError('MANIFEST_INVALID', 'manifest invalid', 'manifests must be a list of descriptors');
    out.manifests = m.manifests;
  } else {
    if (!isDescriptor(m.config)) throw new RegistryError('MANIFEST_INVALID', 'manifest invalid', 'config must be a descriptor');
    if (!Array.isArray(m.layers) || !m.layers.every(isDescriptor)) throw new RegistryError('MANIFEST_INVALID', 'manifest invalid', 'layers must be a list of descriptors');
    out.config = m.config;
    out.layers = m.layers;
  }
  if (m.subject !== undefined) {
    if (!isDescriptor(m.subject)) throw new RegistryError('MANIFEST_INVALID', 'manifest invalid', 'subject must be a descriptor');
    out.subject = m.subject;
  }
  if (typeof m.artifactType === 'string') out.artifactType = m.artifactType;
  if (m.annotations && typeof m.annotations === 'object') out.annotations = m.annotations as Record<string, string>;
  return out;
}

/** Blobs a manifest needs in its repository (foreign layers with URLs are fetched elsewhere). */
export function referencedBlobs(m: ParsedManifest): Descriptor[] {
  if (!m.config) return [];
  return [m.config, ...(m.layers ?? [])].filter((d) => !(d.urls && d.urls.length) && !/foreign|nondistributable/.test(d.mediaType));
}
