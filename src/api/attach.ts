/**
 * Attach to a container's streams, two ways: POST /containers/{id}/attach takes over the HTTP
 * connection (Docker's multiplexed frames unless the container has a TTY), GET
 * /containers/{id}/attach/ws upgrades it to a WebSocket (one binary message per chunk of output,
 * unframed, as dockerd sends; the client's messages go to stdin). Both: `logs` replays the output so
 * far, `stream` follows it until the current (or next) run ends, `stdin` feeds a container with
 * OpenStdin once it runs. On a TTY, the detach keys (ctrl-p,ctrl-q unless `detachKeys` says
 * otherwise) end the attach and leave the container running, as dockerd does.
 */
import type { Duplex } from 'node:stream';
import { InvalidParameter } from '../errors.js';
import type { ContainerService } from '../container/service.js';
import type { Container } from '../container/types.js';
import type { Context, Router } from './server.js';
import { frame, writeChunk, MULTIPLEXED, RAW } from './streams.js';

interface AttachRequest { stdin: boolean; stdout: boolean; stderr: boolean; logs: boolean; stream: boolean; detachKeys: Buffer }

const DEFAULT_DETACH_KEYS = Buffer.from([0x10, 0x11]);

/** docker's detach keys: "ctrl-p,ctrl-q", "ctrl-@", "a,b" → the bytes a terminal sends for them. */
export function parseDetachKeys(spec: string): Buffer {
  const bytes: number[] = [];
  for (const key of spec.split(',')) {
    const ctrl = /^ctrl-(.)$/.exec(key);
    if (key.length === 1) bytes.push(key.charCodeAt(0));
    else if (ctrl && /[a-z]/.test(ctrl[1]!)) bytes.push(ctrl[1]!.charCodeAt(0) - 0x60);
    else if (ctrl && '@[\\]^_'.includes(ctrl[1]!)) bytes.push('@[\\]^_'.indexOf(ctrl[1]!) === 0 ? 0 : 26 + '@[\\]^_'.indexOf(ctrl[1]!));
    else throw new InvalidParameter(`Invalid detach keys (${spec}) provided`);
  }
  return Buffer.from(bytes);
}

function flag(q: URLSearchParams, key: string): boolean {
  const v = q.get(key);
  return v !== null && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

function attachRequest(q: URLSearchParams): AttachRequest {
  const keys = q.get('detachKeys');
  return {
    stdin: flag(q, 'stdin'), stdout: flag(q, 'stdout'), stderr: flag(q, 'stderr'), logs: flag(q, 'logs'), stream: flag(q, 'stream'),
    detachKeys: keys ? parseDetachKeys(keys) : DEFAULT_DETACH_KEYS,
  };
}

export function attachRoutes(router: Router, svc: ContainerService): void {
  router.post('/containers/{id}/attach', async (ctx) => {
    const c = svc.get(ctx.params.id);
    const r = attachRequest(ctx.query);
    await serve(svc, c, r, ctx.hijack(c.config.Tty ? RAW : MULTIPLEXED), !c.config.Tty);
  });
  router.get('/containers/{id}/attach/ws', async (ctx: Context) => {
    const c = svc.get(ctx.params.id);
    const r = attachRequest(ctx.query);
    await serve(svc, c, r, await ctx.websocket(), false);
  });
}

async function serve(svc: ContainerService, c: Container, r: AttachRequest, socket: Duplex, framed: boolean): Promise<void> {
  const abort = new AbortController();
  socket.on('close', () => abort.abort());
  socket.on('error', () => abort.abort());
  svc.attached(c);
  const detach = c.config.Tty ? r.detachKeys : null;
  if (r.stdin && c.config.OpenStdin) void pumpStdin(svc, c, socket, abort.signal, detach, () => { abort.abort(); socket.end(); });
  const output = r.stream
    ? svc.streams.attachOutput(c, abort.signal, { fromStart: r.logs })
    : r.logs ? svc.streams.logs(c, { follow: false, signal: abort.signal }) : [];
  for await (const entry of output) {
    if ((entry.stream === 'stdout' && !r.stdout) || (entry.stream === 'stderr' && !r.stderr)) continue;
    if (!(await writeChunk(socket, framed ? frame(entry.stream, entry.data) : entry.data))) break;
  }
  socket.end();
}

/**
 * Client bytes → container stdin, once the container runs. EOF from the client closes stdin
 * (StdinOnce semantics). With detach keys, bytes that could begin the sequence are held back until
 * it either completes (onDetach; the held bytes never reach the container) or breaks (they go on).
 */
async function pumpStdin(svc: ContainerService, c: Container, socket: NodeJS.ReadableStream, signal: AbortSignal,
  detachKeys: Buffer | null, onDetach: () => void): Promise<void> {
  const pending: Buffer[] = [];
  let ended = false;
  let sink: NodeJS.WritableStream | null = null;
  const forward = (chunk: Buffer) => (sink ? sink.write(chunk) : pending.push(chunk));
  let matched = 0;
  socket.on('data', (chunk: Buffer) => {
    if (!detachKeys) return forward(chunk);
    let from = 0;
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] === detachKeys[matched]) {
        if (matched === 0 && i > from) forward(chunk.subarray(from, i));
        matched++;
        if (matched === detachKeys.length) return onDetach();
        from = i + 1;
      } else if (matched > 0) {
        forward(detachKeys.subarray(0, matched));
        matched = 0;
        from = i;
        i--;
      }
    }
    if (matched === 0 && from < chunk.length) forward(chunk.subarray(from));
  });
  socket.on('end', () => {
    ended = true;
    if (sink && c.config.StdinOnce) sink.end();
  });
  await svc.streams.running(c, signal);
  if (signal.aborted) return;
  try {
    sink = await svc.streams.stdin(c);
  } catch {
    return;
  }
  // A client still typing after the container exited must not take the daemon down with EPIPE.
  sink.on('error', () => {});
  for (const chunk of pending) sink.write(chunk);
  if (ended && c.config.StdinOnce) sink.end();
}
