/**
 * events/: the daemon's one event bus. Every service publishes what happened to the objects it owns
 * (container, image, network, volume, daemon, builder); api/ encodes Docker's wire JSON and filters;
 * services that wait for something (an exit, a removal) subscribe too.
 *
 *   publish(type, action, id, attributes)  → stamped with the time, kept in a bounded history, handed
 *                                           to every subscriber synchronously, in order
 *   subscribe(listener) → unsubscribe       live events from now on
 *   history(sinceNs, untilNs)               what is still kept, oldest first (dockerd keeps its last
 *                                           256 events and replays them for `events --since`)
 *
 * A listener that throws is logged and left subscribed: one bad consumer never stops the others.
 */
import { log } from '../log.js';

export type EventType = 'container' | 'image' | 'network' | 'volume' | 'daemon' | 'builder' | 'plugin' | 'node' | 'service' | 'secret' | 'config';

export interface BerthEvent {
  type: EventType;
  action: string;
  /** The object's ID (container ID, image ID or reference, network ID, volume name, daemon ID). */
  id: string;
  attributes: Record<string, string>;
  /** Nanoseconds since the epoch, strictly increasing across the bus. */
  timeNano: bigint;
}

export type EventListener = (e: BerthEvent) => void;

const HISTORY = 256;

export class EventBus {
  private readonly listeners = new Set<EventListener>();
  private readonly kept: BerthEvent[] = [];
  private last = 0n;

  constructor(private readonly capacity = HISTORY) {}

  publish(type: EventType, action: string, id: string, attributes: Record<string, string> = {}): BerthEvent {
    let t = BigInt(Date.now()) * 1_000_000n;
    if (t <= this.last) t = this.last + 1n;
    this.last = t;
    const e: BerthEvent = { type, action, id, attributes, timeNano: t };
    this.kept.push(e);
    if (this.kept.length > this.capacity) this.kept.shift();
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch (err) {
        log.warn('events: a listener failed', { type, action, error: String(err) });
      }
    }
    return e;
  }

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Kept events with sinceNs <= time <= untilNs (either bound may be omitted). */
  history(sinceNs?: bigint, untilNs?: bigint): BerthEvent[] {
    return this.kept.filter((e) => (sinceNs === undefined || e.timeNano >= sinceNs) && (untilNs === undefined || e.timeNano <= untilNs));
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  /**
   * Resolves with the first event that matches, or rejects when the signal aborts.
   * Subscribes before returning, so an event published right after the call is not missed.
   */
  next(match: (e: BerthEvent) => boolean, signal?: AbortSignal): Promise<BerthEvent> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        off();
        reject(signal!.reason);
      };
      const off = this.subscribe((e) => {
        if (!match(e)) return;
        off();
        signal?.removeEventListener('abort', onAbort);
        resolve(e);
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
