/**
 * An attached `docker exec` runs through berth-exec (src/runtime/native/), not `runc exec`: the
 * process must be where runc would put it. Each check runs the same probe through the docker CLI
 * and through `runc exec` with the container's own process spec, and compares what the process
 * sees of itself (ids, groups, capabilities, no_new_privs, seccomp, rlimits, oom score, cgroups,
 * namespaces); then the exit codes, the errors, a paused container, a daemon killed with -9, and
 * that nothing is left stopped or running.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startDaemon, loadTestImages, leftovers, printLogTail, run, paths, type Daemon } from '../harness.js';

let d: Daemon;
const RUNC = ['/usr/sbin/runc', '/usr/bin/runc'].find((p) => fs.existsSync(p)) ?? 'runc';

/**
 * What a process sees of itself that runc sets up. Not the soft nofile limit: runc 1.1.5's exec
 * sometimes leaves it raised to the hard one (Go raises its own at start, racing runc's prlimit);
 * it is checked against the spec instead.
 */
const PROBE = [
  "grep -E '^(Uid|Gid|Groups|Cap[A-Za-z]+|NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status",
  'id', 'ulimit -Hn', 'cat /proc/self/oom_score_adj', 'cat /proc/self/cgroup', 'pwd',
  'for n in cgroup ipc mnt net pid user uts; do readlink /proc/self/ns/$n; done',
].join('; ');

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
});

after(async () => {
  await d?.stop();
});

async function docker(args: string[], input?: string): Promise<string> {
  const r = await d.docker(args, { input });
  if (r.code !== 0) printLogTail(d, `docker ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function runContainer(name: string, args: string[] = []): Promise<string> {
  return (await docker(['run', '-d', '--name', name, ...args, 'busybox', 'sleep', '600'])).trim();
}

/** `runc exec` of a shell script with the container's own process (as berth gave it to runc), user replaced. */
async function runcExec(id: string, script: string, user?: { uid: number; gid: number; additionalGids?: number[] }): Promise<string> {
  const config = JSON.parse(fs.readFileSync(path.join(d.execRoot, 'c', id, 'config.json'), 'utf8')) as { process: Record<string, unknown> };
  const file = path.join(d.root, `process-${id.slice(0, 12)}.json`);
  fs.writeFileSync(file, JSON.stringify({ ...config.process, terminal: false, args: ['sh', '-c', script], ...(user ? { user } : {}) }));
  try {
    const r = await run(RUNC, ['--root', path.join(d.execRoot, 'runc'), 'exec', '--process', file, id]);
    assert.equal(r.code, 0, `runc exec: ${r.stderr}`);
    return r.stdout;
  } finally {
    fs.rmSync(file, { force: true });
  }
}

function status(pid: number): string {
  return fs.readFileSync(`/proc/${pid}/status`, 'utf8');
}

function initPid(id: string): number {
  return (JSON.parse(fs.readFileSync(path.join(d.execRoot, 'runc', id, 'state.json'), 'utf8')) as { init_process_pid: number }).init_process_pid;
}

/** An attached `docker exec CMD` started in the background: the host pid of its process once it runs, and the CLI's exit code. */
async function execRunning(name: string, cmd: string[]): Promise<{ pid: number; exit: Promise<number | null> }> {
  const cli = spawn(paths.docker, ['exec', name, ...cmd], { env: d.env, stdio: 'ignore' });
  const exit = new Promise<number | null>((resolve) => cli.on('exit', (code) => resolve(code)));
  for (let i = 0; i < 100; i++) {
    for (const p of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
      try {
        const ppid = parentOf(Number(p));
        if (fs.readFileSync(`/proc/${ppid}/comm`, 'utf8').trim() !== 'berth-exec') continue;
        if (!fs.readFileSync(`/proc/${ppid}/cmdline`, 'utf8').includes(`\0--\0${cmd.join('\0')}\0`)) continue;
        return { pid: Number(p), exit };
      } catch { /* gone meanwhile */ }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  cli.kill('SIGKILL');
  await exit;
  throw new Error(`no process of berth-exec runs ${cmd.join(' ')}`);
}

function parentOf(pid: number): number {
  return Number(/^PPid:\s+(\d+)/m.exec(status(pid))?.[1]);
}

test('docker exec runs under berth-exec and sees what runc exec sees: root, a user, groups, -w', { timeout: 120_000 }, async () => {
  const id = await runContainer('plain', ['--group-add', '4242', '--ulimit', 'nofile=100:200', '--oom-score-adj', '300']);
  // The process's parent is berth-exec (runc's would be runc itself); a SIGTERM to it reaches the process.
  const sleeper = await execRunning('plain', ['sleep', '30']);
  process.kill(parentOf(sleeper.pid), 'SIGTERM');
  assert.equal(await sleeper.exit, 143);
  assert.equal(await docker(['exec', 'plain', 'sh', '-c', PROBE]), await runcExec(id, PROBE));
  // -u: berth resolves the user in the image (its primary group first, then --group-add), both runners get the same ids.
  assert.equal(await docker(['exec', '-u', 'nobody', 'plain', 'sh', '-c', PROBE]), await runcExec(id, PROBE, { uid: 65534, gid: 65534, additionalGids: [65534, 4242] }));
  const u = await docker(['exec', '-u', '1000:1000', 'plain', 'sh', '-c', PROBE]);
  assert.equal(u, await runcExec(id, PROBE, { uid: 1000, gid: 1000, additionalGids: [1000, 4242] }));
  assert.match(u, /^uid=1000\(\w+\) gid=1000\(\w+\) groups=1000\(\w+\),4242$/m);
  assert.equal(await docker(['exec', '-w', '/tmp', 'plain', 'pwd']), '/tmp\n');
  assert.equal(await docker(['exec', 'plain', 'sh', '-c', 'ulimit -Sn; ulimit -Hn']), '100\n200\n');
  // The process is in the container's cgroups and namespaces, and sees its pid namespace (init is 1).
  const [self, init] = await Promise.all([
    docker(['exec', 'plain', 'sh', '-c', 'cat /proc/self/cgroup; for n in cgroup ipc mnt net pid user uts; do readlink /proc/self/ns/$n; done']),
    docker(['exec', 'plain', 'sh', '-c', 'cat /proc/1/cgroup; for n in cgroup ipc mnt net pid user uts; do readlink /proc/1/ns/$n; done']),
  ]);
  assert.equal(self, init);
  assert.match(await docker(['exec', 'plain', 'ps', '-o', 'pid,args']), /^\s*1 sleep 600$/m);
  await docker(['rm', '-f', 'plain']);
});

test('seccomp: the container\'s filter, once; unshare -U refused as in the container; none when unconfined', { timeout: 120_000 }, async () => {
  const id = await runContainer('filtered');
  const bundle = path.join(d.execRoot, 'c', id);
  const seccomp = "grep -E '^Seccomp(_filters)?:' /proc/self/status";
  const ex = await docker(['exec', 'filtered', 'sh', '-c', seccomp]);
  assert.match(ex, /^Seccomp:\s+2\nSeccomp_filters:\s+1\n$/);
  assert.equal(ex, await runcExec(id, seccomp));
  // Read from init once, kept beside the bundle; init is not left stopped or traced.
  assert.equal(fs.readdirSync(bundle).filter((f) => f.startsWith('seccomp-')).length, 1);
  assert.match(status(initPid(id)), /^State:\s+S/m);
  assert.match(status(initPid(id)), /^TracerPid:\s+0$/m);
  const unshare = await d.docker(['exec', 'filtered', 'unshare', '-U', 'true']);
  assert.notEqual(unshare.code, 0);
  assert.match(unshare.stderr, /not permitted/);
  const inContainer = await d.docker(['run', '--rm', 'busybox', 'unshare', '-U', 'true']);
  assert.equal(inContainer.code, unshare.code);
  await docker(['rm', '-f', 'filtered']);

  await runContainer('unconfined', ['--security-opt', 'seccomp=unconfined']);
  assert.match(await docker(['exec', 'unconfined', 'sh', '-c', seccomp]), /^Seccomp:\s+0\nSeccomp_filters:\s+0\n$/);
  assert.equal((await d.docker(['exec', 'unconfined', 'unshare', '-U', 'true'])).code, 0);
  await docker(['rm', '-f', 'unconfined']);
});

test('no-new-privileges and a privileged exec: as runc exec gives them', { timeout: 120_000 }, async () => {
  const id = await runContainer('nnp', ['--security-opt', 'no-new-privileges']);
  const ex = await docker(['exec', 'nnp', 'sh', '-c', PROBE]);
  assert.match(ex, /^NoNewPrivs:\s+1$/m);
  assert.match(ex, /^Seccomp:\s+2$/m);
  assert.equal(ex, await runcExec(id, PROBE));
  await docker(['rm', '-f', 'nnp']);

  await runContainer('priv');
  const own = /^CapBnd:\s*(\S+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1];
  const priv = await docker(['exec', '--privileged', 'priv', 'sh', '-c', PROBE]);
  for (const set of ['CapPrm', 'CapEff', 'CapBnd']) assert.match(priv, new RegExp(`^${set}:\\s+${own}$`, 'm'));
  // The container's seccomp filter still applies (runc applies it to every exec of the container).
  assert.match(priv, /^Seccomp:\s+2$/m);
  assert.match(priv, /^NoNewPrivs:\s+0$/m);
  await docker(['rm', '-f', 'priv']);
});

test('exit codes, stdin, output and runc\'s errors in docker\'s words', { timeout: 120_000 }, async () => {
  await runContainer('codes');
  assert.equal((await d.docker(['exec', 'codes', 'true'])).code, 0);
  assert.equal((await d.docker(['exec', 'codes', 'sh', '-c', 'exit 3'])).code, 3);
  assert.equal((await d.docker(['exec', 'codes', 'sh', '-c', 'kill -TERM $$'])).code, 143);
  assert.equal((await d.docker(['exec', 'codes', 'sh', '-c', 'kill -9 $$'])).code, 137);
  assert.equal(await docker(['exec', '-i', 'codes', 'sh', '-c', 'tr a-z A-Z; echo err >&2'], 'in\n'), 'IN\n');
  const nf = await d.docker(['exec', 'codes', 'nope']);
  assert.equal(nf.code, 127);
  assert.equal((nf.stdout + nf.stderr).trim(), 'OCI runtime exec failed: exec failed: unable to start container process: exec: "nope": executable file not found in $PATH: unknown');
  const abs = await d.docker(['exec', 'codes', '/nope']);
  assert.equal(abs.code, 127);
  assert.match(abs.stdout + abs.stderr, /exec: "\/nope": stat \/nope: no such file or directory: unknown/);
  const dir = await d.docker(['exec', 'codes', '/tmp']);
  assert.equal(dir.code, 126);
  assert.match(dir.stdout + dir.stderr, /exec: "\/tmp": permission denied: unknown/);
  const cwd = await d.docker(['exec', '-w', '/nonexistent', 'codes', 'true']);
  assert.equal(cwd.code, 127);
  assert.match(cwd.stdout + cwd.stderr, /chdir to cwd \("\/nonexistent"\) set in config.json failed: no such file or directory/);
  const rel = await d.docker(['exec', '-e', 'PATH=bin', 'codes', 'true']);
  assert.equal(rel.code, 126);
  assert.match(rel.stdout + rel.stderr, /exec: "true": cannot run executable found relative to current directory/);
  await docker(['rm', '-f', 'codes']);
});

test('a paused container refuses exec; after a kill -9 of berthd the next daemon execs into the same container', { timeout: 120_000 }, async () => {
  const id = await runContainer('kept');
  assert.equal(await docker(['exec', 'kept', 'echo', 'before']), 'before\n');
  await docker(['pause', 'kept']);
  const paused = await d.docker(['exec', 'kept', 'true']);
  assert.equal(paused.code, 1);
  assert.equal(paused.stderr.trim(), `Error response from daemon: Container ${id} is paused, unpause the container before exec`);
  await docker(['unpause', 'kept']);
  await d.restart();
  assert.match(await docker(['exec', 'kept', 'sh', '-c', "grep -E '^Seccomp(_filters)?:' /proc/self/status"]), /^Seccomp:\s+2\nSeccomp_filters:\s+1\n$/);
  // A restarted container gets its filter read again, from its new init.
  await docker(['restart', '-t', '0', 'kept']);
  assert.match(await docker(['exec', 'kept', 'grep', 'Seccomp:', '/proc/self/status']), /^Seccomp:\s+2$/m);
  assert.equal(fs.readdirSync(path.join(d.execRoot, 'c', id)).filter((f) => f.startsWith('seccomp-')).length, 1);
  await docker(['rm', '-f', 'kept']);
  const left = leftovers(d);
  assert.deepEqual(left, { mounts: [], cgroups: [], processes: [], files: [] }, JSON.stringify(left));
});
