/**
 * A container's output and input: its log (past and followed), what an attach sees from now on,
 * stdin through the monitor, and the TTY size. Reads only; the lifecycle lives in service.ts.
 */
import fs from 'node:fs';
import { Conflict } from '../errors.js';
import type { BerthEvent, EventBus } from '../events/index.js';
import { type LogEntry, type Runtime, logOffset, readLog } from '../runtime/index.js';
import type { ContainerStore } from './store.js';
import type { Container } from './types.js';

export class ContainerStreams {
  constructor(
    private readonly store: ContainerStore,
    private readonly events: EventBus,
    private readonly runtime: Runtime,
    /** True while a run of the container has not had its exit processed. */
    private readonly exitPending: (id: string) => boolean,
  ) {}

  private is(c: Container, action: string): (e: BerthEvent) => boolean {
    return (e) => e.type === 'container' && e.id === c.id && e.action === action;
  }

  logs(c: Container, opts: { follow: boolean; since?: number; until?: number; tail?: number; signal?: AbortSignal }): AsyncIterable<LogEntry> {
    if (!fs.existsSync(c.logPath)) return (async function* () {})();
    return readLog(c.logPath, {
      ...opts,
      isRunning: () => {
        const cur = this.store.find(c.id);
        return cur !== undefined && (cur.state.Status === 'running' || this.exitPending(c.id));
      },
    });
  }

  /**
   * Output of a container from now on (or, with fromStart, from its first line), for attach: follows
   * the log until the container's next exit (or the signal aborts).
   */
  attachOutput(c: Container, signal: AbortSignal, opts: { fromStart?: boolean } = {}): AsyncIterable<LogEntry> {
    const logPath = c.logPath;
    const fromOffset = !opts.fromStart && fs.existsSync(logPath) ? logOffset(logPath) : 0;
    let exited = false;
    const stopWatching = this.events.subscribe((e) => {
      if (this.is(c, 'die')(e)) exited = true;
    });
    signal.addEventListener('abort', stopWatching, { once: true });
    // A container that never ran has no log yet: wait for its start (or its failure to start).
    const startedOnce = fs.existsSync(logPath)
      ? Promise.resolve()
      : this.events.next((e) => this.is(c, 'start')(e) || this.is(c, 'die')(e), signal).then(() => {}, () => {});
    return (async function* () {
      try {
        await startedOnce;
        if (signal.aborted || !fs.existsSync(logPath)) return;
        yield* readLog(logPath, { follow: true, fromOffset, signal, isRunning: () => !exited });
      } finally {
        stopWatching();
      }
    })();
  }

  /** Resolves once the container runs (at once if it does), or when the signal aborts. */
  async running(c: Container, signal: AbortSignal): Promise<void> {
    const cur = this.store.find(c.id);
    if (!cur || cur.state.Status === 'running' || signal.aborted) return;
    await this.events.next(this.is(c, 'start'), signal).catch(() => {});
  }

  /** Stdin of a running container (OpenStdin), through its monitor. */
  async stdin(c: Container): Promise<NodeJS.WritableStream> {
    return (await this.runtime.attach(c.id)).stdin;
  }

  resize(c: Container, h: number, w: number): Promise<void> {
    if (c.state.Status !== 'running') throw new Conflict(`Container ${c.id} is not running`);
    return this.runtime.resize(c.id, h, w);
  }
}
