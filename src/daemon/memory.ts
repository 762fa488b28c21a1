/**
 * Giving memory back once work is done. A pull moves hundreds of MB through Buffers on the main
 * thread and on unpack workers; glibc keeps what they free in its arenas, so without this the
 * daemon's RSS stays at its high-water mark (~300 MiB after four pulls of a 94 MB image, against
 * ~62 MiB idle). Large blocks get their own mappings (freed at once), and a little after API
 * requests finish the arenas' free pages are trimmed.
 */
import type http from 'node:http';
import { mallocTrim, setMmapThreshold } from '../sys/index.js';

/** glibc's own starting threshold: zlib's 256 KiB output chunks and the unpackers' 1 MiB batches lie above it. */
const MMAP_THRESHOLD = 128 << 10;
/** A trim costs a few ms of the main thread: at most one per this many ms while requests keep finishing. */
const TRIM_DELAY_MS = 1000;

export function tuneMalloc(): void {
  setMmapThreshold(MMAP_THRESHOLD);
}

/** Trims the heap TRIM_DELAY_MS after a request to any of `servers` finishes (one trim per burst). */
export function trimAfterRequests(servers: http.Server[]): void {
  let pending: NodeJS.Timeout | null = null;
  const schedule = (): void => {
    pending ??= setTimeout(() => {
      pending = null;
      mallocTrim();
    }, TRIM_DELAY_MS).unref();
  };
  for (const server of servers) server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => res.once('close', schedule));
}
