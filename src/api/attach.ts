/**
 * Attach to a container's streams, two ways: POST /containers/{id}/attach takes over the HTTP
 * connection (Docker's multiplexed frames unless the container has a TTY), GET
 * /containers/{id}/attach/ws upgrades it to a WebSocket (one binary message per chunk of output,
 * unframed, as dockerd sends; the client's messages go to stdin). Both: `logs` replays the output so
 * far, `stream` follows it until the current (or next) run ends, `stdin` feeds a container with
 * OpenStdin once it runs.
 */
import type { Duplex } from 'node:stream';
import { InvalidParameter } from '../errors.js';
import type { ContainerService } from '../container/service.js';
import type { Container } from '../container/types.js';
import type { Context, Router } from './server.js';
import { frame, writeChunk, MULTIPLEXED, RAW } from './streams.js';

interface AttachRequest { stdin: boolean; stdout: boolean; stderr: boolean; logs: boolean; stream: boolean }

function flag(q: URLSearchParams, key: string): boolean {
  const v = q.get(key);
  return v !== null && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

function attachRequest(q: URLSearchParams): AttachRequest {
  if (q.get('detachKeys')) throw new InvalidParameter('attach option detachKeys is not supported by berth yet');
  return { stdin: flag(q, 'stdin'), stdout: flag(q, 'stdout'), stderr: flag(q, 'stderr'), logs: flag(q, 'logs'), stream: flag(q, 'stream') };
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
  if (r.stdin && c.config.OpenStdin) void pumpStdin(svc, c, socket, abort.signal);
  const output = r.stream
    ? svc.streams.attachOutput(c, abort.signal, { fromStart: r.logs })
    : r.logs ? svc.streams.logs(c, { follow: false, signal: abort.signal }) : [];
  for await (const entry of output) {
    if ((entry.stream === 'stdout' && !r.stdout) || (entry.stream === 'stderr' && !r.stderr)) continue;
    if (!(await writeChunk(socket, framed ? frame(entry.stream, entry.data) : entry.data))) break;
  }
  socket.end();
}

/** Client bytes → container stdin, once the container runs. EOF from the client closes stdin (StdinOnce semantics). */
async function pumpStdin(svc: ContainerService, c: Container, socket: NodeJS.ReadableStream, signal: AbortSignal): Promise<void> {
  const pending: Buffer[] = [];
  let ended = false;
  let sink: NodeJS.WritableStream | null = null;
  socket.on('data', (chunk: Buffer) => (sink ? sink.write(chunk) : pending.push(chunk)));
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
