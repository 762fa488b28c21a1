/**
 * The CLI's only link to the daemon: HTTP/1.1 over a unix socket, Engine API v1.50.
 *
 * One ApiClient per invocation. request() returns the raw response (streams stay
 * streams); json() reads a whole JSON body; hijack() performs the attach upgrade
 * and hands back the raw duplex socket. Every failure is an ApiError (daemon said
 * no: carries status and Docker's message) or a ConnectError (no daemon there),
 * which main.ts turns into docker's texts and exit codes.
 */
import http from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import { Writable } from 'node:stream';

export const API_VERSION = '1.50';
export const DEFAULT_HOST = 'unix:///run/berth/berth.sock';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly daemonMessage: string,
  ) {
    super(`Error response from daemon: ${daemonMessage}`);
  }
}

export class ConnectError extends Error {
  constructor(
    readonly host: string,
    readonly code: string,
  ) {
    super(
      code === 'EACCES'
        ? `permission denied while trying to connect to the berth daemon socket at ${host}`
        : `Cannot connect to the berth daemon at ${host}. Is the berth daemon running?`,
    );
  }
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined | string[]>;
  body?: unknown;
  /** A raw body stream (import); sent chunked with the given content type. */
  stream?: Readable;
  contentType?: string;
  headers?: Record<string, string>;
}

export type Query = RequestOptions['query'];

export function buildQuery(q: Query): string {
  if (!q) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) p.append(k, x);
    else p.append(k, typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** Resolves -H / BERTH_HOST / DOCKER_HOST (unix only) / default to a socket path. */
export function resolveHost(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (flag) return flag;
  if (env.BERTH_HOST) return env.BERTH_HOST;
  if (env.DOCKER_HOST && env.DOCKER_HOST.startsWith('unix://')) return env.DOCKER_HOST;
  return DEFAULT_HOST;
}

export function socketPathOf(host: string): string {
  if (host.startsWith('unix://')) return host.slice('unix://'.length);
  if (host.startsWith('/')) return host;
  throw new Error(`unsupported daemon address ${host}: only unix:// sockets are supported`);
}

export async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
  return Buffer.concat(chunks);
}

function messageOf(status: number, body: Buffer): string {
  const text = body.toString('utf8').trim();
  try {
    const j = JSON.parse(text) as { message?: string };
    if (typeof j.message === 'string') return j.message;
  } catch {}
  return text || http.STATUS_CODES[status] || `status ${status}`;
}

export class ApiClient {
  readonly socketPath: string;
  constructor(readonly host: string) {
    this.socketPath = socketPathOf(host);
  }

  private path(p: string, q?: Query): string {
    return `/v${API_VERSION}${p}${buildQuery(q)}`;
  }

  private headers(o: RequestOptions): Record<string, string> {
    const h: Record<string, string> = { 'User-Agent': `berth-cli/${API_VERSION}`, ...o.headers };
    if (o.body !== undefined) h['Content-Type'] = 'application/json';
    if (o.stream) h['Content-Type'] = o.contentType ?? 'application/octet-stream';
    return h;
  }

  /** Sends a request; resolves with the response once headers arrive. Non-2xx → ApiError. */
  async request(method: string, p: string, o: RequestOptions = {}): Promise<http.IncomingMessage> {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request({ socketPath: this.socketPath, method, path: this.path(p, o.query), headers: this.headers(o) }, resolve);
      req.on('error', (e: NodeJS.ErrnoException) => reject(this.connectError(e)));
      if (o.stream) {
        o.stream.on('error', (e) => req.destroy(e));
        o.stream.pipe(req);
      } else req.end(o.body !== undefined ? JSON.stringify(o.body) : undefined);
    });
    if (res.statusCode !== undefined && res.statusCode >= 400) {
      throw new ApiError(res.statusCode, messageOf(res.statusCode, await readAll(res)));
    }
    return res;
  }

  async json<T>(method: string, p: string, o: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, p, o);
    const body = (await readAll(res)).toString('utf8');
    return (body.trim() ? JSON.parse(body) : undefined) as T;
  }

  /** A request whose body we discard (start, stop, kill...). */
  async call(method: string, p: string, o: RequestOptions = {}): Promise<number> {
    const res = await this.request(method, p, o);
    res.resume();
    await new Promise((r) => res.on('end', r));
    return res.statusCode ?? 0;
  }

  /**
   * The attach handshake: `Connection: Upgrade, Upgrade: tcp`, the daemon answers 101 and
   * the socket becomes a raw duplex. Bytes that arrived with the 101 are unshifted back.
   */
  hijack(method: string, p: string, o: RequestOptions = {}): Promise<Duplex> {
    return new Promise<Duplex>((resolve, reject) => {
      const req = http.request({
        socketPath: this.socketPath,
        method,
        path: this.path(p, o.query),
        headers: { ...this.headers(o), Connection: 'Upgrade', Upgrade: 'tcp' },
      });
      req.on('upgrade', (_res, socket, head) => {
        if (head.length) socket.unshift(head);
        resolve(socket);
      });
      req.on('response', (res) => {
        // An old-style daemon may answer 200 and stream on the response body instead.
        if ((res.statusCode ?? 0) >= 400) {
          readAll(res).then(
            (b) => reject(new ApiError(res.statusCode ?? 500, messageOf(res.statusCode ?? 500, b))),
            reject,
          );
        } else {
          resolve(res as unknown as Duplex);
        }
      });
      req.on('error', (e: NodeJS.ErrnoException) => reject(this.connectError(e)));
      req.end(o.body !== undefined ? JSON.stringify(o.body) : undefined);
    });
  }

  private connectError(e: NodeJS.ErrnoException): Error {
    if (e.code && ['ENOENT', 'ECONNREFUSED', 'EACCES', 'ENOTSOCK', 'ENOTDIR'].includes(e.code)) return new ConnectError(this.host, e.code);
    return e;
  }
}

/**
 * Demultiplexes Docker's stdcopy framing ([stream,0,0,0,size BE32] + payload) into
 * stdout/stderr. Stream 3 (systemerr) is a daemon-side error and fails the pipeline.
 */
export class Demuxer extends Writable {
  private buf: Buffer = Buffer.alloc(0);
  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly err: NodeJS.WritableStream,
  ) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const pending: Array<Promise<void>> = [];
    while (this.buf.length >= 8) {
      const size = this.buf.readUInt32BE(4);
      if (this.buf.length < 8 + size) break;
      const kind = this.buf[0];
      const payload = this.buf.subarray(8, 8 + size);
      this.buf = this.buf.subarray(8 + size);
      if (kind === 3) return cb(new Error(payload.toString('utf8')));
      const dest = kind === 2 ? this.err : this.out;
      if (!dest.write(payload)) pending.push(new Promise((r) => dest.once('drain', () => r())));
    }
    if (pending.length) Promise.all(pending).then(() => cb(), cb);
    else cb();
  }
}
