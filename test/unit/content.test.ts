import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openContentStore, type ContentStore } from '../../src/content/index.js';
import { InvalidParameter, NotFound } from '../../src/errors.js';

function tmpStore(t: { after(fn: () => void): void }): { root: string; store: ContentStore } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-content-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  return { root, store: openContentStore(root) };
}

const sha = (b: Buffer | string): string => 'sha256:' + createHash('sha256').update(b).digest('hex');
const ingestFiles = (root: string): string[] => fs.readdirSync(path.join(root, 'ingest'));

test('put, has, info, read, readStream, list, delete', async (t) => {
  const { store } = tmpStore(t);
  const info = await store.put('hello');
  assert.deepEqual(info, { digest: sha('hello'), size: 5 });
  assert.ok(store.has(info.digest));
  assert.deepEqual(store.info(info.digest), info);
  assert.equal((await store.read(info.digest)).toString(), 'hello');
  const chunks: Buffer[] = [];
  for await (const c of store.readStream(info.digest)) chunks.push(c as Buffer);
  assert.equal(Buffer.concat(chunks).toString(), 'hello');
  const listed = [];
  for await (const b of store.list()) listed.push(b);
  assert.deepEqual(listed, [info]);
  await store.delete(info.digest);
  assert.equal(store.has(info.digest), false);
  assert.equal(store.info(info.digest), null);
  await assert.rejects(store.read(info.digest), NotFound);
  assert.throws(() => store.readStream(info.digest), NotFound);
});

test('malformed digests are rejected, never joined into a path', (t) => {
  const { store } = tmpStore(t);
  assert.throws(() => store.path('sha256:../../etc/passwd'), InvalidParameter);
  assert.throws(() => store.has('md5:abc'), InvalidParameter);
});

test('streaming writer of a large blob, verified against the expected digest', async (t) => {
  const { root, store } = tmpStore(t);
  const data = Buffer.alloc(5 * 1024 * 1024 + 17, 7);
  const w = store.writer();
  await pipeline(Readable.from([data.subarray(0, 1000), data.subarray(1000)]), w);
  const info = await w.commit(sha(data));
  assert.deepEqual(info, { digest: sha(data), size: data.length });
  assert.ok((await store.read(info.digest)).equals(data));
  assert.deepEqual(ingestFiles(root), []);
});

test('digest mismatch throws and leaves nothing behind', async (t) => {
  const { root, store } = tmpStore(t);
  const wrong = sha('something else');
  await assert.rejects(store.put('hello', wrong), (e: unknown) => {
    assert.ok(e instanceof InvalidParameter);
    assert.equal(e.message, `digest mismatch: expected ${wrong}, got ${sha('hello')}`);
    return true;
  });
  assert.equal(store.has(sha('hello')), false);
  assert.equal(store.has(wrong), false);
  assert.deepEqual(ingestFiles(root), []);
});

test('abort discards the partial blob', async (t) => {
  const { root, store } = tmpStore(t);
  const w = store.writer();
  await new Promise<void>((res) => w.write('partial', () => res()));
  assert.equal(ingestFiles(root).length, 1);
  await w.abort();
  assert.deepEqual(ingestFiles(root), []);
  let n = 0;
  for await (const _ of store.list()) n++;
  assert.equal(n, 0);
});

test('concurrent writers, same and different content', async (t) => {
  const { root, store } = tmpStore(t);
  const payloads = Array.from({ length: 20 }, (_, i) => `blob-${i % 5}-`.repeat(10000));
  const infos = await Promise.all(payloads.map(async (p) => {
    const w = store.writer();
    for (let i = 0; i < p.length; i += 4096) {
      if (!w.write(p.slice(i, i + 4096))) await new Promise((r) => w.once('drain', r));
    }
    return w.commit();
  }));
  infos.forEach((info, i) => assert.equal(info.digest, sha(payloads[i]!)));
  const listed = [];
  for await (const b of store.list()) listed.push(b.digest);
  assert.equal(listed.length, 5);
  for (const info of infos) assert.equal((await store.read(info.digest)).toString(), payloads[infos.indexOf(info)]);
  assert.deepEqual(ingestFiles(root), []);
});

test('recover drops ingest files left by a crash; committed blobs survive', async (t) => {
  const { root } = tmpStore(t);
  const store = openContentStore(root);
  const kept = await store.put('kept');
  // A writer that never commits stands for a process killed mid-ingest.
  const w = store.writer();
  await new Promise<void>((res) => w.write('half a blob', () => res()));
  assert.equal(ingestFiles(root).length, 1);
  w.destroy();

  const reopened = openContentStore(root);
  await reopened.recover();
  assert.deepEqual(ingestFiles(root), []);
  assert.equal((await reopened.read(kept.digest)).toString(), 'kept');
});
