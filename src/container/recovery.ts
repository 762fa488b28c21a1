/**
 * Start-up recovery: what a killed (or stopped) daemon left, finished or rolled back before the API
 * serves. Running containers whose monitor lives on are re-adopted; exits that happened while the
 * daemon was away are processed; half-done removals are finished; a start cut short is rolled back;
 * runtime state nobody owns is deleted; then restart policies bring back what they say, as dockerd.
 */
import { errorMessage } from '../errors.js';
import { log } from '../log.js';
import type { Runtime } from '../runtime/index.js';
import { wantedAtDaemonStart } from './restart.js';
import { isRunning } from './state.js';
import type { Container } from './types.js';

export interface RecoveryOps {
  containers(): Container[];
  /** IDs of other storage drivers' containers: their runtime state is theirs, not an orphan's. */
  hidden?(): string[];
  runtime: Runtime;
  /** Watch the exit of a container that still runs under its monitor. */
  adopt(c: Container): Promise<void>;
  /** Process an exit that happened while the daemon was away. */
  exited(c: Container, exitCode: number): Promise<void>;
  finishRemoval(c: Container): Promise<void>;
  /** Undo whatever a start cut short left (runtime state, mounts): the record says it does not run. */
  rollBack(c: Container, hadRuntimeState: boolean): Promise<void>;
  startByPolicy(c: Container): Promise<void>;
}

export async function recoverContainers(ops: RecoveryOps): Promise<void> {
  const known = new Map((await ops.runtime.list()).map((r) => [r.id, r]));
  for (const id of ops.hidden?.() ?? []) known.delete(id);
  for (const c of ops.containers()) {
    const r = known.get(c.id);
    known.delete(c.id);
    try {
      if (c.state.Status === 'removing') {
        await ops.finishRemoval(c);
      } else if (isRunning(c.state)) {
        if (r && r.conmonAlive && r.exitCode === null) {
          log.info('re-adopting running container', { id: c.id });
          await ops.adopt(c);
        } else {
          await ops.exited(c, r?.exitCode ?? 255);
        }
      } else {
        await ops.rollBack(c, r !== undefined);
      }
    } catch (err) {
      log.error('recovering a container failed', { id: c.id, error: errorMessage(err) });
    }
  }
  for (const c of ops.containers()) {
    if (!wantedAtDaemonStart(c)) continue;
    await ops.startByPolicy(c).catch((err) => log.warn('restart at daemon start failed', { id: c.id, error: errorMessage(err) }));
  }
  for (const orphan of known.keys()) {
    log.warn('removing runtime state of unknown container', { id: orphan });
    await ops.runtime.delete(orphan).catch(() => {});
  }
}
