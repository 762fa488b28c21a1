/** The one place an error class becomes an HTTP status (Docker's choices for each). */
import { BerthError, Conflict, Forbidden, InvalidParameter, NotFound, NotModified, Unauthorized, Unavailable } from '../errors.js';

const STATUS: [new (...args: never[]) => BerthError, number][] = [
  [NotFound, 404],
  [Conflict, 409],
  [InvalidParameter, 400],
  [Forbidden, 403],
  [Unauthorized, 401],
  [NotModified, 304],
  [Unavailable, 503],
];

export function statusOf(err: unknown): number {
  for (const [Cls, status] of STATUS) if (err instanceof Cls) return status;
  return 500;
}

/** Docker's error body. */
export function errorBody(err: unknown): string {
  return JSON.stringify({ message: err instanceof Error ? err.message : String(err) }) + '\n';
}
