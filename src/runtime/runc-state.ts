/**
 * runc's own record of a container, <runtime-root>/<id>/state.json: the fields berth reads to do
 * without a runc process what runc would only do with files (start's handshake, a stopped
 * container's delete, an exec's way in).
 */
import fs from 'node:fs';
import path from 'node:path';

export interface RuncState {
  init_process_pid?: number;
  /** Field 22 of /proc/<pid>/stat when init started (a number in some runc versions, a string in others). */
  init_process_start?: number | string;
  /** Controller ("" for the unified hierarchy) → the container's cgroup directory. */
  cgroup_paths?: Record<string, string>;
  config?: { hooks?: Record<string, unknown[]> };
}

export function runcStatePath(runtimeRoot: string, id: string): string {
  return path.join(runtimeRoot, id, 'state.json');
}

/** The record, or null when there is none (not runc's, or removed) or it cannot be read. */
export function readRuncState(runtimeRoot: string, id: string): RuncState | null {
  try {
    return JSON.parse(fs.readFileSync(runcStatePath(runtimeRoot, id), 'utf8')) as RuncState;
  } catch {
    return null;
  }
}
