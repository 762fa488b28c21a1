/**
 * For crash tests: run a child script that works in a loop and prints a line once it is under way,
 * then SIGKILL it at a random instant a little later. Rejects if it exits by itself first.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { TestContext } from 'node:test';

export async function killMidway(t: TestContext, script: string, cwd: string, delayMs: { min: number; spread: number }): Promise<void> {
  const proc = spawn(process.execPath, ['--import', 'tsx', script], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  t.after(() => { if (proc.exitCode === null) proc.kill('SIGKILL'); });
  await new Promise<void>((resolve, reject) => {
    proc.stdout.once('data', () => resolve());
    proc.once('exit', (code) => reject(new Error(`child exited early: ${code}: ${stderr}`)));
  });
  await new Promise((r) => setTimeout(r, delayMs.min + Math.random() * delayMs.spread));
  const exited = new Promise((r) => (proc.exitCode !== null || proc.signalCode !== null ? r(null) : proc.once('exit', r)));
  proc.kill('SIGKILL');
  await exited;
  assert.equal(proc.signalCode, 'SIGKILL', `the child was still working when killed: ${stderr}`);
}
