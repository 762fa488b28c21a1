/**
 * Exec routes: create, start (hijacked like attach, or detached), inspect, resize.
 * start streams the process's output until it exits, then ends the connection
 * only after the exit code is recorded: the docker CLI inspects right away.
 */
import type { Duplex, Readable } from 'node:stream';
import { InvalidParameter, errorMessage } from '../errors.js';
import type { ExecService } from '../container/exec.js';
import { type Context, type Router, sendJSON } from './server.js';
import { frame, writeChunk, MULTIPLEXED, RAW } from './streams.js';

function intParam(q: URLSearchParams, key: string): number | undefined {
  const v = q.get(key);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidParameter(`invalid value for ${key}: ${v}`);
  return n;
}

function consoleSize(v: unknown): [number, number] | null {
  if (Array.isArray(v) && v.length === 2 && v.every((n) => typeof n === 'number' && n >= 0)) return [v[0] as number, v[1] as number];
  return null;
}

export function execRoutes(router: Router, execs: ExecService): void {
  router.post('/containers/{id}/exec', async (ctx) => {
    const body = await ctx.json<unknown>();
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidParameter('invalid JSON: exec config must be an object');
    sendJSON(ctx.res, 201, execs.create(ctx.params.id, body as Record<string, unknown>));
  });

  router.post('/exec/{id}/start', (ctx) => start(ctx, execs));

  router.get('/exec/{id}/json', (ctx) => execs.inspect(ctx.params.id));

  router.post('/exec/{id}/resize', (ctx) => {
    execs.resize(ctx.params.id, intParam(ctx.query, 'h') ?? 0, intParam(ctx.query, 'w') ?? 0);
    return '';
  });
}

/**
 * The body of an upgraded request is not parsed by node's HTTP server: it comes first on the hijacked
 * socket. Read exactly Content-Length bytes of it and leave the rest (the client's stdin) in place.
 */
function readPrefix(socket: Duplex, length: number): Promise<Buffer> {
  if (!(length > 0)) return Promise.resolve(Buffer.alloc(0));
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const done = () => {
      socket.off('data', onData);
      socket.off('end', done);
      socket.pause();
      const all = Buffer.concat(chunks);
      if (all.length > length) socket.unshift(all.subarray(length));
      resolve(all.subarray(0, length));
    };
    const onData = (c: Buffer) => {
      chunks.push(c);
      have += c.length;
      if (have >= length) done();
    };
    socket.on('data', onData);
    socket.once('end', done);
  });
}

interface StartBody { Detach?: boolean; Tty?: boolean; ConsoleSize?: unknown }

function parseStartBody(raw: Buffer): StartBody {
  const text = raw.toString('utf8').trim();
  if (!text) return {};
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null ? (v as StartBody) : {};
  } catch {
    return {};
  }
}

async function start(ctx: Context, execs: ExecService): Promise<void> {
  const id = ctx.params.id;
  const upgraded = ctx.req.headers.upgrade !== undefined;
  // `exec -d` is a plain POST; an attached start asks for an upgrade, its body arrives after the 101.
  let body: StartBody = upgraded ? {} : await ctx.json<StartBody>();
  const s = execs.startable(id);
  if (body.Detach) {
    await execs.start(id, { attach: false, consoleSize: consoleSize(body.ConsoleSize) });
    ctx.res.writeHead(200, { 'Content-Length': 0 });
    ctx.res.end();
    return;
  }
  // The CLI sends the Tty it gave at create; the framing is decided before the body can be read.
  const tty = upgraded ? s.config.Tty : (body.Tty ?? s.config.Tty);
  const socket = ctx.hijack(tty ? RAW : MULTIPLEXED);
  socket.on('error', () => undefined);
  if (upgraded) body = parseStartBody(await readPrefix(socket, Number(ctx.req.headers['content-length'] ?? 0)));
  const out = (stream: 'stdout' | 'stderr', data: Buffer) => writeChunk(socket, tty ? data : frame(stream, data));

  let proc;
  try {
    proc = await execs.start(id, { attach: !body.Detach, consoleSize: consoleSize(body.ConsoleSize) });
  } catch (err) {
    // dockerd writes the start failure into the stream; the CLI then reads ExitCode from inspect.
    await out('stdout', Buffer.from(`${errorMessage(err)}\r\n`));
    socket.end();
    return;
  }
  const streams = proc.streams;
  if (!streams) {
    socket.end();
    return;
  }
  let clientGone = false;
  socket.on('close', () => {
    clientGone = true;
    // The process keeps running (as with docker); only our connection to its stdio goes.
    streams.close();
  });
  // The process may exit (and conmon close its end) while the client still sends input.
  streams.stdin.on('error', () => socket.unpipe(streams.stdin));
  if (s.config.AttachStdin) socket.pipe(streams.stdin);
  else socket.resume();
  const pump = async (r: Readable, name: 'stdout' | 'stderr', wanted: boolean) => {
    for await (const chunk of r) {
      if (!wanted || clientGone) continue;
      if (!(await out(name, chunk as Buffer))) clientGone = true;
    }
  };
  await Promise.all([pump(streams.stdout, 'stdout', s.config.AttachStdout), pump(streams.stderr, 'stderr', s.config.AttachStderr)]);
  await s.done;
  socket.end();
}
