/**
 * Docker's progress messages, byte for byte: the `progress` bar string of jsonmessage.JSONProgress as dockerd
 * renders it (width 200, no start time, so bar + "current/total" and no time left), and the per-layer
 * messages that carry an empty progressDetail.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { JSONMessage, Progress } from './types.js';

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];

/** go-units HumanSize: decimal units, 4 significant digits ("%.4g"). */
export function humanSize(n: number): string {
  let i = 0;
  while (n >= 1000 && i < UNITS.length - 1) {
    n /= 1000;
    i++;
  }
  return `${String(Number(n.toPrecision(4)))}${UNITS[i]}`;
}

export function progressBar(current: number, total: number): string {
  if (current <= 0 && total <= 0) return '';
  if (total <= 0) return humanSize(current).padStart(8);
  let pct = Math.floor(Math.floor((current / total) * 100) / 2);
  if (pct > 50) pct = 50;
  const bar = `[${'='.repeat(pct)}>${' '.repeat(Math.max(0, 50 - pct))}] `;
  const numbers = current > total ? humanSize(current).padStart(8) : `${humanSize(current).padStart(8)}/${humanSize(total)}`;
  return bar + numbers;
}

/** A status line for one layer (dockerd's progress.Update): `{"status":…,"progressDetail":{},"id":…}`. */
export function layerStatus(out: Progress, id: string, status: string): void {
  out({ status, progressDetail: {}, id });
}

export function layerProgress(out: Progress, id: string, status: string, current: number, total: number): void {
  out({ status, progressDetail: { current, total }, progress: progressBar(current, total), id });
}

/** A plain message (dockerd's progress.Message): no progressDetail. */
export function message(out: Progress, status: string, id?: string): void {
  const m: JSONMessage = { status };
  if (id !== undefined) m.id = id;
  out(m);
}

/**
 * Rate-limits byte counters the way docker's progressreader does: an update at most every 512 kB or 1 %
 * of the total, plus the final one.
 */
export class Ticker {
  private last = 0;
  constructor(private readonly total: number, private readonly emit: (current: number) => void) {}
  update(current: number): void {
    const step = Math.max(512 * 1024, this.total / 100);
    if (current - this.last >= step || (this.total > 0 && current >= this.total && this.last < this.total)) {
      this.last = current;
      this.emit(current);
    }
  }
}

/** The 12-hex short form of a digest docker uses as a layer's progress id. */
export function shortDigest(d: string): string {
  return d.replace(/^[a-z0-9]+:/, '').slice(0, 12);
}

/** Passes bytes through, reporting the running count (the Downloading/Extracting/Pushing bars). */
export class Counter extends Transform {
  n = 0;
  constructor(private readonly onBytes: (n: number) => void) { super(); }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.n += chunk.length;
    this.onBytes(this.n);
    cb(null, chunk);
  }
}
