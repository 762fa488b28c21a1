/**
 * applyLayer on a worker thread. Unpacking is syscalls, tar parsing and hashing: on the main thread
 * it held up everything else a pull does (downloads, other layers, the API), and several layers could
 * not use more than one core. The tar's bytes are copied to the worker in messages, at most
 * IN_FLIGHT chunks ahead of what it has consumed.
 */
import type { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { deserializeError } from '../errors.js';
import type { ApplyResult, WhiteoutMode } from './apply.js';

export type ToWorker = { type: 'chunk'; data: Uint8Array } | { type: 'end' } | { type: 'error'; message: string };
export type FromWorker =
  | { type: 'ack'; n: number }
  | { type: 'done'; result: ApplyResult }
  | { type: 'failed'; message: string; name?: string; code?: string };

const IN_FLIGHT = 8;
/** Network reads come in 16-64 KiB pieces: they are gathered to this size per message. */
const BATCH = 1 << 20;

/** worker.js next to this file once built; worker.ts, loaded through tsx, when the sources run under it (tests). */
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER = new URL(FROM_SOURCE ? './worker.ts' : './worker.js', import.meta.url);

export interface WorkerData { dir: string; whiteouts: WhiteoutMode }

export function applyLayerOffThread(input: Readable, dir: string, whiteouts: WhiteoutMode = 'overlay'): Promise<ApplyResult> {
  const workerData: WorkerData = { dir, whiteouts };
  const worker = FROM_SOURCE
    ? new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(WORKER.href)}); })`, { eval: true, workerData })
    : new Worker(WORKER, { workerData });
  let credit = IN_FLIGHT;
  let wake: (() => void) | null = null;
  let inputError: Error | null = null;
  const outcome = new Promise<ApplyResult>((resolve, reject) => {
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'ack') {
        credit += m.n;
        wake?.();
      } else if (m.type === 'done') {
        resolve(m.result);
      } else {
        // A source that failed explains more than the worker's "premature close".
        reject(inputError ?? deserializeError(m));
      }
    });
    worker.on('error', reject);
    worker.on('exit', (code) => reject(inputError ?? new Error(`layer unpack worker exited with code ${code}`)));
  });
  let settled = false;
  const finish = (): void => {
    settled = true;
    wake?.();
  };
  void outcome.then(finish, finish);

  const send = (chunks: Buffer[], size: number): void => {
    // A buffer of its own, so handing it over detaches nothing else (network chunks share pooled memory).
    const data = new Uint8Array(size);
    let off = 0;
    for (const c of chunks) {
      data.set(c, off);
      off += c.length;
    }
    worker.postMessage({ type: 'chunk', data } satisfies ToWorker, [data.buffer]);
    credit--;
  };
  const pump = async (): Promise<void> => {
    let batch: Buffer[] = [];
    let size = 0;
    try {
      for await (const c of input) {
        if (settled) break;
        batch.push(c as Buffer);
        size += (c as Buffer).length;
        if (size < BATCH) continue;
        while (credit <= 0 && !settled) await new Promise<void>((r) => { wake = r; });
        wake = null;
        if (settled) break;
        send(batch, size);
        batch = [];
        size = 0;
      }
      if (!settled) {
        if (batch.length) send(batch, size);
        worker.postMessage({ type: 'end' } satisfies ToWorker);
      }
    } catch (err) {
      inputError = err as Error;
      if (!settled) worker.postMessage({ type: 'error', message: inputError.message } satisfies ToWorker);
    }
  };
  void pump();
  return outcome.finally(() => {
    if (!input.destroyed && !input.readableEnded) input.destroy();
    void worker.terminate();
  });
}
