/**
 * The HTTP side of the Docker Engine API: version prefixes, routing, JSON bodies,
 * Docker's error shape, hijacked connections and WebSockets (attach). Handlers stay thin:
 * parse, call a service, encode.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { InvalidParameter, NotFound, errorMessage } from '../errors.js';
import { errorBody, statusOf } from './errors.js';
import { log } from '../log.js';

export const API_VERSION = '1.50';
export const MIN_API_VERSION = '1.24';

export interface Context {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  apiVersion: string;
  /** The parsed JSON body ({} when empty); InvalidParameter when it is not JSON. */
  json<T = Record<string, unknown>>(): Promise<T>;
  /** Take over the connection (101 when the client asked for an upgrade); the caller owns the socket. */
  hijack(contentType: string): Duplex;
  /** Complete a WebSocket upgrade: binary messages as a stream (each write one message). */
  websocket(): Promise<Duplex>;
}

export type Handler = (ctx: Context) => Promise<unknown> | unknown;
export interface Route { method: string; pattern: RegExp; keys: string[]; handler: Handler }

/** A route table; paths use {name} placeholders, `{name:.*}` for names with slashes (images). */
export class Router {
  readonly routes: Route[] = [];
  add(method: string, path: string, handler: Handler): this {
    const keys: string[] = [];
    const source = path.replace(/\{(\w+)(?::([^}]+))?\}/g, (_m, key: string, re?: string) => {
      keys.push(key);
      return `(${re ?? '[^/]+'})`;
    });
    this.routes.push({ method, pattern: new RegExp(`^${source}$`), keys, handler });
    return this;
  }
  get(p: string, h: Handler) { return this.add('GET', p, h); }
  post(p: string, h: Handler) { return this.add('POST', p, h); }
  delete(p: string, h: Handler) { return this.add('DELETE', p, h); }
  put(p: string, h: Handler) { return this.add('PUT', p, h); }
  head(p: string, h: Handler) { return this.add('HEAD', p, h); }

  match(method: string, path: string): { route: Route; params: Record<string, string> } | null {
    let pathMatched = false;
    for (const route of this.routes) {
      const m = route.pattern.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== method && !(method === 'HEAD' && route.method === 'GET')) continue;
      const params: Record<string, string> = {};
      route.keys.forEach((k, i) => (params[k] = decodeURIComponent(m[i + 1])));
      return { route, params };
    }
    if (pathMatched) return null;
    return null;
  }
}

function compareVersions(a: string, b: string): number {
  const [a1, a2] = a.split('.').map(Number);
  const [b1, b2] = b.split('.').map(Number);
  return a1 - b1 || a2 - b2;
}

export function sendError(res: http.ServerResponse, err: unknown): void {
  const status = statusOf(err);
  if (status >= 500) log.error('request failed', { error: errorMessage(err) });
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(err);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

export function sendJSON(res: http.ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value) + '\n';
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

export function createApiServer(router: Router, serverHeader: string): http.Server {
  const server = http.createServer({ keepAliveTimeout: 60_000 });
  const websockets = new WebSocketServer({ noServer: true });

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse, upgrade?: { socket: Duplex; head: Buffer }) => {
    const url = new URL(req.url ?? '/', 'http://berth');
    let path = url.pathname;
    let apiVersion = API_VERSION;
    const vm = /^\/v(\d+\.\d+)(\/.*)$/.exec(path);
    res.setHeader('Api-Version', API_VERSION);
    res.setHeader('Server', serverHeader);
    res.setHeader('Docker-Experimental', 'false');
    res.setHeader('Ostype', 'linux');
    try {
      if (vm) {
        apiVersion = vm[1];
        path = vm[2];
        if (compareVersions(apiVersion, API_VERSION) > 0) {
          throw new InvalidParameter(`client version ${apiVersion} is too new. Maximum supported API version is ${API_VERSION}`);
        }
        if (compareVersions(apiVersion, MIN_API_VERSION) < 0) {
          throw new InvalidParameter(`client version ${apiVersion} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
        }
      }
      const found = router.match(req.method ?? 'GET', path);
      if (!found) throw new NotFound(`page not found`);
      let hijacked = false;
      const ctx: Context = {
        req,
        res,
        params: found.params,
        query: url.searchParams,
        apiVersion,
        json: async <T>() => {
          const chunks: Buffer[] = [];
          for await (const c of req) chunks.push(c as Buffer);
          const text = Buffer.concat(chunks).toString('utf8').trim();
          if (!text) return {} as T;
          try {
            return JSON.parse(text) as T;
          } catch (err) {
            throw new InvalidParameter(`invalid JSON: ${errorMessage(err)}`);
          }
        },
        hijack: (contentType: string) => {
          hijacked = true;
          const socket = upgrade?.socket ?? req.socket;
          if (upgrade) {
            socket.write(`HTTP/1.1 101 UPGRADED\r\nContent-Type: ${contentType}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
            if (upgrade.head.length) socket.unshift(upgrade.head);
          } else {
            // Old clients without Upgrade: answer 200 and keep the raw socket.
            res.detachSocket(req.socket);
            socket.write(`HTTP/1.1 200 OK\r\nContent-Type: ${contentType}\r\n\r\n`);
          }
          return socket;
        },
        websocket: () => {
          if (!upgrade || req.headers.upgrade?.toLowerCase() !== 'websocket') throw new InvalidParameter('this endpoint needs a WebSocket upgrade');
          hijacked = true;
          const { socket, head } = upgrade;
          return new Promise((resolve) => websockets.handleUpgrade(req, socket, head, (ws) => resolve(createWebSocketStream(ws))));
        },
      };
      const result = await found.route.handler(ctx);
      if (hijacked || res.writableEnded || res.headersSent) return;
      if (result === undefined) {
        res.writeHead(204);
        res.end();
      } else if (typeof result === 'string') {
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(result) });
        res.end(req.method === 'HEAD' ? undefined : result);
      } else {
        sendJSON(res, req.method === 'POST' && (result as { Id?: unknown }).Id !== undefined && /\/create$/.test(path) ? 201 : 200, result);
      }
    } catch (err) {
      if (upgrade) {
        const status = statusOf(err);
        const body = errorBody(err);
        upgrade.socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
        return;
      }
      sendError(res, err);
    }
  };

  server.on('request', (req, res) => void handle(req, res));
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    // A response object that is never sent: upgraded handlers hijack or throw.
    const res = new http.ServerResponse(req);
    void handle(req, res, { socket, head });
  });
  return server;
}
