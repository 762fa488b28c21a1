/**
 * The container state machine, in one place: which verb a state allows (the API asks the same
 * predicates) and the transitions, each returning a new State so a record is never half-changed.
 *
 *   created ──start──► running ◄──unpause── paused
 *      ▲                 │  ▲                  ▲
 *      └─failed start    │  └────pause─────────┘
 *                        ▼
 *   restarting ◄─policy─ exited ──remove──► removing ──► (gone)
 */
import { Conflict, NotModified } from '../errors.js';
import type { Container, State } from './types.js';
import { ZERO_TIME } from './types.js';

/** Docker's State.Running: a paused container still runs. */
export function isRunning(s: State): boolean {
  return s.Status === 'running' || s.Status === 'paused';
}

export function checkCanStart(c: Container): void {
  if (isRunning(c.state)) throw new NotModified('container already started');
  if (c.state.Status === 'removing') throw new Conflict(`cannot start container ${c.id.slice(0, 12)}: container is marked for removal`);
}

export function checkCanKill(c: Container, idOrName: string): void {
  if (!isRunning(c.state)) throw new Conflict(`cannot kill container: ${idOrName}: container ${c.id} is not running`);
}

/** What removal must do first: nothing, or kill the running process (only when forced). */
export function checkCanRemove(c: Container, force: boolean): 'none' | 'kill' {
  if (c.state.Status === 'restarting' && !force) {
    throw new Conflict(`cannot remove container "/${c.name}": container is restarting: stop the container before removing or force remove`);
  }
  if (isRunning(c.state)) {
    if (!force) throw new Conflict(`cannot remove container "/${c.name}": container is running: stop the container before removing or force remove`);
    return 'kill';
  }
  return 'none';
}

/** An exec (or a resize, or stdin) needs the process running and not paused; docker's messages. */
export function checkCanExec(c: Container): void {
  switch (c.state.Status) {
    case 'running':
      return;
    case 'paused':
      throw new Conflict(`Container ${c.id} is paused, unpause the container before exec`);
    case 'restarting':
      throw new Conflict(`Container ${c.id} is restarting, wait until the container is running`);
    default:
      throw new Conflict(`Container ${c.id} is not running`);
  }
}

/** Docker's pause preconditions and messages. */
export function checkCanPause(c: Container): void {
  switch (c.state.Status) {
    case 'running':
      return;
    case 'paused':
      throw new Conflict(`Container ${c.id} is already paused`);
    case 'restarting':
      throw new Conflict(`Container ${c.id} is restarting, wait until the container is running`);
    default:
      throw new Conflict(`Container ${c.id} is not running`);
  }
}

export function checkCanUnpause(c: Container): void {
  if (c.state.Status !== 'paused') throw new Conflict(`Container ${c.id} is not paused`);
}

/** top and stats look at processes: the container must have some. */
export function checkHasProcesses(c: Container): void {
  if (!isRunning(c.state)) throw new Conflict(`Container ${c.id} is not running`);
}

function now(): string {
  return new Date().toISOString();
}

export function toRunning(s: State, pid: number): State {
  return { ...s, Status: 'running', Pid: pid, ExitCode: 0, Error: '', OOMKilled: false, StartedAt: now(), FinishedAt: ZERO_TIME };
}

export function toExited(s: State, exitCode: number, oomKilled: boolean): State {
  return { ...s, Status: 'exited', Pid: 0, ExitCode: exitCode, OOMKilled: oomKilled, FinishedAt: now() };
}

/** A start that failed: a container that never ran stays created, as in docker. */
export function toStartFailed(s: State, exitCode: number, error: string): State {
  return { ...s, Status: s.StartedAt === ZERO_TIME ? 'created' : 'exited', Pid: 0, ExitCode: exitCode, Error: error, FinishedAt: now() };
}

export function toPaused(s: State): State {
  return { ...s, Status: 'paused' };
}

export function toUnpaused(s: State): State {
  return { ...s, Status: 'running' };
}

export function toRestarting(s: State): State {
  return { ...s, Status: 'restarting' };
}

/** A user's stop of a container waiting to restart. */
export function toStoppedRestart(s: State): State {
  return s.Status === 'restarting' ? { ...s, Status: 'exited' } : s;
}

export function toRemoving(s: State): State {
  return { ...s, Status: 'removing' };
}

export const INITIAL_STATE: State = { Status: 'created', Pid: 0, ExitCode: 0, Error: '', OOMKilled: false, StartedAt: ZERO_TIME, FinishedAt: ZERO_TIME };
