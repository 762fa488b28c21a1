/**
 * One error class per failure a user can meet. The API maps each to an HTTP
 * status once (api/errors.ts); the CLI maps status to docker's exit codes.
 */
export class BerthError extends Error {
  readonly status: number = 500;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
export class NotFound extends BerthError { override readonly status = 404; }
export class Conflict extends BerthError { override readonly status = 409; }
export class InvalidParameter extends BerthError { override readonly status = 400; }
export class Forbidden extends BerthError { override readonly status = 403; }
export class NotModified extends BerthError { override readonly status = 304; }
export class Unavailable extends BerthError { override readonly status = 503; }
export class SystemError extends BerthError { override readonly status = 500; }

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
