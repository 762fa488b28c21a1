/**
 * What /proc says of a process the runtime cares about (a container's init, a conmon): whether it
 * still lives (a zombie does not), when it started, what it calls itself. Each check is a fresh
 * read: these pids belong to processes that come and go.
 */
import fs from 'node:fs';

/** Field 22 of /proc/PID/stat (the start time runc records as init_process_start); null for no live process. */
export function processStart(pid: number | null): string | null {
  if (!pid || pid <= 0) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from its closing one.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' || fields[0] === 'X' ? null : fields[19] ?? null;
  } catch {
    return null;
  }
}

/** Alive, and named `comm` (a recycled pid after a reboot or a long downtime is someone else). */
export function processIs(pid: number | null, comm: string): boolean {
  if (processStart(pid) === null) return false;
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm;
  } catch {
    return false;
  }
}

export function conmonAlive(pid: number | null): boolean {
  return processIs(pid, 'conmon');
}
