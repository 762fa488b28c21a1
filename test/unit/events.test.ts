import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import BetterSqlite3 from 'better-sqlite3';
import tarStream from 'tar-stream';
import { EventBus, type BerthEvent } from '../../src/events/index.js';
import { encodeEvent, eventMatcher, eventRoutes, parseEventTime } from '../../src/api/events.js';
import { parseFilters } from '../../src/api/filters.js';
import { Router, createApiServer } from '../../src/api/server.js';
import { InvalidParameter } from '../../src/errors.js';
import { openContentStore } from '../../src/content/index.js';
import { importImage, openImageStore, publishImageEvents } from '../../src/image/index.js';
import { openSnapshotter } from '../../src/storage/index.js';

const T = { timeout: 20_000 };

function ev(type: BerthEvent['type'], action: string, id: string, attributes: Record<string, string> = {}): BerthEvent {
  return { type, action, id, attributes, timeNano: 1_700_000_000_123_456_789n };
}

test('the bus stamps strictly increasing times, keeps a bounded history and counts its listeners', T, () => {
  const bus = new EventBus(3);
  const seen: string[] = [];
  const off = bus.subscribe((e) => seen.push(e.action));
  assert.equal(bus.listenerCount, 1);
  const a = bus.publish('container', 'create', 'c1');
  const b = bus.publish('container', 'start', 'c1');
  assert.ok(b.timeNano > a.timeNano);
  bus.publish('container', 'die', 'c1');
  bus.publish('container', 'destroy', 'c1');
  assert.deepEqual(seen, ['create', 'start', 'die', 'destroy']);
  assert.deepEqual(bus.history().map((e) => e.action), ['start', 'die', 'destroy'], 'only the last 3 are kept');
  assert.deepEqual(bus.history(b.timeNano + 1n).map((e) => e.action), ['die', 'destroy']);
  off();
  assert.equal(bus.listenerCount, 0);
});

test('timestamps: unix seconds with optional fraction, RFC 3339, and dockerd\'s error for anything else', T, () => {
  assert.equal(parseEventTime(null), undefined);
  assert.equal(parseEventTime(''), undefined);
  assert.equal(parseEventTime('1700000000'), 1_700_000_000_000_000_000n);
  assert.equal(parseEventTime('1700000000.5'), 1_700_000_000_500_000_000n);
  assert.equal(parseEventTime('1700000000.000000001'), 1_700_000_000_000_000_001n);
  assert.equal(parseEventTime('2023-11-14T22:13:20Z'), 1_700_000_000_000_000_000n);
  assert.equal(parseEventTime('2023-11-14T23:13:20.25+01:00'), 1_700_000_000_250_000_000n);
  assert.throws(() => parseEventTime('yesterday'), (e: unknown) => e instanceof InvalidParameter && e.message === 'strconv.ParseInt: parsing "yesterday": invalid syntax');
  assert.throws(() => parseEventTime('17.x'), /parsing "x": invalid syntax/);
});

test('the wire JSON is dockerd\'s: legacy fields for containers and images, scope, time and exact timeNano', T, () => {
  const c = JSON.parse(encodeEvent(ev('container', 'die', 'abc', { image: 'busybox', name: 'web', exitCode: '0' }))) as Record<string, unknown>;
  assert.deepEqual(Object.keys(c), ['status', 'id', 'from', 'Type', 'Action', 'Actor', 'scope', 'time', 'timeNano']);
  assert.deepEqual(c, {
    status: 'die', id: 'abc', from: 'busybox', Type: 'container', Action: 'die',
    Actor: { ID: 'abc', Attributes: { image: 'busybox', name: 'web', exitCode: '0' } },
    scope: 'local', time: 1_700_000_000, timeNano: c.timeNano,
  });
  const line = encodeEvent(ev('image', 'tag', 'sha256:1', { name: 'busybox:x' }));
  assert.ok(line.endsWith('"timeNano":1700000000123456789}\n'), 'nanoseconds are not rounded through a double');
  assert.deepEqual(Object.keys(JSON.parse(line) as object), ['status', 'id', 'Type', 'Action', 'Actor', 'scope', 'time', 'timeNano']);
  assert.deepEqual(Object.keys(JSON.parse(encodeEvent(ev('network', 'connect', 'n1'))) as object), ['Type', 'Action', 'Actor', 'scope', 'time', 'timeNano']);
});

test('filters: container by ID prefix or name, event, type, image with or without tag, label, scope', T, () => {
  const m = (f: Record<string, string[]>) => eventMatcher(parseFilters(JSON.stringify(f), ['container', 'event', 'type', 'image', 'label', 'scope', 'network', 'volume', 'daemon']));
  const die = ev('container', 'die', 'abcdef', { name: 'web', image: 'busybox:latest', tier: 'front' });
  const tag = ev('image', 'tag', 'sha256:99', { name: 'busybox:mine' });
  const exec = ev('container', 'exec_start: sh -c true', 'abcdef', { name: 'web' });
  assert.ok(m({})(die));
  assert.ok(m({ container: ['web'] })(die));
  assert.ok(m({ container: ['abc'] })(die));
  assert.ok(!m({ container: ['other'] })(die));
  assert.ok(!m({ container: ['web'] })(tag), 'a container filter leaves out image events');
  assert.ok(m({ event: ['die', 'start'] })(die));
  assert.ok(!m({ event: ['start'] })(die));
  assert.ok(m({ event: ['exec_start'] })(exec));
  assert.ok(m({ type: ['image'] })(tag) && !m({ type: ['image'] })(die));
  assert.ok(m({ image: ['busybox'] })(die) && m({ image: ['busybox:latest'] })(die));
  assert.ok(m({ image: ['busybox'] })(tag) && !m({ image: ['alpine'] })(tag));
  assert.ok(m({ image: ['sha256:99'] })(tag) && !m({ image: ['sha256'] })(tag), 'an image ID is matched whole');
  assert.ok(m({ label: ['tier'] })(die) && m({ label: ['tier=front'] })(die));
  assert.ok(!m({ label: ['tier=back'] })(die) && !m({ label: ['tier', 'zone'] })(die));
  assert.ok(m({ scope: ['local'] })(die) && !m({ scope: ['swarm'] })(die));
  assert.ok(!m({ network: ['n1'] })(die));
  assert.ok(m({ type: ['container'], event: ['die'], container: ['web'] })(die));
});

async function serve(bus: EventBus, t: { after(fn: () => void): void }) {
  const router = new Router();
  eventRoutes(router, bus);
  const server = createApiServer(router, 'berth/test');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-events-'));
  const socketPath = path.join(dir, 's.sock');
  await new Promise<void>((r) => server.listen(socketPath, r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  /** GET /events?query; resolves with the status and the lines once the response ends, or at `stopAfter` lines. */
  return (query: string, stopAfter?: number) => new Promise<{ status: number; lines: string[]; body: string }>((resolve, reject) => {
    const req = http.get({ socketPath, path: `/events?${query}` }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (s: string) => {
        body += s;
        if (stopAfter !== undefined && body.split('\n').length - 1 >= stopAfter) {
          req.destroy();
          resolve({ status: res.statusCode!, lines: body.trim().split('\n'), body });
        }
      });
      res.on('end', () => resolve({ status: res.statusCode!, lines: body.trim().split('\n').filter(Boolean), body }));
    });
    req.on('error', reject);
  });
}

const sec = (ns: bigint) => `${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`;

test('GET /events: since..until replays the kept history and ends; since alone goes on live; bad input is a 400', T, async (t) => {
  const bus = new EventBus();
  const get = await serve(bus, t);
  const before = bus.publish('container', 'create', 'old', { name: 'old' });
  const a = bus.publish('container', 'create', 'c1', { name: 'one', image: 'busybox' });
  bus.publish('image', 'tag', 'sha256:1', { name: 'busybox:x' });
  const b = bus.publish('container', 'start', 'c1', { name: 'one', image: 'busybox' });
  bus.publish('container', 'die', 'c1', { name: 'one', image: 'busybox' });

  const past = await get(`since=${sec(a.timeNano)}&until=${sec(b.timeNano)}`);
  assert.equal(past.status, 200);
  assert.deepEqual(past.lines.map((l) => (JSON.parse(l) as { Action: string }).Action), ['create', 'tag', 'start']);
  assert.ok(!past.body.includes('"old"'), `${before.id} is before since`);

  const filtered = await get(`since=${sec(a.timeNano)}&until=${sec(b.timeNano)}&filters=${encodeURIComponent('{"type":["container"]}')}`);
  assert.deepEqual(filtered.lines.map((l) => (JSON.parse(l) as { Action: string }).Action), ['create', 'start']);

  // since without until: the replay, then live events on the same stream.
  const live = get(`since=${sec(b.timeNano)}`, 3);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(bus.listenerCount, 1);
  bus.publish('container', 'destroy', 'c1', { name: 'one' });
  assert.deepEqual((await live).lines.map((l) => (JSON.parse(l) as { Action: string }).Action), ['start', 'die', 'destroy']);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(bus.listenerCount, 0, 'a closed client unsubscribes');

  // until alone replays all that is kept up to then, like dockerd.
  const upTo = await get(`until=${sec(a.timeNano)}`);
  assert.deepEqual(upTo.lines.map((l) => (JSON.parse(l) as { id: string }).id), ['old', 'c1']);

  // until a little ahead: the stream ends by itself.
  const soon = BigInt(Date.now() + 300) * 1_000_000n;
  const started = Date.now();
  const short = await get(`until=${sec(soon)}`);
  assert.equal(short.status, 200);
  assert.ok(Date.now() - started >= 250, 'ended at until, not before');

  const bad = await get('since=yesterday');
  assert.equal(bad.status, 400);
  assert.deepEqual(JSON.parse(bad.body), { message: 'strconv.ParseInt: parsing "yesterday": invalid syntax' });
  const badKey = await get(`filters=${encodeURIComponent('{"colour":["red"]}')}`);
  assert.equal(badKey.status, 400);
  assert.deepEqual(JSON.parse(badKey.body), { message: "invalid filter 'colour'" });
  const reversed = await get('since=20&until=10');
  assert.equal(reversed.status, 400);
  assert.match(reversed.body, /`since` time \(20\) cannot be after `until` time \(10\)/);
});

test('image events: import (with its tag), tag, and rmi\'s untags and delete, named as dockerd names them', T, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-events-img-'));
  const db = new BetterSqlite3(path.join(dir, 'berth.db'));
  t.after(() => {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const bus = new EventBus();
  const content = openContentStore(path.join(dir, 'content'));
  const layers = openSnapshotter('overlay2', dir, db, {});
  const store = publishImageEvents(openImageStore(db, content, layers), bus);
  const pack = tarStream.pack();
  pack.entry({ name: 'hello' }, 'hi');
  pack.finalize();

  const img = await importImage(store, content, layers, pack as unknown as Readable, { ref: 'mine:1', changes: ['LABEL tier=front'], events: bus });
  store.tag(img.id, 'mine:2');
  assert.equal(store.list().length, 1, 'the wrapped store still answers every other verb');
  await store.remove(img.id, { force: true, noprune: false }, () => []);

  const got = bus.history().map((e) => [e.type, e.action, e.id, e.attributes.name]);
  assert.deepEqual(got, [
    ['image', 'tag', img.id, 'mine:1'],
    ['image', 'import', img.id, img.id],
    ['image', 'tag', img.id, 'mine:2'],
    ['image', 'untag', img.id, img.id],
    ['image', 'untag', img.id, img.id],
    ['image', 'delete', img.id, img.id],
  ]);
  assert.equal(bus.history()[0]!.attributes.tier, 'front', 'the image\'s labels ride along');
});
