import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  buildSpec, cgroupParentCleanup, createRuntime, readLog, logOffset, resolveUser, hostCapabilities, DEFAULT_CAPS,
  type LogEntry, type OciSpec, type Runtime, type SpecOptions,
} from '../../src/runtime/index.js';
import { InvalidParameter } from '../../src/errors.js';
import { cgroupMounts } from '../harness.js';

const which = (bin: string) => execFileSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).trim();

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'brt-'));
const rootfs = path.join(tmp, 'rootfs');
const stateDir = path.join(tmp, 'c');
const runtimeRoot = path.join(tmp, 'runc');
const cgParent = `berth-test-${process.pid}`;
let rt: Runtime;
const created: string[] = [];
let seq = 0;

function makeRootfs(): void {
  for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root', 'home/nobody']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin/busybox'));
  fs.chmodSync(path.join(rootfs, 'bin/busybox'), 0o755);
  const applets = execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const a of applets) if (a !== 'busybox') fs.symlinkSync('busybox', path.join(rootfs, 'bin', a));
  fs.writeFileSync(path.join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home/nobody:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n');
  fs.writeFileSync(path.join(rootfs, 'etc/group'), 'root:x:0:\nwheel:x:10:alice\naudio:x:29:alice,bob\nnogroup:x:65534:\nalice:x:1000:\n');
}

function opts(args: string[], over: Partial<SpecOptions> = {}): SpecOptions {
  return {
    rootfs, args, env: [], cwd: '/', user: { uid: 0, gid: 0, additionalGids: [] },
    hostname: 'box', tty: false, openStdin: false, network: { mode: 'none' },
    cgroupsPath: `${cgParent}/x`, resources: {}, mounts: [],
    ...over,
  };
}

/** create (+ start) a container from args; remembers the id for clean-up. */
async function run(args: string[], over: Partial<SpecOptions> = {}, start = true): Promise<{ id: string; logPath: string }> {
  const id = `t${process.pid}-${++seq}`;
  created.push(id);
  const logPath = path.join(tmp, 'logs', `${id}.log`);
  const spec = buildSpec(opts(args, { cgroupsPath: `${cgParent}/${id}`, ...over }));
  await rt.create(id, spec, { logPath, tty: over.tty ?? false, stdin: over.openStdin ?? false });
  if (start) await rt.start(id);
  return { id, logPath };
}

async function collect(it: AsyncIterable<LogEntry>): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

async function output(logPath: string): Promise<string> {
  return (await collect(readLog(logPath, { follow: false }))).map((e) => e.data.toString()).join('');
}

/** pids of live conmon processes whose command line names this container. */
function conmonsFor(id: string): number[] {
  const pids: number[] = [];
  for (const p of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const argv = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (path.basename(argv[0]) === 'conmon' && argv.includes(id)) pids.push(Number(p));
    } catch { /* exited meanwhile */ }
  }
  return pids;
}

/** rel in the hierarchy that holds controller ctl: its v1 mount, or the cgroup2 tree that enables it. */
function cgroupDir(ctl: string, rel: string): string {
  const m = cgroupMounts().find((h) => h.controllers.includes(ctl));
  assert.ok(m, `no cgroup hierarchy on this host has the ${ctl} controller`);
  return path.join(m.path, rel);
}

/** rel in every cgroup hierarchy of the host (runc makes a dir in each, the hybrid's unified one too). */
function cgroupDirsEverywhere(rel: string): string[] {
  const dirs = cgroupMounts().map((h) => path.join(h.path, rel));
  assert.ok(dirs.length > 0, 'no cgroup hierarchy mounted on this host: nothing to check');
  return dirs;
}

before(() => {
  makeRootfs();
  rt = createRuntime({ runtimePath: which('runc'), conmonPath: which('conmon'), stateDir, runtimeRoot });
});

after(async () => {
  for (const id of created) await rt.delete(id).catch(() => undefined);
  cgroupParentCleanup(cgParent);
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('buildSpec', () => {
  it('has Docker defaults: namespaces, caps, env, mounts, devices', () => {
    const s = buildSpec(opts(['true'], { tty: true, resources: { memory: 1 << 24, pidsLimit: 5 }, user: { uid: 65534, gid: 65534, additionalGids: [] } }));
    assert.deepEqual(s.linux.namespaces.map((n) => n.type).sort(), ['ipc', 'mount', 'network', 'pid', 'uts']);
    assert.deepEqual([...s.process.capabilities.bounding].sort(), [...DEFAULT_CAPS].sort());
    assert.equal(s.process.env[0], 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    assert.ok(s.process.env.includes('HOSTNAME=box'));
    assert.ok(s.process.env.includes('TERM=xterm'));
    assert.ok(s.process.env.includes('HOME=/home/nobody'));
    assert.equal(s.linux.cgroupsPath, `/${cgParent}/x`);
    assert.equal(s.linux.resources.memory?.limit, 1 << 24);
    assert.equal(s.linux.resources.memory?.swap, 2 << 24);
    assert.equal(s.linux.resources.pids?.limit, 5);
    assert.deepEqual(s.linux.resources.devices[0], { allow: false, access: 'rwm' });
    assert.ok(s.mounts.some((m) => m.destination === '/dev/shm'));
    assert.ok(s.linux.maskedPaths.includes('/proc/kcore'));
    const nofile = s.process.rlimits.find((r) => r.type === 'RLIMIT_NOFILE');
    assert.ok(nofile && nofile.hard <= 1048576);
    assert.equal(s.process.noNewPrivileges, false);
  });

  it('handles host/netns networks, cap add/drop, privileged and mount overrides', () => {
    const host = buildSpec(opts(['true'], { network: { mode: 'host' }, pidHost: true }));
    assert.ok(!host.linux.namespaces.some((n) => n.type === 'network' || n.type === 'pid'));
    const ns = buildSpec(opts(['true'], { network: { mode: 'netns', path: '/run/netns/x' } }));
    assert.deepEqual(ns.linux.namespaces.find((n) => n.type === 'network'), { type: 'network', path: '/run/netns/x' });
    const caps = buildSpec(opts(['true'], { capAdd: ['net_admin'], capDrop: ['CAP_CHOWN'] })).process.capabilities.bounding;
    assert.ok(caps.includes('CAP_NET_ADMIN') && !caps.includes('CAP_CHOWN'));
    const none = buildSpec(opts(['true'], { capDrop: ['ALL'], capAdd: ['KILL'] })).process.capabilities.bounding;
    assert.deepEqual(none, ['CAP_KILL']);
    assert.throws(() => buildSpec(opts(['true'], { capAdd: ['NOPE'] })), InvalidParameter);
    const priv = buildSpec(opts(['true'], { privileged: true }));
    assert.deepEqual(priv.process.capabilities.bounding, hostCapabilities());
    assert.deepEqual(priv.linux.maskedPaths, []);
    const shm = buildSpec(opts(['true'], { mounts: [{ destination: '/dev/shm', source: '/tmp', type: 'bind', options: ['rbind'] }] }));
    assert.equal(shm.mounts.filter((m) => m.destination === '/dev/shm').length, 1);
  });

  it('validates against the OCI runtime schema', async () => {
    const { default: Ajv } = await import('ajv');
    const dir = '/work/shared/reference/oci-runtime-schema';
    const ajv = new Ajv.default({ strict: false, allErrors: true });
    // The schemas say draft-04 but use nothing draft-07 reads differently; drop the marker so ajv's default dialect loads them.
    const load = (f: string) => {
      const j = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Record<string, unknown>;
      delete j.$schema;
      return j;
    };
    for (const f of fs.readdirSync(dir).filter((n) => /^(defs|config-).*\.json$/.test(n) && n !== 'config-schema.json')) ajv.addSchema(load(f), f);
    const validate = ajv.compile(load('config-schema.json'));
    const s = buildSpec(opts(['true'], { resources: { memory: 1 << 24, cpuShares: 512, cpuQuota: 50000, cpuPeriod: 100000, pidsLimit: 10 }, labels: { a: 'b' } }));
    assert.ok(validate(s), JSON.stringify(validate.errors));
  });
});

describe('resolveUser', () => {
  it('resolves names, ids and groups like docker', async () => {
    assert.deepEqual(await resolveUser(rootfs, ''), { uid: 0, gid: 0, additionalGids: [0], home: '/root' });
    assert.deepEqual(await resolveUser(rootfs, 'alice'), { uid: 1000, gid: 1000, additionalGids: [1000, 10, 29], home: '/home/alice' });
    assert.deepEqual(await resolveUser(rootfs, '1000'), { uid: 1000, gid: 1000, additionalGids: [1000, 10, 29], home: '/home/alice' });
    assert.deepEqual(await resolveUser(rootfs, '4242'), { uid: 4242, gid: 0, additionalGids: [0], home: '/' });
    assert.deepEqual(await resolveUser(rootfs, 'nobody:wheel'), { uid: 65534, gid: 10, additionalGids: [10], home: '/home/nobody' });
    assert.deepEqual(await resolveUser(rootfs, '5:7'), { uid: 5, gid: 7, additionalGids: [7], home: '/' });
    await assert.rejects(resolveUser(rootfs, 'nope'), (e: Error) => e instanceof InvalidParameter && /unable to find user nope: no matching entries in passwd file/.test(e.message));
    await assert.rejects(resolveUser(rootfs, 'root:nogrp'), /unable to find group nogrp/);
    // --group-add: names from the image's group file or numbers, after the primary group (dockerd's order)
    assert.deepEqual((await resolveUser(rootfs, '5:7', ['wheel', '4321'])).additionalGids, [7, 10, 4321]);
    await assert.rejects(resolveUser(rootfs, '', ['nogrp']), /Unable to find group nogrp: no matching entries in group file/);
  });
});

describe('conmon + runc', () => {
  it('runs a command, records its exit code and both streams in the log', async () => {
    const { id, logPath } = await run(['sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.equal(await rt.waitExit(id), 3);
    assert.equal(await rt.exitCode(id), 3);
    const entries = await collect(readLog(logPath, { follow: false }));
    const byStream = (s: string) => entries.filter((e) => e.stream === s).map((e) => e.data.toString()).join('');
    assert.equal(byStream('stdout'), 'out\n');
    assert.equal(byStream('stderr'), 'err\n');
    assert.match(entries[0].time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+/);
    assert.equal((await rt.state(id))?.status, 'stopped');
    const tail = await collect(readLog(logPath, { follow: false, tail: 1 }));
    assert.equal(tail.length, 1);
    assert.equal(tail[0].data.toString(), entries[entries.length - 1].data.toString());
    const future = await collect(readLog(logPath, { follow: false, since: Date.now() / 1000 + 100 }));
    assert.equal(future.length, 0);
    assert.ok((await rt.list()).some((c) => c.id === id && c.exitCode === 3));
  });

  it('isolates pids and hostname', async () => {
    const { id, logPath } = await run(['sh', '-c', 'hostname; ps -o pid,comm; true'], { hostname: 'inside' });
    assert.equal(await rt.waitExit(id), 0);
    const lines = (await output(logPath)).trim().split('\n');
    assert.equal(lines[0], 'inside');
    assert.match(lines[1], /^\s*PID\s+COMMAND$/);
    const procs = lines.slice(2).map((l) => l.trim().split(/\s+/));
    // Only the container's own two processes: sh as PID 1 (the trailing true keeps it from exec'ing
    // ps) and the ps it forked, numbered low by the fresh pid namespace; none of the host's.
    assert.equal(procs.length, 2, lines.join('\n'));
    assert.deepEqual(procs[0], ['1', 'sh']);
    assert.equal(procs[1][1], 'ps');
    assert.ok(Number(procs[1][0]) > 1 && Number(procs[1][0]) < 10, lines.join('\n'));
  });

  it('a pids limit stops a fork loop', async () => {
    const { id, logPath } = await run(['sh', '-c', 'for i in $(seq 40); do sleep 5 & done; echo all forked'], { resources: { pidsLimit: 20 } });
    assert.notEqual(await rt.waitExit(id), 0);
    const out = await output(logPath);
    assert.match(out, /can't fork/);
    assert.doesNotMatch(out, /all forked/);
    assert.equal(fs.readFileSync(cgroupDir('pids', `${cgParent}/${id}/pids.max`), 'utf8').trim(), '20');
  });

  it('a memory limit OOM-kills a big allocation and reports it', async () => {
    // 64 MiB through a pipe into a shell variable: busybox must hold it all in memory.
    const { id } = await run(['sh', '-c', 'x=$(head -c 67108864 /dev/zero | tr "\\0" a); echo ${#x}'], { resources: { memory: 16 * 1024 * 1024 } });
    const code = await rt.waitExit(id);
    assert.notEqual(code, 0);
    assert.equal(rt.oomKilled(id), true);
  });

  it('start finishes a start cut short after runc init\'s handshake; the command runs once', async () => {
    const { id, logPath } = await run(['sh', '-c', 'echo ran; sleep 100'], {}, false);
    const fifo = path.join(runtimeRoot, id, 'exec.fifo');
    // What a daemon killed mid-start did: the handshake (init execs the command), not the fifo's removal.
    const fd = fs.openSync(fifo, 'r');
    assert.equal(fs.readSync(fd, Buffer.alloc(1)), 1);
    fs.closeSync(fd);
    for (let i = 0; i < 100 && !(await output(logPath)).includes('ran'); i++) await sleep(20);
    assert.equal((await rt.state(id))?.status, 'created');
    await rt.start(id);
    assert.equal((await rt.state(id))?.status, 'running');
    await sleep(100);
    assert.equal(await output(logPath), 'ran\n');
    await rt.kill(id, 'SIGKILL', true);
    await rt.waitExit(id);
    await rt.delete(id);
  });

  it('start of a created container whose init died gets runc\'s error at once', async () => {
    const { id } = await run(['true'], {}, false);
    const pid = Number(fs.readFileSync(path.join(stateDir, id, 'pidfile'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    const t0 = Date.now();
    await assert.rejects(rt.start(id), /container process is already dead/);
    assert.ok(Date.now() - t0 < 2000, `${Date.now() - t0} ms`);
    await rt.delete(id);
    assert.equal(await rt.state(id), null);
  });

  it('create of a missing binary fails with runc\'s message and leaves nothing behind', async () => {
    const id = `t${process.pid}-missing`;
    created.push(id);
    const spec = buildSpec(opts(['nope'], { cgroupsPath: `${cgParent}/${id}` }));
    await assert.rejects(rt.create(id, spec, { logPath: path.join(tmp, 'logs', `${id}.log`), tty: false, stdin: false }),
      /executable file not found/);
    assert.equal(fs.existsSync(path.join(stateDir, id)), false);
    assert.equal(fs.existsSync(path.join(runtimeRoot, id)), false);
    for (const dir of cgroupDirsEverywhere(`${cgParent}/${id}`)) assert.equal(fs.existsSync(dir), false, dir);
    assert.equal(await rt.state(id), null);
    assert.deepEqual(conmonsFor(id), []);
  });

  it('kill SIGTERM ends sleep with 143; delete is idempotent', async () => {
    // PID 1 of a pid namespace ignores signals it has no handler for, so sleep runs as its child
    // and the shell reports sleep's status; --all delivers TERM to every process of the container.
    const { id } = await run(['sh', '-c', 'sleep 100 & wait $!']);
    assert.equal((await rt.state(id))?.status, 'running');
    assert.equal(await rt.exitCode(id), null);
    await sleep(100);
    await rt.kill(id, 'SIGTERM', true);
    assert.equal(await rt.waitExit(id), 143);
    await rt.delete(id);
    await rt.delete(id);
    assert.equal(await rt.state(id), null);
    assert.equal(fs.existsSync(path.join(stateDir, id)), false);
  });

  it('feeds stdin through the attach socket and reads output from it', async () => {
    const { id, logPath } = await run(['cat'], { openStdin: true });
    const a = await rt.attach(id);
    const chunks: Buffer[] = [];
    a.stdout.on('data', (c: Buffer) => chunks.push(c));
    a.stdin.write('hello\n');
    a.stdin.end();
    assert.equal(await rt.waitExit(id), 0);
    await sleep(50);
    a.close();
    assert.equal(Buffer.concat(chunks).toString(), 'hello\n');
    assert.equal(await output(logPath), 'hello\n');
  });

  it('keeps stdin open across attaches with leaveStdinOpen, and splits stdout/stderr', async () => {
    const id = `t${process.pid}-${++seq}`;
    created.push(id);
    const logPath = path.join(tmp, 'logs', `${id}.log`);
    const spec = buildSpec(opts(['sh', '-c', 'while read l; do echo "o:$l"; echo "e:$l" >&2; done'], { cgroupsPath: `${cgParent}/${id}`, openStdin: true }));
    await rt.create(id, spec, { logPath, tty: false, stdin: true, leaveStdinOpen: true });
    await rt.start(id);
    const once = async (line: string) => {
      const a = await rt.attach(id);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      a.stdout.on('data', (c: Buffer) => out.push(c));
      a.stderr.on('data', (c: Buffer) => err.push(c));
      a.stdin.end(`${line}\n`);
      for (let i = 0; i < 100 && !(Buffer.concat(out).length && Buffer.concat(err).length); i++) await sleep(20);
      a.close();
      return { out: Buffer.concat(out).toString(), err: Buffer.concat(err).toString() };
    };
    assert.deepEqual(await once('x'), { out: 'o:x\n', err: 'e:x\n' });
    assert.equal((await rt.state(id))?.status, 'running');
    assert.deepEqual(await once('y'), { out: 'o:y\n', err: 'e:y\n' });
    await rt.kill(id, 'KILL');
    assert.equal(await rt.waitExit(id), 137);
  });

  it('follows a log until the container exits, from an offset', async () => {
    const { id, logPath } = await run(['sh', '-c', 'echo a; sleep 0.3; echo b; sleep 0.3; echo c'], {}, false);
    const from = logOffset(logPath);
    await rt.start(id);
    let running = true;
    void rt.waitExit(id).then(() => { running = false; });
    const got = await collect(readLog(logPath, { follow: true, fromOffset: from, isRunning: () => running }));
    assert.equal(got.map((e) => e.data.toString()).join(''), 'a\nb\nc\n');
  });

  it('keeps running under conmon without us, and is listed', async () => {
    const { id } = await run(['sleep', '100']);
    const st = await rt.state(id);
    assert.equal(st?.status, 'running');
    // conmon, not this process, is the container's parent.
    const ppid = Number(/^PPid:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${st?.pid}/status`, 'utf8'))?.[1]);
    assert.notEqual(ppid, process.pid);
    assert.equal(fs.readFileSync(`/proc/${ppid}/comm`, 'utf8').trim(), 'conmon');
    const l = (await rt.list()).find((c) => c.id === id);
    assert.deepEqual(l, { id, conmonAlive: true, exitCode: null });
    // A fresh runtime object (a restarted daemon) sees and waits on it.
    const rt2 = createRuntime({ runtimePath: which('runc'), conmonPath: which('conmon'), stateDir, runtimeRoot });
    const waited = rt2.waitExit(id);
    await rt2.kill(id, 9);
    assert.equal(await waited, 137);
  });

  it('tty containers log through the pty and accept resize', async () => {
    const { id, logPath } = await run(['sh', '-c', 'sleep 0.3; stty size'], { tty: true }, false);
    await rt.start(id);
    await rt.resize(id, 40, 100);
    assert.equal(await rt.waitExit(id), 0);
    assert.match(await output(logPath), /40 100/);
  });
});

export type { OciSpec };
