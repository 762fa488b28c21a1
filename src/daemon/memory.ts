/**
 * Giving memory back once work is done. A pull moves hundreds of MB through Buffers on the main
 * thread and on unpack workers; glibc keeps what they free in its arenas, so without this the
 * daemon's RSS stays at its high-water mark (~300 MiB after four pulls of a 94 MB image, against
 * ~62 MiB idle). Large blocks get their own mappings (freed at once), and a little after API
 * requests stop the arenas' free pages are trimmed.
 */
import type http from 'node:http';
import { mallocTrim, setMmapThreshold } from '../sys/index.js';

/** glibc's own starting threshold: zlib's 256 KiB output chunks and the unpackers' 1 MiB batches lie above it. */
const MMAP_THRESHOLD = 128 << 10;
/** The API quiet this long after a request finished: the work is over, give the memory back. */
const QUIET_MS = 1000;
/**
 * A trim holds the main thread for 3-60 ms (it walks every arena): under a steady stream of
 * requests (a run loop, a poller), only once in this long.
 */
const MAX_INTERVAL_MS = 30_000;

/**
 * A full mark-compact. Node 20's gc() runs one only when called with no argument: given an options
 * object (even { type: 'major' }) it runs a scavenge, which frees none of what a pull left in old space.
 */
function collectAll(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

export function tuneMalloc(): void {
  setMmapThreshold(MMAP_THRESHOLD);
}

/** Trims the heap once requests to `servers` have stopped finishing for QUIET_MS (or MAX_INTERVAL_MS passed). */
export function trimWhenQuiet(servers: http.Server[]): void {
  let timer: NodeJS.Timeout | null = null;
  let lastTrim = Date.now();
  let lastDone = Date.now();
  const trim = (): void => {
    timer = null;
    lastTrim = Date.now();
    // Really quiet: V8's full collection first (bin/berthd passes --expose-gc), then glibc's trim
    // of what that and the work freed.
    if (Date.now() - lastDone >= QUIET_MS) collectAll();
    mallocTrim();
  };
  const requestDone = (): void => {
    lastDone = Date.now();
    if (timer) clearTimeout(timer);
    timer = setTimeout(trim, Math.min(QUIET_MS, Math.max(0, lastTrim + MAX_INTERVAL_MS - Date.now()))).unref();
  };
  for (const server of servers) server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => res.once('close', requestDone));
}
