/**
 * One error class per failure a user can meet. The classes know nothing of HTTP:
 * api/errors.ts maps each to a status and Docker's {"message"} body once, and the
 * CLI maps the status to docker's exit codes.
 */
export class BerthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
export class NotFound extends BerthError {}
export class Conflict extends BerthError {}
export class InvalidParameter extends BerthError {}
export class Forbidden extends BerthError {}
export class Unauthorized extends BerthError {}
export class NotModified extends BerthError {}
export class Unavailable extends BerthError {}
export class SystemError extends BerthError {}

/**
 * The runtime could not run the command itself (not found: 127, not executable: 126), as opposed to
 * failing for a reason of the host's. The caller's mistake, so an InvalidParameter.
 */
export class CommandNotRunnable extends InvalidParameter {
  constructor(message: string, readonly exitCode: 126 | 127) {
    super(message);
  }
}

/** Bytes whose sha256 is not the digest they were announced with. */
export class DigestMismatch extends InvalidParameter {}

/** An exec that failed to start for a reason other than its command: docker reports exit code 126. */
export class ExecStartFailed extends SystemError {
  readonly exitCode = 126;
}

/** Every class by name, so an error can cross a worker-thread boundary and keep its class. */
const CLASSES: Record<string, new (message: string) => BerthError> = {
  BerthError, NotFound, Conflict, InvalidParameter, Forbidden, Unauthorized, NotModified, Unavailable, SystemError,
};

export function serializeError(err: unknown): { message: string; name?: string; code?: string } {
  const e = err as Error & { code?: string };
  return { message: e?.message ?? String(err), name: err instanceof BerthError ? e.name : undefined, code: e?.code };
}

export function deserializeError(m: { message: string; name?: string; code?: string }): Error {
  const Cls = m.name !== undefined ? CLASSES[m.name] : undefined;
  const err: Error & { code?: string } = Cls ? new Cls(m.message) : new Error(m.message);
  if (m.code) err.code = m.code;
  return err;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
