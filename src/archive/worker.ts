/**
 * Worker thread side of applyLayerOffThread: unpacks the tar the main thread feeds it in messages
 * into workerData.dir, and reports the result or the error.
 */
import { Readable } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import { serializeError } from '../errors.js';
import { applyLayer } from './apply.js';
import type { ToWorker, FromWorker, WorkerData } from './offthread.js';

const port = parentPort!;
const post = (m: FromWorker): void => port.postMessage(m);
let owed = 0;
const input = new Readable({
  highWaterMark: 4 << 20,
  read() {
    // Consumed what it had: the main thread may send the chunks it held back.
    if (owed > 0) post({ type: 'ack', n: owed });
    owed = 0;
  },
});
port.on('message', (m: ToWorker) => {
  if (m.type === 'chunk') {
    if (input.push(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength))) post({ type: 'ack', n: 1 });
    else owed++;
  } else if (m.type === 'end') {
    input.push(null);
  } else {
    input.destroy(new Error(m.message));
  }
});
const { dir, whiteouts } = workerData as WorkerData;
applyLayer(input, dir, whiteouts).then(
  (result) => post({ type: 'done', result }),
  (err: unknown) => post({ type: 'failed', ...serializeError(err) }),
);
