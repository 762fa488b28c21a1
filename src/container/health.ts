/**
 * Health checks, dockerd's way: one monitor per running container whose Config.Healthcheck (its
 * own, or the image's HEALTHCHECK) names a probe. Each probe is an exec session of the container
 * (exec_create / exec_start / exec_die events, as dockerd emits for it), its output kept like
 * dockerd keeps it (4096 bytes, then "...").
 *
 *   started  every start and restart: State.Health back to starting, streak 0 (the log stays);
 *            the monitor opens
 *   probe    after the interval (the start interval while starting within the start period), the
 *            test runs for at most Timeout; exit 0 = healthy, anything else counts one failure
 *            (not while starting within the start period); Retries failures in a row = unhealthy;
 *            `health_status: <status>` on the bus whenever the status changes; next probe an
 *            interval after this one ended
 *   stop     stop, exit, remove, pause: the monitor closes and the status turns unhealthy
 *            (dockerd's "for compatibility reasons"), without an event
 *   resume   unpause, or a container adopted after a daemon restart: the monitor reopens with the
 *            status as recorded
 *
 * Validation (create time) and the merge of a create body with the image's HEALTHCHECK live here too.
 */
import { finished } from 'node:stream/promises';
import { InvalidParameter, errorMessage } from '../errors.js';
import { log } from '../log.js';
import type { ExecProcess } from '../runtime/index.js';
import { formatGoDuration } from '../util/duration.js';
import type { ExecService } from './exec.js';
import type { ContainerService } from './service.js';
import type { Container, Health, HealthConfig, HealthLogEntry } from './types.js';

const MS = 1e6; // ns per ms
const DEFAULT_INTERVAL = 30_000 * MS;
const DEFAULT_TIMEOUT = 30_000 * MS;
const DEFAULT_START_INTERVAL = 5_000 * MS;
const DEFAULT_RETRIES = 3;
const MAX_LOG_ENTRIES = 5;
const MAX_OUTPUT = 4096;
/** Docker's MinimumDuration for every health check duration that is set. */
const MIN_DURATION = 1 * MS;

/** What service.ts tells the health monitor. */
export interface HealthHooks {
  /** After a start or restart: status starting, monitor opened. */
  started(c: Container): void;
  /** Stop, exit, remove, pause: monitor closed, status unhealthy. */
  stop(c: Container): void;
  /** Unpause, adoption after a daemon restart: monitor reopened, status kept. */
  resume(c: Container): void;
}

/** The command a probe runs, or null when there is no probe (none configured, NONE, unknown type). */
export function probeCommand(c: Container): string[] | null {
  const test = c.config.Healthcheck?.Test;
  if (!test || test.length === 0) return null;
  switch (test[0]) {
    case 'CMD':
      return test.slice(1);
    case 'CMD-SHELL': {
      const shell = Array.isArray(c.config.Shell) && c.config.Shell.length ? (c.config.Shell as string[]) : ['/bin/sh', '-c'];
      return [...shell, ...test.slice(1)];
    }
    default:
      return null;
  }
}

function duration(h: Record<string, unknown>, key: string): number {
  const v = h[key];
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new InvalidParameter(`invalid Healthcheck.${key}: ${JSON.stringify(v)}`);
  return v;
}

/** A create body's Healthcheck checked as dockerd checks it; undefined when there is none. */
export function checkHealthcheck(raw: unknown): HealthConfig | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new InvalidParameter('invalid Healthcheck: must be an object');
  const h = raw as Record<string, unknown>;
  const test = h.Test;
  if (test !== undefined && test !== null && (!Array.isArray(test) || test.some((x) => typeof x !== 'string'))) {
    throw new InvalidParameter('invalid Healthcheck.Test: must be an array of strings');
  }
  const out: HealthConfig = {
    Test: (test as string[] | null | undefined) ?? undefined,
    Interval: duration(h, 'Interval'),
    Timeout: duration(h, 'Timeout'),
    StartPeriod: duration(h, 'StartPeriod'),
    StartInterval: duration(h, 'StartInterval'),
    Retries: duration(h, 'Retries'),
  };
  const min = formatGoDuration(MIN_DURATION);
  for (const key of ['Interval', 'Timeout'] as const) {
    if (out[key] !== 0 && out[key]! < MIN_DURATION) throw new InvalidParameter(`${key} in Healthcheck cannot be less than ${min}`);
  }
  if (out.Retries! < 0) throw new InvalidParameter('Retries in Healthcheck cannot be negative');
  for (const key of ['StartPeriod', 'StartInterval'] as const) {
    if (out[key] !== 0 && out[key]! < MIN_DURATION) throw new InvalidParameter(`${key} in Healthcheck cannot be less than ${min}`);
  }
  if (out.Test && out.Test.length > 0 && (out.Test[0] === 'CMD' || out.Test[0] === 'CMD-SHELL') && out.Test.length < 2) {
    throw new InvalidParameter(`invalid Healthcheck.Test: ${out.Test[0]} needs a command`);
  }
  return compact(out);
}

/** Unset fields left out, as dockerd's JSON leaves them (omitempty). */
function compact(h: HealthConfig): HealthConfig {
  const out: HealthConfig = {};
  if (h.Test && h.Test.length) out.Test = h.Test;
  for (const key of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval', 'Retries'] as const) if (h[key]) out[key] = h[key];
  return out;
}

/** dockerd's merge of the user's health check with the image's: what the user leaves unset comes from the image. */
export function mergeHealthcheck(user: HealthConfig | undefined, image: HealthConfig | undefined): HealthConfig | undefined {
  if (!user) return image ? compact(image) : undefined;
  if (!image) return user;
  return compact({
    Test: user.Test && user.Test.length ? user.Test : image.Test,
    Interval: user.Interval || image.Interval || 0,
    Timeout: user.Timeout || image.Timeout || 0,
    StartPeriod: user.StartPeriod || image.StartPeriod || 0,
    StartInterval: user.StartInterval || image.StartInterval || 0,
    Retries: user.Retries || image.Retries || 0,
  });
}

/** Docker's ps status suffix: "(healthy)", "(unhealthy)", "(health: starting)"; "" without a health check. */
export function healthSuffix(c: Container): string {
  const h = c.state.Health;
  if (!h) return '';
  return h.Status === 'starting' ? ' (health: starting)' : ` (${h.Status})`;
}

/** `ps --filter health=`: a container without health state is "none". */
export function healthFilterValue(c: Container): string {
  return c.state.Health?.Status ?? 'none';
}

export const HEALTH_FILTER_VALUES = ['starting', 'healthy', 'unhealthy', 'none'];

/** Up to MAX_OUTPUT bytes of a probe's stdout and stderr, interleaved as they come; "..." marks a cut. */
class LimitedOutput {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private truncated = false;

  write(data: Buffer): void {
    const keep = Math.min(MAX_OUTPUT - this.size, data.length);
    if (keep > 0) {
      this.chunks.push(data.subarray(0, keep));
      this.size += keep;
    }
    if (keep < data.length) this.truncated = true;
  }

  toString(): string {
    const out = Buffer.concat(this.chunks).toString('utf8');
    return this.truncated ? `${out}...` : out;
  }
}

/** One open monitor; `closed` is dockerd's stop channel: a probe that ends after it is ignored. */
interface Monitor {
  closed: boolean;
  timer: NodeJS.Timeout | null;
  /** Host pid of the probe while it runs, for ending it early. */
  probePid: number;
}

export class HealthMonitor implements HealthHooks {
  private readonly monitors = new Map<string, Monitor>();

  constructor(
    private readonly containers: ContainerService,
    private readonly execs: ExecService,
  ) {}

  started(c: Container): void {
    if (!probeCommand(c)) return;
    this.close(c.id);
    this.containers.saveHealth(c, { Status: 'starting', FailingStreak: 0, Log: c.state.Health?.Log ?? [] });
    this.open(c);
  }

  stop(c: Container): void {
    if (!this.close(c.id)) return;
    if (c.state.Health) this.containers.saveHealth(c, { ...c.state.Health, Status: 'unhealthy' });
  }

  resume(c: Container): void {
    if (!probeCommand(c) || this.monitors.has(c.id) || c.state.Status !== 'running') return;
    // A record written before the container had health state starts where a start would.
    if (!c.state.Health) this.containers.saveHealth(c, { Status: 'starting', FailingStreak: 0, Log: [] });
    this.open(c);
  }

  /** The daemon is going away: monitors end, records stay as they are (the next daemon resumes them). */
  shutdown(): void {
    for (const m of this.monitors.values()) {
      m.closed = true;
      if (m.timer) clearTimeout(m.timer);
    }
    this.monitors.clear();
  }

  /** Whether a monitor was open. */
  private close(id: string): boolean {
    const m = this.monitors.get(id);
    if (!m) return false;
    this.monitors.delete(id);
    m.closed = true;
    if (m.timer) clearTimeout(m.timer);
    // dockerd cancels a running probe; the exec's exit is still reported (exec_die) by the exec service.
    if (m.probePid > 0) {
      try {
        process.kill(m.probePid, 'SIGKILL');
      } catch { /* already gone */ }
    }
    return true;
  }

  private open(c: Container): void {
    const m: Monitor = { closed: false, timer: null, probePid: 0 };
    this.monitors.set(c.id, m);
    this.schedule(c, m);
  }

  /** dockerd's getInterval: the start interval while starting within the start period, else the interval. */
  private schedule(c: Container, m: Monitor): void {
    const hc = c.config.Healthcheck ?? {};
    const interval = hc.Interval || DEFAULT_INTERVAL;
    const startInterval = hc.StartInterval || DEFAULT_START_INTERVAL;
    const startPeriod = hc.StartPeriod || 0;
    const sinceStart = (Date.now() - Date.parse(c.state.StartedAt)) * MS;
    const next = sinceStart < startPeriod && c.state.Health?.Status === 'starting' ? startInterval : interval;
    m.timer = setTimeout(() => {
      this.probe(c.id, m).catch((err) => log.error('health check monitor failed', { id: c.id, error: errorMessage(err) }));
    }, next / MS);
    m.timer.unref();
  }

  private async probe(id: string, m: Monitor): Promise<void> {
    m.timer = null;
    const c = this.find(id);
    if (!c || m.closed) return;
    const start = new Date();
    let result: { ExitCode: number; Output: string };
    try {
      result = await this.run(c, m);
    } catch (err) {
      log.warn('health check failed to run', { id, error: errorMessage(err) });
      result = { ExitCode: -1, Output: errorMessage(err) };
    }
    if (m.closed || this.monitors.get(id) !== m) return;
    const cur = this.find(id);
    if (!cur || !cur.state.Health) return;
    this.record(cur, { Start: start.toISOString(), End: new Date().toISOString(), ...result });
    this.schedule(cur, m);
  }

  private find(id: string): Container | undefined {
    try {
      return this.containers.get(id);
    } catch {
      return undefined;
    }
  }

  /** One run of the probe as an exec session of the container. */
  private async run(c: Container, m: Monitor): Promise<{ ExitCode: number; Output: string }> {
    const cmd = probeCommand(c)!;
    const { Id } = this.execs.create(c.id, { AttachStdin: false, AttachStdout: true, AttachStderr: true, Tty: false, Privileged: false, Cmd: cmd });
    const proc: ExecProcess = await this.execs.start(Id, { attach: true });
    m.probePid = proc.pid;
    const output = new LimitedOutput();
    const streams = proc.streams;
    const drained = streams
      ? Promise.all([streams.stdout, streams.stderr].map((s) => {
        s.on('data', (chunk: Buffer) => output.write(chunk));
        return finished(s).catch(() => undefined);
      }))
      : Promise.resolve([]);
    const timeout = c.config.Healthcheck?.Timeout || DEFAULT_TIMEOUT;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeout / MS)));
    const code = await Promise.race([proc.exit, late]).finally(() => clearTimeout(timer));
    if (code === null) {
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch { /* exited meanwhile */ }
      // Wait for it to go, so that dying probes do not pile up.
      await proc.exit.catch(() => undefined);
      m.probePid = 0;
      await drained;
      const out = output.toString();
      const what = `Health check exceeded timeout (${formatGoDuration(timeout)})`;
      return { ExitCode: -1, Output: out ? `${what}: ${out}` : what };
    }
    // Gone: its pid may be reused from now on.
    m.probePid = 0;
    await drained;
    return { ExitCode: code, Output: output.toString() };
  }

  /** dockerd's handleProbeResult. */
  private record(c: Container, entry: HealthLogEntry): void {
    const h = c.state.Health!;
    const hc = c.config.Healthcheck ?? {};
    const retries = hc.Retries && hc.Retries > 0 ? hc.Retries : DEFAULT_RETRIES;
    const next: Health = { Status: h.Status, FailingStreak: h.FailingStreak, Log: [...h.Log, entry].slice(-MAX_LOG_ENTRIES) };
    if (entry.ExitCode === 0) {
      next.FailingStreak = 0;
      next.Status = 'healthy';
    } else {
      const inStartPeriod = h.Status === 'starting' && (Date.parse(entry.Start) - Date.parse(c.state.StartedAt)) * MS < (hc.StartPeriod || 0);
      if (!inStartPeriod) {
        next.FailingStreak++;
        if (next.FailingStreak >= retries) next.Status = 'unhealthy';
      }
    }
    this.containers.saveHealth(c, next);
    if (next.Status !== h.Status) this.containers.publish(`health_status: ${next.Status}`, c);
  }
}
