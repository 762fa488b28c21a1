/**
 * `docker exec` / `berth exec` against berthd: the process runs inside the
 * running container (its namespaces, files, user database), the exit code
 * comes back, stdin and a tty work, and nothing stays behind.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startDaemon, loadTestImages, leftovers, paths, printLogTail, run, type Daemon, type RunResult } from '../harness.js';

let d: Daemon;
let id = '';
const clients = ['docker', 'berth'] as const;
type Client = (typeof clients)[number];

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
  const r = await d.docker(['run', '-d', '--name', 'c1', '-h', 'box1', 'busybox', 'sleep', '600']);
  assert.equal(r.code, 0, r.stderr);
  id = r.stdout.trim();
});

after(async () => {
  await d?.stop();
});

function cli(client: Client, args: string[], input?: string): Promise<RunResult> {
  return client === 'docker' ? d.docker(args, { input }) : d.berth(args, { input });
}

async function ok(client: Client, args: string[], input?: string): Promise<string> {
  const r = await cli(client, args, input);
  if (r.code !== 0) printLogTail(d, `${client} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  assert.equal(r.code, 0, `${client} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

for (const client of clients) {
  test(`${client} exec: hostname, processes and files are the container's`, async () => {
    assert.equal(await ok(client, ['exec', 'c1', 'hostname']), 'box1\n');
    const ps = (await ok(client, ['exec', 'c1', 'ps', '-o', 'pid,args'])).trim().split('\n').slice(1).map((l) => l.trim());
    assert.equal(ps[0], '1 sleep 600');
    assert.ok(ps.some((l) => /^\d+ ps -o pid,args$/.test(l)), ps.join('\n'));
    assert.equal(ps.length, 2, `only the container's processes: ${ps.join('\n')}`);
    assert.match(await ok(client, ['exec', 'c1', 'cat', '/etc/hostname']), /^box1\n$/);
  });

  test(`${client} exec: the exit code passes through; 127 not found, 126 not executable`, async () => {
    assert.equal((await cli(client, ['exec', 'c1', 'sh', '-c', 'exit 5'])).code, 5);
    const nf = await cli(client, ['exec', 'c1', 'nope']);
    assert.equal(nf.code, 127);
    assert.match(nf.stdout + nf.stderr, /executable file not found in \$PATH/);
    const ne = await cli(client, ['exec', 'c1', '/etc/passwd']);
    assert.equal(ne.code, 126);
    assert.match(ne.stdout + ne.stderr, /permission denied/);
  });

  test(`${client} exec: -u, -w, -e and the container's environment`, async () => {
    assert.equal(await ok(client, ['exec', '-u', 'nobody', 'c1', 'id', '-u']), '65534\n');
    assert.equal(await ok(client, ['exec', '-u', '4242:4343', 'c1', 'sh', '-c', 'id -u; id -g']), '4242\n4343\n');
    assert.equal(await ok(client, ['exec', '-w', '/tmp', 'c1', 'pwd']), '/tmp\n');
    const env = (await ok(client, ['exec', '-e', 'A=b', 'c1', 'env'])).split('\n');
    assert.ok(env.includes('A=b'), env.join('\n'));
    assert.ok(env.includes('HOSTNAME=box1'), env.join('\n'));
    assert.ok(env.some((e) => e.startsWith('PATH=')), env.join('\n'));
    assert.ok(env.includes('HOME=/root'), env.join('\n'));
  });

  test(`${client} exec: stdout and stderr stay apart`, async () => {
    const r = await cli(client, ['exec', 'c1', 'sh', '-c', 'echo out; echo err >&2']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
  });

  test(`${client} exec -i: stdin reaches the process and its EOF ends it`, async () => {
    assert.equal(await ok(client, ['exec', '-i', 'c1', 'tr', 'a-z', 'A-Z'], 'hello exec\n'), 'HELLO EXEC\n');
    // Large input goes through whole.
    const big = 'x'.repeat(300_000) + '\n';
    assert.equal((await ok(client, ['exec', '-i', 'c1', 'wc', '-c'], big)).trim(), String(big.length));
  });

  test(`${client} exec -d: runs in the background, the effect is visible`, async () => {
    const file = `/done-${client}`;
    assert.equal(await ok(client, ['exec', '-d', 'c1', 'sh', '-c', `sleep 0.3; touch ${file}`]), '');
    let seen = false;
    for (let i = 0; i < 50 && !seen; i++) {
      seen = (await cli(client, ['exec', 'c1', 'test', '-e', file])).code === 0;
      if (!seen) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(seen, `${file} appears`);
  });

  test(`${client} exec -t in a real pty: the process has a tty of the caller's size`, async () => {
    const bin = client === 'docker' ? paths.docker : paths.berth;
    const r = await inPty(`${bin} exec -t c1 tty; echo "rc=$?"`);
    assert.match(r, /\/dev\/pts\/\d+\r*\n/);
    assert.match(r, /rc=0/);
    const it = await inPty(`stty rows 33 cols 101; ${bin} exec -it c1 sh -c 'stty size; exit 3'; echo "rc=$?"`);
    assert.match(it, /33 101\r*\n/);
    assert.match(it, /rc=3/);
  });
}

/** Runs a shell command line on a real pty (script), its stdin held open for the duration. */
async function inPty(line: string): Promise<string> {
  const dir = fs.mkdtempSync(path.join(d.root, 'pty-'));
  try {
    const file = path.join(dir, 'cmd.sh');
    fs.writeFileSync(file, `${line}\n`, { mode: 0o755 });
    const r = await run('sh', ['-c', `sleep 2 | script -qec ${file} /dev/null`], { env: d.env });
    return r.stdout;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('an attached exec: runc\'s failure is told once in docker\'s words, a signal gives 128+n, the process outlives a client that goes', async () => {
  // runc also prints its error on the stderr it shares with the process: only docker's sentence may reach the client.
  const nf = await d.docker(['exec', 'c1', 'nope']);
  assert.equal(nf.code, 127);
  const out = nf.stdout + nf.stderr;
  assert.equal(out.match(/executable file not found/g)?.length, 1, out);
  assert.match(out, /^OCI runtime exec failed: exec failed: unable to start container process: exec: "nope": executable file not found in \$PATH: unknown/m);
  assert.equal((await d.docker(['exec', 'c1', 'sh', '-c', 'kill -9 $$'])).code, 137);

  // The client is killed while the process sleeps; the process writes after that and still finishes its work.
  const cli = spawn(paths.docker, ['exec', 'c1', 'sh', '-c', 'echo started; sleep 1; echo after; touch /outlived'], { env: d.env, stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((resolve, reject) => {
    cli.stdout.on('data', (b: Buffer) => { if (b.toString().includes('started')) resolve(); });
    cli.on('exit', () => reject(new Error('docker exec ended before it was killed')));
  });
  cli.kill('SIGKILL');
  let seen = false;
  for (let i = 0; i < 50 && !seen; i++) {
    seen = (await d.docker(['exec', 'c1', 'test', '-e', '/outlived'])).code === 0;
    if (!seen) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(seen, 'the process ran on after its client went');
  const execDir = path.join(d.execRoot, 'c', 'exec');
  for (let i = 0; i < 50 && fs.readdirSync(execDir).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(fs.readdirSync(execDir), [], 'finished execs leave no state');
});

test('exec through the API: create, start, inspect; errors docker gives', async () => {
  const cr = await d.api('POST', `/containers/c1/exec`, { Cmd: ['sh', '-c', 'exit 7'], AttachStdout: true });
  assert.equal(cr.status, 201);
  assert.match(cr.body.Id, /^[0-9a-f]{64}$/);
  const before = await d.api('GET', `/exec/${cr.body.Id}/json`);
  assert.equal(before.status, 200);
  assert.equal(before.body.Running, false);
  assert.equal(before.body.ExitCode, null);
  assert.equal(before.body.ContainerID, id);
  assert.deepEqual(before.body.ProcessConfig, { tty: false, entrypoint: 'sh', arguments: ['-c', 'exit 7'], privileged: false });
  const st = await d.api('POST', `/exec/${cr.body.Id}/start`, { Detach: true });
  assert.equal(st.status, 200);
  let info = before.body;
  for (let i = 0; i < 50 && info.ExitCode === null; i++) {
    await new Promise((r) => setTimeout(r, 50));
    info = (await d.api('GET', `/exec/${cr.body.Id}/json`)).body;
  }
  assert.equal(info.ExitCode, 7);
  assert.equal(info.Running, false);
  const again = await d.api('POST', `/exec/${cr.body.Id}/start`, { Detach: true });
  assert.equal(again.status, 409);
  assert.equal(again.body.message, `Error: Exec command ${cr.body.Id} has already run`);

  const empty = await d.api('POST', `/containers/c1/exec`, { Cmd: [] });
  assert.equal(empty.status, 400);
  assert.equal(empty.body.message, 'No exec command specified');
  const nosuch = await d.api('POST', `/containers/nosuch/exec`, { Cmd: ['true'] });
  assert.equal(nosuch.status, 404);
  const gone = await d.api('GET', `/exec/${'0'.repeat(64)}/json`);
  assert.equal(gone.status, 404);
  assert.equal(gone.body.message, `No such exec instance: ${'0'.repeat(64)}`);
});

test('a privileged exec gets the daemon\'s capabilities, a plain one the container\'s', async () => {
  const r = await run(paths.docker, ['exec', '--privileged', 'c1', 'grep', 'CapEff', '/proc/self/status'], { env: d.env });
  assert.equal(r.code, 0, r.stderr);
  const own = /^CapBnd:\s*(\S+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1];
  assert.equal(r.stdout.trim().split(/\s+/)[1], own);
  const plain = await run(paths.docker, ['exec', 'c1', 'grep', 'CapEff', '/proc/self/status'], { env: d.env });
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, /^CapEff:\s*[0-9a-f]{16}$/m);
  assert.notEqual(plain.stdout.trim().split(/\s+/)[1], own);
});

for (const client of clients) {
  test(`${client} exec into a stopped or missing container: docker's messages and exit code`, async () => {
    const name = `stopped-${client}`;
    await ok('docker', ['run', '--name', name, 'busybox', 'true']);
    const cid = (await ok('docker', ['inspect', '-f', '{{.Id}}', name])).trim();
    const r = await cli(client, ['exec', name, 'true']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim(), `Error response from daemon: Container ${cid} is not running`);
    const api = await d.api('POST', `/containers/${name}/exec`, { Cmd: ['true'] });
    assert.equal(api.status, 409);
    await ok('docker', ['rm', name]);
    const none = await cli(client, ['exec', name, 'true']);
    assert.equal(none.code, 1);
    assert.equal(none.stderr.trim(), `Error response from daemon: No such container: ${name}`);
  });
}

test('execs end with their container and leave nothing behind', async () => {
  await ok('docker', ['exec', '-d', 'c1', 'sleep', '300']);
  const cr = await d.api('POST', `/containers/c1/exec`, { Cmd: ['sleep', '300'] });
  await d.api('POST', `/exec/${cr.body.Id}/start`, { Detach: true });
  const execDir = path.join(d.execRoot, 'c', 'exec');
  assert.ok(fs.readdirSync(execDir).length >= 2, 'running execs have their state');
  await ok('docker', ['rm', '-f', 'c1']);
  for (let i = 0; i < 50 && fs.existsSync(execDir) && fs.readdirSync(execDir).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  const left = leftovers(d);
  assert.deepEqual(left, { mounts: [], cgroups: [], processes: [], files: [] }, JSON.stringify(left));
});

test('a daemon killed with -9 under a running exec: the exec runs on, the next daemon removes its files', async () => {
  await ok('docker', ['run', '-d', '--name', 'c2', 'busybox', 'sleep', '600']);
  await ok('docker', ['exec', '-d', 'c2', 'sh', '-c', 'sleep 1.5; touch /late']);
  await d.restart();
  let late = false;
  for (let i = 0; i < 60 && !late; i++) {
    late = (await d.docker(['exec', 'c2', 'test', '-e', '/late'])).code === 0;
    if (!late) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(late, 'the exec started by the killed daemon finished its work');
  const execDir = path.join(d.execRoot, 'c', 'exec');
  for (let i = 0; i < 50 && fs.existsSync(execDir) && fs.readdirSync(execDir).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(fs.existsSync(execDir) ? fs.readdirSync(execDir) : [], []);
  await ok('docker', ['rm', '-f', 'c2']);
  const left = leftovers(d);
  assert.deepEqual(left, { mounts: [], cgroups: [], processes: [], files: [] }, JSON.stringify(left));
});
