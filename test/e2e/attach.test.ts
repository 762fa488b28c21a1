/**
 * Attach, both transports: GET /containers/{id}/attach/ws (a WebSocket, as Portainer and other web
 * consoles use it) carries stdin in and unframed output out; POST /containers/{id}/attach honours
 * logs (the output so far) and stream (what comes next); options berth lacks are refused by name.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import WebSocket from 'ws';
import { startDaemon, loadTestImages, type Daemon } from '../harness.js';

let d: Daemon;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
});

after(async () => {
  await d?.stop();
});

async function create(cmd: string[], extra: Record<string, unknown> = {}): Promise<string> {
  const r = await d.api('POST', '/containers/create', { Image: 'busybox', Cmd: cmd, ...extra });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.Id as string;
}

/** Raw bytes of an attach answered on the plain connection (no Upgrade header): until the daemon ends it. */
function attachBytes(id: string, query: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: d.socket, method: 'POST', path: `/containers/${id}/attach?${query}`, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('attach timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Docker's multiplexed frames → [stream, text] pairs. */
function demux(buf: Buffer): [number, string][] {
  const out: [number, string][] = [];
  for (let i = 0; i + 8 <= buf.length;) {
    const n = buf.readUInt32BE(i + 4);
    out.push([buf[i]!, buf.subarray(i + 8, i + 8 + n).toString()]);
    i += 8 + n;
  }
  return out;
}

test('attach/ws: stdin goes in, stdout and stderr come out unframed, the socket closes when the container exits', { timeout: 60_000 }, async () => {
  const id = await create(['sh', '-c', 'read line; echo "got:$line"; echo to-stderr >&2'], { OpenStdin: true, AttachStdin: true, AttachStdout: true, AttachStderr: true });
  const ws = new WebSocket(`ws+unix://${d.socket}:/containers/${id}/attach/ws?stream=1&stdin=1&stdout=1&stderr=1`);
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  const received: string[] = [];
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  ws.on('message', (data: Buffer) => received.push(data.toString()));
  assert.equal((await d.api('POST', `/containers/${id}/start`)).status, 204);
  ws.send(Buffer.from('hello over a websocket\n'));
  await closed;
  assert.equal(received.join(''), 'got:hello over a websocket\nto-stderr\n');
  assert.equal((await d.api('POST', `/containers/${id}/wait`)).body.StatusCode, 0);

  const plain = await d.api('GET', `/containers/${id}/attach/ws?stream=1&stdout=1`);
  assert.equal(plain.status, 400, 'a plain GET is not an upgrade');
  assert.match(plain.body.message, /WebSocket upgrade/);
  const missing = new WebSocket(`ws+unix://${d.socket}:/containers/nosuch/attach/ws?stream=1&stdout=1`);
  const status = await new Promise<number>((resolve) => missing.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
  assert.equal(status, 404);
  await d.api('DELETE', `/containers/${id}?force=1`);
});

test('attach logs=1 replays what the container wrote; stream=1 adds what comes next; detachKeys is refused by name', { timeout: 60_000 }, async () => {
  const id = await create(['sh', '-c', 'echo first; echo oops >&2; sleep 1; echo second']);
  assert.equal((await d.api('POST', `/containers/${id}/start`)).status, 204);
  await new Promise((r) => setTimeout(r, 400));

  // Attached while it runs: logs=1 with stream=1 gets the past and the rest, in order, framed.
  const live = await attachBytes(id, 'logs=1&stream=1&stdout=1&stderr=1');
  assert.equal(live.status, 200);
  assert.deepEqual(demux(live.body), [[1, 'first\n'], [2, 'oops\n'], [1, 'second\n']]);

  // After the exit: logs alone replays the whole output and ends at once; stdout only filters.
  const past = await attachBytes(id, 'logs=1&stdout=1');
  assert.deepEqual(demux(past.body), [[1, 'first\n'], [1, 'second\n']]);
  const nothing = await attachBytes(id, 'stdout=1');
  assert.deepEqual(demux(nothing.body), [], 'neither logs nor stream: nothing to send');

  const keys = await d.api('POST', `/containers/${id}/attach?stream=1&stdout=1&detachKeys=ctrl-xx`);
  assert.equal(keys.status, 400);
  assert.equal(keys.body.message, 'Invalid detach keys (ctrl-xx) provided');
  await d.api('DELETE', `/containers/${id}?force=1`);
});

/** A hijacked attach (Upgrade: tcp): resolves with everything the daemon sent once it closes the connection. */
function hijack(id: string, query: string, send: (s: net.Socket) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(d.socket);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`attach did not end: ${Buffer.concat(chunks).toString()}`)); }, 20_000);
    s.on('data', (b: Buffer) => chunks.push(b));
    s.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString()); });
    s.on('error', reject);
    s.write(`POST /containers/${id}/attach?${query} HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
    send(s);
  });
}

test('on a TTY the detach keys end the attach and leave the container running; detachKeys picks others', { timeout: 60_000 }, async () => {
  const id = await create(['sh'], { Tty: true, OpenStdin: true, AttachStdin: true, AttachStdout: true });
  assert.equal((await d.api('POST', `/containers/${id}/start`)).status, 204);
  const typed = (s: net.Socket, keys: number[]) => {
    s.write('echo one-$((40+2))\r');
    // A lone ctrl-p that the next byte breaks reaches the shell (and is echoed as ^P); then the sequence.
    setTimeout(() => s.write(Buffer.from([0x10, 0x61, 0x0d])), 300);
    setTimeout(() => s.write(Buffer.from(keys)), 600);
  };
  const out = await hijack(id, 'stream=1&stdin=1&stdout=1', (s) => typed(s, [0x10, 0x11]));
  assert.match(out, /one-42/);
  assert.equal((await d.api('GET', `/containers/${id}/json`)).body.State.Running, true, 'still running after the detach');

  const custom = await hijack(id, 'stream=1&stdin=1&stdout=1&detachKeys=ctrl-x,y', (s) => typed(s, [0x18, 0x79]));
  assert.match(custom, /one-42/);
  assert.equal((await d.api('GET', `/containers/${id}/json`)).body.State.Running, true);
  await d.api('DELETE', `/containers/${id}?force=1`);
});
