/**
 * The HTTP face of the registry: OCI Distribution Spec v1.1 routes over a RegistryStore, and the
 * v1 search API (`docker search`) over its repository names.
 *
 * Lifecycle: startRegistry(config) creates the store directories, loads the htpasswd
 * file and TLS material, listens and resolves with a handle; close() stops accepting,
 * ends idle keep-alive connections and resolves when in-flight requests are done.
 * Every request passes, in order: API-version header → Basic auth (401) → read-only
 * (405 for writes) → name check (NAME_INVALID) → route. Errors leave as the spec's
 * `{"errors":[…]}` body; one log line per request records method, path, status and ms.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { log } from '../../log.js';
import { Htpasswd } from './auth.js';
import { DEFAULT_ADDR, parseAddr, type RegistryConfig } from './config.js';
import { RegistryError, validDigest, validName, MT, type Descriptor } from './spec.js';
import { MAX_MANIFEST_BYTES, RegistryStore } from './storage.js';

export interface RegistryServer {
  /** e.g. http://127.0.0.1:5000 */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly store: RegistryStore;
  close(): Promise<void>;
}

type Req = http.IncomingMessage;
type Res = http.ServerResponse;

const REALM = 'berth-registry';

interface Route {
  method: string;
  re: RegExp;
  handler: (ctx: Handler, m: RegExpExecArray) => Promise<void>;
}

/** Paging of sorted lists by `n` and `last`, with the `Link` header to the next page. */
function paginate(items: string[], url: URL, basePath: string, res: Res): string[] {
  const last = url.searchParams.get('last');
  const nRaw = url.searchParams.get('n');
  let list = last ? items.filter((x) => x > last) : items;
  if (nRaw !== null) {
    if (!/^\d+$/.test(nRaw)) throw new RegistryError('UNSUPPORTED', 'invalid n', { n: nRaw }, 400);
    const n = Number(nRaw);
    if (list.length > n) {
      list = list.slice(0, n);
      if (n > 0) res.setHeader('Link', `<${basePath}?n=${n}&last=${encodeURIComponent(list[list.length - 1])}>; rel="next"`);
    }
  }
  return list;
}

/** Content-Range of a PATCH: "start-end" (some clients prefix "bytes "/"bytes="). */
function parseContentRange(v: string | undefined): { start: number; end: number } | undefined {
  if (v === undefined) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/\d+|\/\*)?$/.exec(v.trim());
  if (!m) throw new RegistryError('RANGE_INVALID', 'invalid content range', { contentRange: v });
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) throw new RegistryError('RANGE_INVALID', 'invalid content range', { contentRange: v });
  return { start, end };
}

function contentLength(req: Req): number | undefined {
  const v = req.headers['content-length'];
  return v === undefined ? undefined : Number(v);
}

function hasBody(req: Req): boolean {
  const n = contentLength(req);
  return (n !== undefined && n > 0) || req.headers['transfer-encoding'] !== undefined;
}

async function readBody(req: Req, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) throw new RegistryError('SIZE_INVALID', 'manifest too large', { limit }, 413);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

class Handler {
  constructor(
    readonly store: RegistryStore,
    readonly req: Req,
    readonly res: Res,
    readonly url: URL,
  ) {}

  send(status: number, headers: Record<string, string | number> = {}, body?: string | Buffer): void {
    for (const [k, v] of Object.entries(headers)) this.res.setHeader(k, v);
    if (body !== undefined && !this.res.hasHeader('Content-Length')) this.res.setHeader('Content-Length', Buffer.byteLength(body));
    this.res.statusCode = status;
    if (this.req.method === 'HEAD' || body === undefined) this.res.end();
    else this.res.end(body);
  }

  json(status: number, doc: unknown, contentType = 'application/json'): void {
    this.send(status, { 'Content-Type': contentType }, JSON.stringify(doc));
  }

  uploadHeaders(name: string, uuid: string, size: number): Record<string, string> {
    return {
      Location: `/v2/${name}/blobs/uploads/${uuid}`,
      Range: `0-${size > 0 ? size - 1 : 0}`,
      'Docker-Upload-UUID': uuid,
    };
  }

  digestParam(raw: string): string {
    const d = decodeURIComponent(raw);
    if (!validDigest(d)) throw new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content', { digest: d, reason: 'invalid or unsupported digest' });
    return d;
  }

  // ---- routes ----

  async base(): Promise<void> {
    this.json(200, {});
  }

  /** The v1 search API that `docker search host/term` asks: repositories whose name holds the term. */
  async search(): Promise<void> {
    const q = this.url.searchParams.get('q') ?? '';
    const nRaw = this.url.searchParams.get('n') ?? '25';
    if (!/^\d+$/.test(nRaw) || Number(nRaw) < 1 || Number(nRaw) > 100) throw new RegistryError('UNSUPPORTED', 'invalid n', { n: nRaw }, 400);
    const hits = (await this.store.catalog()).filter((r) => r.includes(q));
    const results = hits.slice(0, Number(nRaw)).map((name) => ({ name, description: '', star_count: 0, is_official: false, is_automated: false }));
    this.json(200, { num_pages: 1, num_results: hits.length, page: 1, page_size: Number(nRaw), query: q, results });
  }

  async catalog(): Promise<void> {
    const repos = paginate(await this.store.catalog(), this.url, '/v2/_catalog', this.res);
    this.json(200, { repositories: repos });
  }

  async tagsList(name: string): Promise<void> {
    const tags = paginate(await this.store.tags(name), this.url, `/v2/${name}/tags/list`, this.res);
    this.json(200, { name, tags });
  }

  async getBlob(name: string, rawDigest: string): Promise<void> {
    const digest = this.digestParam(rawDigest);
    const blob = await this.store.statBlob(name, digest);
    if (!blob) throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { digest });
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/octet-stream',
      'Docker-Content-Digest': digest,
      'Accept-Ranges': 'bytes',
      ETag: `"${digest}"`,
      'Cache-Control': 'max-age=31536000',
    };
    let start = 0;
    let end = blob.size - 1;
    let status = 200;
    const range = this.req.headers.range;
    if (range && this.req.method === 'GET') {
      const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
      if (m && (m[1] !== '' || m[2] !== '')) {
        if (m[1] === '') {
          start = Math.max(0, blob.size - Number(m[2]));
        } else {
          start = Number(m[1]);
          if (m[2] !== '') end = Math.min(end, Number(m[2]));
        }
        if (start > end || start >= blob.size) {
          this.send(416, { 'Content-Range': `bytes */${blob.size}`, 'Content-Type': 'application/json' }, new RegistryError('RANGE_INVALID', 'requested range not satisfiable', { range }).body());
          return;
        }
        status = 206;
        headers['Content-Range'] = `bytes ${start}-${end}/${blob.size}`;
      }
    }
    headers['Content-Length'] = blob.size === 0 ? 0 : end - start + 1;
    for (const [k, v] of Object.entries(headers)) this.res.setHeader(k, v);
    this.res.statusCode = status;
    if (this.req.method === 'HEAD' || blob.size === 0) {
      this.res.end();
      return;
    }
    // Streamed straight from the file; if the client goes away the stream is destroyed with the socket.
    const src = fs.createReadStream(blob.path, { start, end, highWaterMark: 1 << 20 });
    await new Promise<void>((resolve) => {
      src.on('error', () => {
        this.res.destroy();
        resolve();
      });
      this.res.on('close', () => {
        src.destroy();
        resolve();
      });
      src.pipe(this.res);
    });
  }

  async deleteBlob(name: string, rawDigest: string): Promise<void> {
    const digest = this.digestParam(rawDigest);
    if (!(await this.store.unlinkBlob(name, digest))) throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { digest });
    this.send(202, { 'Docker-Content-Digest': digest, 'Content-Length': 0 });
  }

  async startUpload(name: string): Promise<void> {
    const mount = this.url.searchParams.get('mount');
    const from = this.url.searchParams.get('from');
    const digestRaw = this.url.searchParams.get('digest');
    if (mount !== null && from !== null) {
      const digest = this.digestParam(mount);
      if (validName(from) && (await this.store.mountBlob(name, from, digest))) {
        this.send(201, { Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest, 'Content-Length': 0 });
        return;
      }
    } else if (digestRaw !== null) {
      const digest = this.digestParam(digestRaw);
      await this.store.putBlob(name, digest, this.req, contentLength(this.req));
      this.send(201, { Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest, 'Content-Length': 0 });
      return;
    }
    const uuid = await this.store.startUpload(name);
    this.send(202, { ...this.uploadHeaders(name, uuid, 0), 'Content-Length': 0 });
  }

  async uploadStatus(name: string, uuid: string): Promise<void> {
    const size = await this.store.uploadSize(name, uuid);
    this.send(204, this.uploadHeaders(name, uuid, size));
  }

  async patchUpload(name: string, uuid: string): Promise<void> {
    const cr = parseContentRange(this.req.headers['content-range'] as string | undefined);
    const len = contentLength(this.req);
    if (cr && len !== undefined && cr.end - cr.start + 1 !== len) throw new RegistryError('RANGE_INVALID', 'content range does not match content length', { contentRange: this.req.headers['content-range'], contentLength: len });
    const size = await this.store.appendUpload(name, uuid, this.req, { start: cr?.start, length: len ?? (cr ? cr.end - cr.start + 1 : undefined) });
    this.send(202, { ...this.uploadHeaders(name, uuid, size), 'Content-Length': 0 });
  }

  async putUpload(name: string, uuid: string): Promise<void> {
    const digestRaw = this.url.searchParams.get('digest');
    if (digestRaw === null) throw new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content', { reason: 'digest parameter missing' });
    const digest = this.digestParam(digestRaw);
    let last: { body: Req; start?: number; length?: number } | undefined;
    if (hasBody(this.req)) {
      const cr = parseContentRange(this.req.headers['content-range'] as string | undefined);
      last = { body: this.req, start: cr?.start, length: contentLength(this.req) };
    }
    await this.store.finishUpload(name, uuid, digest, last);
    this.send(201, { Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest, 'Content-Length': 0 });
  }

  async cancelUpload(name: string, uuid: string): Promise<void> {
    await this.store.uploadSize(name, uuid);
    await this.store.cancelUpload(uuid);
    this.send(204);
  }

  async getManifest(name: string, ref: string): Promise<void> {
    const m = await this.store.getManifest(name, decodeURIComponent(ref));
    if (!m) throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { name, reference: ref });
    this.send(200, { 'Content-Type': m.mediaType, 'Docker-Content-Digest': m.digest, ETag: `"${m.digest}"`, 'Content-Length': m.body.length }, m.body);
  }

  async putManifest(name: string, ref: string): Promise<void> {
    const body = await readBody(this.req, MAX_MANIFEST_BYTES);
    const { digest, manifest } = await this.store.putManifest(name, decodeURIComponent(ref), body, this.req.headers['content-type']);
    const headers: Record<string, string | number> = { Location: `/v2/${name}/manifests/${digest}`, 'Docker-Content-Digest': digest, 'Content-Length': 0 };
    if (manifest.subject) headers['OCI-Subject'] = manifest.subject.digest;
    this.send(201, headers);
  }

  async deleteManifest(name: string, ref: string): Promise<void> {
    if (!(await this.store.deleteManifest(name, decodeURIComponent(ref)))) throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { name, reference: ref });
    this.send(202, { 'Content-Length': 0 });
  }

  async referrers(name: string, rawDigest: string): Promise<void> {
    const digest = this.digestParam(rawDigest);
    const artifactType = this.url.searchParams.get('artifactType') ?? undefined;
    const manifests: Descriptor[] = await this.store.referrers(name, digest, artifactType);
    if (artifactType !== undefined) this.res.setHeader('OCI-Filters-Applied', 'artifactType');
    this.json(200, { schemaVersion: 2, mediaType: MT.ociIndex, manifests }, MT.ociIndex);
  }
}

const N = '(.+)';
const routes: Route[] = [
  { method: 'GET', re: /^\/v2\/?$/, handler: (h) => h.base() },
  { method: 'GET', re: /^\/v2\/_catalog$/, handler: (h) => h.catalog() },
  { method: 'GET', re: /^\/v1\/search$/, handler: (h) => h.search() },
  { method: 'GET', re: new RegExp(`^/v2/${N}/tags/list$`), handler: (h, m) => h.tagsList(m[1]) },
  { method: 'POST', re: new RegExp(`^/v2/${N}/blobs/uploads/?$`), handler: (h, m) => h.startUpload(m[1]) },
  { method: 'GET', re: new RegExp(`^/v2/${N}/blobs/uploads/([^/]+)$`), handler: (h, m) => h.uploadStatus(m[1], m[2]) },
  { method: 'PATCH', re: new RegExp(`^/v2/${N}/blobs/uploads/([^/]+)$`), handler: (h, m) => h.patchUpload(m[1], m[2]) },
  { method: 'PUT', re: new RegExp(`^/v2/${N}/blobs/uploads/([^/]+)$`), handler: (h, m) => h.putUpload(m[1], m[2]) },
  { method: 'DELETE', re: new RegExp(`^/v2/${N}/blobs/uploads/([^/]+)$`), handler: (h, m) => h.cancelUpload(m[1], m[2]) },
  { method: 'GET', re: new RegExp(`^/v2/${N}/blobs/([^/]+)$`), handler: (h, m) => h.getBlob(m[1], m[2]) },
  { method: 'DELETE', re: new RegExp(`^/v2/${N}/blobs/([^/]+)$`), handler: (h, m) => h.deleteBlob(m[1], m[2]) },
  { method: 'GET', re: new RegExp(`^/v2/${N}/manifests/([^/]+)$`), handler: (h, m) => h.getManifest(m[1], m[2]) },
  { method: 'PUT', re: new RegExp(`^/v2/${N}/manifests/([^/]+)$`), handler: (h, m) => h.putManifest(m[1], m[2]) },
  { method: 'DELETE', re: new RegExp(`^/v2/${N}/manifests/([^/]+)$`), handler: (h, m) => h.deleteManifest(m[1], m[2]) },
  { method: 'GET', re: new RegExp(`^/v2/${N}/referrers/([^/]+)$`), handler: (h, m) => h.referrers(m[1], m[2]) },
];

function sendError(req: Req, res: Res, err: RegistryError, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = err.body();
  for (const [k, v] of Object.entries(extra)) res.setHeader(k, v);
  res.statusCode = err.status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(req.method === 'HEAD' ? undefined : body);
}

export async function startRegistry(config: RegistryConfig): Promise<RegistryServer> {
  const { host, port } = parseAddr(config.addr ?? DEFAULT_ADDR);
  const store = new RegistryStore(config.root);
  await store.init();
  const auth = config.htpasswd ? new Htpasswd(config.htpasswd) : undefined;
  const logRequests = config.logRequests ?? true;
  const tls = config.tlsCert && config.tlsKey ? { cert: fs.readFileSync(config.tlsCert), key: fs.readFileSync(config.tlsKey) } : undefined;
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) throw new Error('--tls-cert and --tls-key go together');

  const handle = async (req: Req, res: Res): Promise<void> => {
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    const url = new URL(req.url ?? '/', 'http://registry');
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    try {
      if (auth && !(await auth.verify(req.headers.authorization))) {
        sendError(req, res, new RegistryError('UNAUTHORIZED', 'authentication required', null), { 'WWW-Authenticate': `Basic realm="${REALM}"` });
        return;
      }
      if (!url.pathname.startsWith('/v2') && url.pathname !== '/v1/search') {
        sendError(req, res, new RegistryError('UNSUPPORTED', 'not found', { path: url.pathname }, 404));
        return;
      }
      let matchedPath = false;
      for (const r of routes) {
        const m = r.re.exec(url.pathname);
        if (!m) continue;
        matchedPath = true;
        if (r.method !== method) continue;
        if (config.readOnly && method !== 'GET') throw new RegistryError('UNSUPPORTED', 'the registry is in read-only mode');
        if (m.length > 1 && r.re.source.includes(N) && !validName(m[1])) throw new RegistryError('NAME_INVALID', 'invalid repository name', { name: m[1] });
        await r.handler(new Handler(store, req, res, url), m);
        return;
      }
      if (matchedPath) throw new RegistryError('UNSUPPORTED', 'the operation is unsupported', { method: req.method });
      throw new RegistryError('UNSUPPORTED', 'not found', { path: url.pathname }, 404);
    } catch (e) {
      if (e instanceof RegistryError) sendError(req, res, e);
      else {
        const err = e as NodeJS.ErrnoException;
        // A client that hung up mid-body is not a server error worth a 500 line.
        if (err.code === 'ERR_STREAM_PREMATURE_CLOSE' || err.code === 'ECONNRESET' || req.destroyed) {
          res.destroy();
          return;
        }
        log.error('registry request failed', { method: req.method, path: url.pathname, error: err.message });
        if (!res.headersSent) {
          const body = JSON.stringify({ errors: [{ code: 'UNKNOWN', message: err.message, detail: null }] });
          res.statusCode = 500;
          res.setHeader('Content-Type', 'application/json');
          res.end(body);
        } else res.destroy();
      }
    }
  };

  const listener = (req: Req, res: Res): void => {
    const t0 = process.hrtime.bigint();
    if (logRequests) {
      res.on('close', () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        log.info('request', { method: req.method, path: req.url, status: res.statusCode, ms: Math.round(ms * 10) / 10 });
      });
    }
    void handle(req, res);
  };
  const server: http.Server = tls ? https.createServer(tls, listener) : http.createServer(listener);
  // Blob uploads may take longer than Node's default 5-minute request timeout.
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `${tls ? 'https' : 'http'}://${shownHost}:${addr.port}`,
    host: addr.address,
    port: addr.port,
    store,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
