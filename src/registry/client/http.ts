/**
 * The wire to one registry host: endpoint choice (mirrors, https → http for insecure hosts), redirects,
 * and authentication (Bearer token per scope, Basic), so pull/push only say "GET this path with this scope".
 *
 * Lifecycle: a Transport is made per host per operation (it is cheap). What is worth keeping between
 * operations — the endpoint that answered, and tokens per (host, scope, user) until they expire — lives in the
 * SharedState the client owns.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type { Readable } from 'node:stream';
import { BerthError, Unauthorized, Unavailable } from '../../errors.js';
import { DEFAULT_DOMAIN } from '../../image/index.js';
import type { AuthConfig, RegistryOptions } from './types.js';

/** Docker answers a failed login / missing credentials with 401. */
export { Unauthorized };

export interface Endpoint { url: URL; insecureTls: boolean; mirror: boolean }

export interface SharedState {
  /** host → base URL that answered /v2/ (https or http). */
  bases: Map<string, URL>;
  tokens: Map<string, { token: string; expires: number }>;
  /** Token requests in flight, so parallel requests share one. */
  pendingTokens: Map<string, Promise<{ token: string; expires: number }>>;
}

export interface Response { status: number; headers: http.IncomingHttpHeaders; body: http.IncomingMessage; url: URL }

export interface RequestOptions {
  headers?: Record<string, string>;
  /** Replayable body (sent again after an auth challenge); a stream is sent once. */
  body?: Buffer | Readable;
  /** Token scopes, e.g. ["repository:library/busybox:pull"]. */
  scopes?: string[];
  signal?: AbortSignal;
  /** Follow redirects (GET/HEAD of blobs). */
  follow?: boolean;
}

const REGISTRY_1 = 'registry-1.docker.io';

export function isLoopbackHost(hostPort: string): boolean {
  const host = hostOnly(hostPort);
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  return host === '::1';
}

function hostOnly(hostPort: string): string {
  if (hostPort.startsWith('[')) return hostPort.slice(1, hostPort.indexOf(']'));
  const i = hostPort.lastIndexOf(':');
  return i > -1 && hostPort.indexOf(':') === i ? hostPort.slice(0, i) : hostPort;
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bitsS] = cidr.split('/');
  if (!base || bitsS === undefined || !net.isIPv4(ip) || !net.isIPv4(base)) return false;
  const bits = Number(bitsS);
  const toInt = (s: string): number => s.split('.').reduce((n, o) => (n << 8) + Number(o), 0) >>> 0;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return (toInt(ip) & mask) === (toInt(base) & mask);
}

/** Whether plain HTTP / unverified TLS is allowed for host[:port] (daemon.json insecure-registries, loopback). */
export function isInsecure(hostPort: string, opts: RegistryOptions): boolean {
  if (isLoopbackHost(hostPort)) return true;
  const host = hostOnly(hostPort);
  return opts.insecure.some((e) => e === hostPort || e === host || (e.includes('/') && inCidr(host, e)));
}

/** Endpoints to try for a reference domain, in order: mirrors (docker.io only), then the origin. */
export function endpointsFor(domain: string, opts: RegistryOptions): Endpoint[] {
  const out: Endpoint[] = [];
  if (domain === DEFAULT_DOMAIN) {
    for (const m of opts.mirrors) {
      const url = new URL(m.includes('://') ? m : `https://${m}`);
      out.push({ url, insecureTls: isInsecure(url.host, opts), mirror: true });
    }
    out.push({ url: new URL(`https://${REGISTRY_1}`), insecureTls: false, mirror: false });
    return out;
  }
  const insecure = isInsecure(domain, opts);
  out.push({ url: new URL(`https://${domain}`), insecureTls: insecure, mirror: false });
  return out;
}

function basicOf(auth: AuthConfig | undefined): string | null {
  if (!auth) return null;
  if (auth.username || auth.password) return Buffer.from(`${auth.username ?? ''}:${auth.password ?? ''}`).toString('base64');
  if (auth.auth) return auth.auth;
  return null;
}

interface Challenge { scheme: string; params: Record<string, string> }

/** Parses `Bearer realm="…",service="…",scope="…"` (one challenge is all registries send). */
export function parseChallenge(h: string | undefined): Challenge | null {
  if (!h) return null;
  const m = /^\s*(\w+)\s*(.*)$/.exec(h);
  if (!m) return null;
  const params: Record<string, string> = {};
  const re = /(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2]!))) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  return { scheme: m[1]!.toLowerCase(), params };
}

/** One HTTP exchange, no redirects, no auth. */
export function send(method: string, url: URL, opts: { headers?: Record<string, string>; body?: Buffer | Readable; insecureTls?: boolean; signal?: AbortSignal }): Promise<Response> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = { 'User-Agent': 'berth/0.1 (docker compatible)', ...opts.headers };
    if (Buffer.isBuffer(opts.body)) headers['Content-Length'] = String(opts.body.length);
    const req = mod.request(url, {
      method,
      headers,
      signal: opts.signal,
      rejectUnauthorized: !opts.insecureTls,
      timeout: 60_000,
    }, (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url }));
    req.on('timeout', () => req.destroy(new Unavailable(`${method} ${url.href}: timeout`)));
    req.on('error', reject);
    const body = opts.body;
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else {
      body.on('error', (e) => req.destroy(e));
      body.pipe(req);
    }
  });
}

export async function readAll(r: Readable, limit = 64 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of r) {
    n += (c as Buffer).length;
    if (n > limit) throw new BerthError(`response larger than ${limit} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The first error of a distribution error body: "manifest unknown: manifest unknown" style, like docker prints it. */
export async function errorText(res: Response): Promise<string> {
  const raw = (await readAll(res.body, 1 << 20).catch(() => Buffer.alloc(0))).toString('utf8');
  try {
    const j = JSON.parse(raw) as { errors?: { code?: string; message?: string; detail?: unknown }[] };
    const e = j.errors?.[0];
    if (e) {
      const code = (e.code ?? 'unknown').toLowerCase().replace(/_/g, ' ');
      return e.message ? `${code}: ${e.message}` : code;
    }
  } catch { /* not JSON */ }
  return raw.trim() || `${res.status} ${http.STATUS_CODES[res.status] ?? ''}`.trim();
}

export class Transport {
  private readonly basicFor = new Set<string>();

  constructor(
    readonly domain: string,
    readonly endpoint: Endpoint,
    private readonly state: SharedState,
    private readonly auth: AuthConfig | undefined,
  ) {}

  /** Resolves the base URL: https first; for insecure hosts plain http when https does not answer. */
  async base(signal?: AbortSignal): Promise<URL> {
    const key = this.endpoint.url.href;
    const known = this.state.bases.get(key);
    if (known) return known;
    const candidates = [this.endpoint.url];
    if (this.endpoint.insecureTls && this.endpoint.url.protocol === 'https:') {
      const h = new URL(this.endpoint.url.href);
      h.protocol = 'http:';
      candidates.push(h);
    }
    let lastErr: unknown;
    for (const c of candidates) {
      try {
        const res = await send('GET', new URL('/v2/', c), { insecureTls: this.endpoint.insecureTls, signal });
        res.body.resume();
        // An https port answered by a plain-http server gives 400 "client sent an HTTP request to an HTTPS server" — not ours.
        this.state.bases.set(key, c);
        return c;
      } catch (err) {
        if (signal?.aborted) throw err;
        lastErr = err;
      }
    }
    throw new Unavailable(`Get "${new URL('/v2/', this.endpoint.url).href}": ${(lastErr as Error)?.message ?? lastErr}`);
  }

  private tokenKey(scopes: string[]): string {
    return `${this.endpoint.url.host}|${[...scopes].sort().join(' ')}|${basicOf(this.auth) ?? ''}|${this.auth?.identitytoken ?? ''}`;
  }

  private authHeader(scopes: string[]): string | null {
    if (this.auth?.registrytoken) return `Bearer ${this.auth.registrytoken}`;
    const t = this.state.tokens.get(this.tokenKey(scopes));
    if (t && t.expires > Date.now()) return `Bearer ${t.token}`;
    if (this.basicFor.has(this.endpoint.url.host)) {
      const b = basicOf(this.auth);
      if (b) return `Basic ${b}`;
    }
    return null;
  }

  /**
   * Answers a 401 challenge: fetch a token (Bearer) or switch to Basic. `sent` is the Authorization we
   * sent: if it was already the answer, the credentials are refused and nothing can help (false).
   */
  private async answer(res: Response, scopes: string[], sent: string | null, signal?: AbortSignal): Promise<boolean> {
    const ch = parseChallenge(res.headers['www-authenticate'] as string | undefined);
    if (!ch) return false;
    if (ch.scheme === 'basic') {
      const b = basicOf(this.auth);
      if (!b || sent === `Basic ${b}`) return false;
      this.basicFor.add(this.endpoint.url.host);
      return true;
    }
    if (ch.scheme !== 'bearer' || !ch.params.realm) return false;
    const key = this.tokenKey(scopes);
    const cached = this.state.tokens.get(key);
    if (cached && cached.expires > Date.now()) {
      if (sent !== `Bearer ${cached.token}`) return true; // another request got a token meanwhile
      this.state.tokens.delete(key); // refused: the token does not grant this scope
      return false;
    }
    let p = this.state.pendingTokens.get(key);
    if (!p) {
      p = this.fetchToken(ch.params.realm, ch.params.service, scopes.length ? scopes : ch.params.scope ? [ch.params.scope] : [], signal);
      this.state.pendingTokens.set(key, p);
      p.then(() => this.state.pendingTokens.delete(key), () => this.state.pendingTokens.delete(key));
    }
    this.state.tokens.set(key, await p);
    return true;
  }

  async fetchToken(realm: string, service: string | undefined, scopes: string[], signal?: AbortSignal): Promise<{ token: string; expires: number; refresh?: string }> {
    const url = new URL(realm);
    if (service) url.searchParams.set('service', service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const headers: Record<string, string> = {};
    let res: Response;
    if (this.auth?.identitytoken) {
      // OAuth2 refresh-token grant, as docker does with an identity token.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: this.auth.identitytoken, client_id: 'docker', service: service ?? '' });
      if (scopes.length) form.set('scope', scopes.join(' '));
      res = await send('POST', new URL(realm), { headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: Buffer.from(form.toString()), insecureTls: this.endpoint.insecureTls, signal });
    } else {
      const b = basicOf(this.auth);
      if (b) headers.Authorization = `Basic ${b}`;
      if (this.auth?.username) url.searchParams.set('account', this.auth.username);
      res = await send('GET', url, { headers, insecureTls: this.endpoint.insecureTls, signal });
    }
    if (res.status === 401 || res.status === 403) {
      throw new Unauthorized(`unauthorized: ${await errorText(res)}`);
    }
    if (res.status !== 200) throw new Unavailable(`token request to ${url.origin}${url.pathname} failed: ${await errorText(res)}`);
    const j = JSON.parse((await readAll(res.body, 1 << 20)).toString('utf8')) as { token?: string; access_token?: string; expires_in?: number; refresh_token?: string };
    const token = j.token ?? j.access_token;
    if (!token) throw new Unavailable(`token server ${url.origin} answered without a token`);
    const ttl = Math.max(60, j.expires_in ?? 60) * 1000;
    return { token, expires: Date.now() + ttl - 5000, refresh: j.refresh_token };
  }

  /**
   * One request to the registry, authenticated. A 401 is answered once (token or basic) and the request
   * sent again — so only Buffer bodies survive a challenge; stream bodies must follow a request that
   * already authenticated the scope (push does POST before PATCH/PUT).
   */
  async request(method: string, pathOrUrl: string, opts: RequestOptions = {}): Promise<Response> {
    const base = await this.base(opts.signal);
    let url = new URL(pathOrUrl, base);
    const scopes = opts.scopes ?? [];
    let redirects = 0;
    let sameHost = true;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { ...opts.headers };
      const a = sameHost ? this.authHeader(scopes) : null;
      if (a) headers.Authorization = a;
      const res = await send(method, url, { headers, body: opts.body, insecureTls: this.endpoint.insecureTls, signal: opts.signal });
      if (res.status === 401 && sameHost && attempt < 2 && (opts.body === undefined || Buffer.isBuffer(opts.body))) {
        res.body.resume();
        if (await this.answer(res, scopes, a, opts.signal)) continue;
        throw new Unauthorized(`unauthorized: authentication required`);
      }
      if (opts.follow && [301, 302, 303, 307, 308].includes(res.status) && res.headers.location) {
        res.body.resume();
        if (++redirects > 10) throw new Unavailable(`${method} ${url.href}: too many redirects`);
        const next = new URL(res.headers.location, url);
        // Credentials are for the registry only; a blob store elsewhere (S3, CDN) gets a signed URL instead.
        if (next.host !== base.host) sameHost = false;
        url = next;
        attempt = -1;
        continue;
      }
      return res;
    }
  }

  /** GET /v2/ and answer its challenge: what `docker login` checks. Returns an identity token if the token server issued one. */
  async login(signal?: AbortSignal): Promise<{ identityToken?: string }> {
    const base = await this.base(signal);
    const url = new URL('/v2/', base);
    let res = await send('GET', url, { insecureTls: this.endpoint.insecureTls, signal });
    res.body.resume();
    if (res.status === 200) return {};
    if (res.status !== 401) throw new Unavailable(`login attempt to ${url.href} failed with status: ${res.status} ${http.STATUS_CODES[res.status] ?? ''}`.trim());
    const ch = parseChallenge(res.headers['www-authenticate'] as string | undefined);
    if (ch?.scheme === 'bearer' && ch.params.realm) {
      const t = await this.fetchToken(ch.params.realm, ch.params.service, [], signal).catch((err: unknown) => {
        if (err instanceof Unauthorized) throw new Unauthorized(`login attempt to ${url.href} failed with status: 401 Unauthorized`);
        throw err;
      });
      return t.refresh ? { identityToken: t.refresh } : {};
    }
    const b = basicOf(this.auth);
    if (ch?.scheme === 'basic' && b) {
      res = await send('GET', url, { headers: { Authorization: `Basic ${b}` }, insecureTls: this.endpoint.insecureTls, signal });
      res.body.resume();
      if (res.status === 200) return {};
    }
    throw new Unauthorized(`login attempt to ${url.href} failed with status: 401 Unauthorized`);
  }
}
