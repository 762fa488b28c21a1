/**
 * Reader of the k8s-file log conmon writes: one record per line,
 * `<RFC3339Nano> <stdout|stderr> <F|P> <bytes>` where F ends a line and P is a
 * piece of a longer one (no newline). The file only grows while the container
 * runs, so following it is: read to the end, wait for a change, read again,
 * until the container is gone and nothing is left.
 */
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface LogEntry { time: string; stream: 'stdout' | 'stderr'; data: Buffer }
export interface ReadLogOptions {
  follow: boolean;
  since?: number;          // unix seconds (float): entries at or after
  until?: number;          // unix seconds (float): entries before or at
  tail?: number;           // last N lines; -1 or undefined = all
  fromOffset?: number;     // start at this byte offset (attach-from-now)
  signal?: AbortSignal;
  isRunning?: () => boolean;
}

/** Byte size of the log now; pass it as fromOffset to see only what comes next. */
export function logOffset(path: string): number {
  try {
    return fs.statSync(path).size;
  } catch {
    return 0;
  }
}

/** Seconds since the epoch of an RFC3339Nano time, keeping the nanoseconds Date.parse would drop. */
export function parseLogTime(t: string): number {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(t);
  if (!m) return NaN;
  return Date.parse(`${m[1]}${m[3]}`) / 1000 + (m[2] ? Number(`0${m[2]}`) : 0);
}

function parseLine(line: Buffer): LogEntry | null {
  const s1 = line.indexOf(0x20);
  const s2 = s1 < 0 ? -1 : line.indexOf(0x20, s1 + 1);
  const s3 = s2 < 0 ? -1 : line.indexOf(0x20, s2 + 1);
  if (s3 < 0) return null;
  const stream = line.toString('latin1', s1 + 1, s2);
  if (stream !== 'stdout' && stream !== 'stderr') return null;
  const full = line.toString('latin1', s2 + 1, s3) !== 'P';
  const data = line.subarray(s3 + 1);
  return {
    time: line.toString('latin1', 0, s1),
    stream,
    data: full ? Buffer.concat([data, Buffer.from('\n')]) : Buffer.from(data),
  };
}

/** Reads whole lines from `fd` starting at `offset`; keeps a trailing partial line for the next call. */
class LineReader {
  private rest = Buffer.alloc(0);
  constructor(private fd: number, public offset: number) {}

  async *lines(): AsyncGenerator<Buffer> {
    const buf = Buffer.allocUnsafe(64 * 1024);
    for (;;) {
      const n = await new Promise<number>((resolve, reject) =>
        fs.read(this.fd, buf, 0, buf.length, this.offset, (err, bytes) => (err ? reject(err) : resolve(bytes))));
      if (n === 0) return;
      this.offset += n;
      let chunk = Buffer.concat([this.rest, buf.subarray(0, n)]);
      let nl: number;
      while ((nl = chunk.indexOf(0x0a)) >= 0) {
        yield chunk.subarray(0, nl);
        chunk = chunk.subarray(nl + 1);
      }
      this.rest = Buffer.from(chunk);
    }
  }
}

function inWindow(e: LogEntry, o: ReadLogOptions): boolean {
  if (o.since === undefined && o.until === undefined) return true;
  const t = parseLogTime(e.time);
  if (o.since !== undefined && t < o.since) return false;
  if (o.until !== undefined && t > o.until) return false;
  return true;
}

export async function* readLog(path: string, opts: ReadLogOptions): AsyncGenerator<LogEntry> {
  let fd: number;
  try {
    fd = await new Promise<number>((resolve, reject) => fs.open(path, 'r', (err, f) => (err ? reject(err) : resolve(f))));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !opts.follow) return;
    // conmon creates the file when the container starts; wait for it in follow mode.
    while (!fs.existsSync(path)) {
      if (opts.signal?.aborted || !(opts.isRunning?.() ?? false)) return;
      await sleep(100);
    }
    fd = fs.openSync(path, 'r');
  }
  const reader = new LineReader(fd, opts.fromOffset ?? 0);
  try {
    const tail = opts.tail ?? -1;
    if (tail >= 0) {
      // Keep the last `tail` lines, a line being P pieces up to and including their F piece.
      const groups: LogEntry[][] = [];
      let open: LogEntry[] = [];
      for await (const line of reader.lines()) {
        const e = parseLine(line);
        if (!e || !inWindow(e, opts)) continue;
        open.push(e);
        if (e.data[e.data.length - 1] === 0x0a) {
          groups.push(open);
          open = [];
          if (groups.length > tail) groups.shift();
        }
      }
      if (open.length) { groups.push(open); if (groups.length > tail) groups.shift(); }
      for (const g of groups) yield* g;
    } else {
      for await (const line of reader.lines()) {
        const e = parseLine(line);
        if (e && inWindow(e, opts)) yield e;
      }
    }
    if (!opts.follow) return;

    while (!opts.signal?.aborted) {
      // Look at isRunning before draining: whatever was written before the exit is then read below.
      const running = opts.isRunning?.() ?? false;
      for await (const line of reader.lines()) {
        if (opts.signal?.aborted) return;
        const e = parseLine(line);
        if (!e || !inWindow(e, opts)) continue;
        if (opts.until !== undefined && parseLogTime(e.time) > opts.until) return;
        yield e;
      }
      if (!running) return;
      await waitForChange(path, opts.signal, 250);
    }
  } finally {
    fs.close(fd, () => undefined);
  }
}

/** Resolves on the next modification of `path`, or after `ms` (to re-check isRunning), or on abort. */
function waitForChange(path: string, signal: AbortSignal | undefined, ms: number): Promise<void> {
  return new Promise((resolve) => {
    let watcher: fs.FSWatcher | undefined;
    const done = () => {
      clearTimeout(timer);
      watcher?.close();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    try {
      watcher = fs.watch(path, done);
      watcher.on('error', done);
    } catch {
      /* fall back to the timer */
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
