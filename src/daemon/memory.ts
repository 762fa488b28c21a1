/**
 * Giving memory back once work is done. A pull moves hundreds of MB through Buffers on the main
 * thread and on unpack workers; glibc keeps what they free in its arenas, so without this the
 * daemon's RSS stays at its high-water mark (~300 MiB after four pulls of a 94 MB image, against
 * ~62 MiB idle). Large blocks get their own mappings (freed at once), and a little after API
 * requests stop the arenas' free pages are trimmed.
 */
import type http from 'node:http';
import { collectUnderPressure, mallocTrim, setMmapThreshold } from '../sys/index.js';

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
 * V8's shrinking collection (sys: memory pressure); where the node binary lacks that API, a full
 * mark-compact, which frees but keeps its pages (bin/berthd passes --expose-gc; Node 20's gc() runs
 * one only when called with no argument: with an options object, even { type: 'major' }, it scavenges).
 */
async function collectAll(): Promise<void> {
  if (!(await collectUnderPressure())) (globalThis as { gc?: () => void }).gc?.();
}

export function tuneMalloc(): void {
  setMmapThreshold(MMAP_THRESHOLD);
}

/**
 * Collects and trims once requests to `servers` have stopped finishing for QUIET_MS; under a steady
 * stream of them, only trims, at most once per MAX_INTERVAL_MS.
 */
export function trimWhenQuiet(servers: http.Server[]): void {
  let quietTimer: NodeJS.Timeout | null = null;
  let lastTrim = Date.now();
  const trim = async (quiet: boolean): Promise<void> => {
    lastTrim = Date.now();
    if (quiet) await collectAll();
    mallocTrim();
  };
  const requestDone = (): void => {
    if (quietTimer) clearTimeout(quietTimer);
    if (Date.now() - lastTrim >= MAX_INTERVAL_MS) void trim(false);
    quietTimer = setTimeout(() => {
      quietTimer = null;
      void trim(true);
    }, QUIET_MS).unref();
  };
  for (const server of servers) server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => res.once('close', requestDone));
}
