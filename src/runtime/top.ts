/**
 * `top`: the host's ps with the user's options, keeping the rows of the container's processes (its
 * cgroup's pids, exec'd processes included), as dockerd does.
 */
import { execFile } from 'node:child_process';
import { InvalidParameter, SystemError } from '../errors.js';

export interface ProcessList { Titles: string[]; Processes: string[][] }

function ps(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ps', args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new SystemError(`ps: ${(stderr || err.message).trim()}`));
      else resolve(stdout);
    });
  });
}

/** Splits ps's columns; the last title (the command) keeps the rest of the line, spaces and all. */
export function parsePs(output: string, pids: readonly number[]): ProcessList {
  const lines = output.split('\n').filter((l) => l.trim() !== '');
  const titles = (lines.shift() ?? '').trim().split(/\s+/);
  const pidColumn = titles.indexOf('PID');
  if (pidColumn < 0) throw new InvalidParameter(`Couldn't find PID field in ps output`);
  const wanted = new Set(pids);
  const processes: string[][] = [];
  for (const line of lines) {
    const fields = line.trim().split(/\s+/);
    if (!wanted.has(Number(fields[pidColumn]))) continue;
    const head = fields.slice(0, titles.length - 1);
    const rest = line.trim().split(/\s+/).slice(titles.length - 1).join(' ');
    processes.push([...head, rest]);
  }
  return { Titles: titles, Processes: processes };
}

/** ps_args as the API gives them ("-ef" by default, or "aux", "-o pid,comm"…). */
export async function listProcesses(pids: readonly number[], psArgs: string): Promise<ProcessList> {
  const args = (psArgs.trim() || '-ef').split(/\s+/);
  return parsePs(await ps(args), pids);
}
