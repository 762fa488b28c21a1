/**
 * The collection berthd's quiet trim asks V8 for (src/daemon/memory.ts): this node binary must export
 * the embedder API it calls, or the daemon silently falls back to a gc() that keeps its pages.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { collectUnderPressure } from '../../src/sys/index.js';

test('a memory-pressure collection gives back the heap that garbage grew, and V8 keeps working after it', async () => {
  let keep: { n: number; s: string }[] = [];
  for (let i = 0; i < 300_000; i++) keep.push({ n: i, s: `item ${i}` });
  const grown = v8.getHeapStatistics().total_heap_size;
  assert.ok(keep.length === 300_000);
  keep = [];
  assert.equal(await collectUnderPressure(), true, 'node lacks v8::Isolate::MemoryPressureNotification');
  const after = v8.getHeapStatistics().total_heap_size;
  assert.ok(after < grown / 2, `heap ${(grown / 2 ** 20).toFixed(1)} MiB with the garbage, ${(after / 2 ** 20).toFixed(1)} MiB after the collection`);
  // Back to no pressure: ordinary allocation and collection go on.
  const more = Array.from({ length: 100_000 }, (_, i) => ({ i }));
  assert.equal(more.length, 100_000);
  assert.equal(await collectUnderPressure(), true);
});
