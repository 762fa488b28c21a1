/**
 * Restart policies (no, always, unless-stopped, on-failure[:N]): whether an exit brings the container
 * back, and when. The delay doubles from 100 ms up to a minute, and resets once a run lasted 10 s.
 */
import type { Container } from './types.js';

export function shouldRestart(c: Container, exitCode: number): boolean {
  if (c.manuallyStopped) return false;
  const p = c.hostConfig.RestartPolicy;
  switch (p.Name) {
    case 'always':
    case 'unless-stopped':
      return true;
    case 'on-failure':
      return exitCode !== 0 && (p.MaximumRetryCount === 0 || c.restartCount < p.MaximumRetryCount);
    default:
      return false;
  }
}

/** Like dockerd at start: containers its policy brings back when the daemon starts. */
export function wantedAtDaemonStart(c: Container): boolean {
  const policy = c.hostConfig.RestartPolicy.Name;
  const wanted = policy === 'always' || (policy === 'unless-stopped' && !c.manuallyStopped) || c.state.Status === 'restarting';
  return wanted && (c.state.Status === 'exited' || c.state.Status === 'restarting');
}

export class RestartManager {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly delays = new Map<string, number>();

  constructor(private readonly fire: (id: string) => void) {}

  schedule(c: Container): void {
    this.cancel(c.id);
    const ranFor = Date.now() - Date.parse(c.state.StartedAt);
    const delay = ranFor > 10_000 ? 100 : Math.min((this.delays.get(c.id) ?? 50) * 2, 60_000);
    this.delays.set(c.id, delay);
    const timer = setTimeout(() => {
      this.timers.delete(c.id);
      this.fire(c.id);
    }, delay);
    timer.unref();
    this.timers.set(c.id, timer);
  }

  cancel(id: string): void {
    const timer = this.timers.get(id);
    if (timer) clearTimeout(timer);
    this.timers.delete(id);
  }

  forget(id: string): void {
    this.cancel(id);
    this.delays.delete(id);
  }
}
