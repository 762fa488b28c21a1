/* eslint-disable @typescript-eslint/no-explicit-any */
/**
 * pause/unpause, top, stats, rename and update, through the docker CLI and berth's own, on real
 * containers: what a user checks is the process (frozen or not), the figures against the cgroup
 * files, and inspect.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDaemon, loadTestImages, leftovers, cgroupMounts, type Daemon } from '../harness.js';

let d: Daemon;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
});

after(async () => {
  await d?.stop();
});

async function ok(p: Promise<{ code: number; stdout: string; stderr: string }>): Promise<string> {
  const r = await p;
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

async function inspect(name: string) {
  return JSON.parse(await ok(d.docker(['inspect', name])))[0];
}

/** The counter the container writes once per 100 ms. */
async function counter(name: string): Promise<number> {
  const out = await ok(d.berth(['logs', '--tail', '1', name]));
  return Number(out.trim() || '0');
}

test('pause freezes the processes, unpause lets them go on; ps, inspect and events show it', { timeout: 120_000 }, async () => {
  await ok(d.docker(['run', '-d', '--name', 'ticker', 'busybox', 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done']));
  await sleep(500);
  await ok(d.docker(['pause', 'ticker']));
  const state = (await inspect('ticker')).State;
  assert.equal(state.Status, 'paused');
  assert.equal(state.Paused, true);
  assert.equal(state.Running, true);
  const frozen = await counter('ticker');
  await sleep(800);
  assert.equal(await counter('ticker'), frozen, 'the counter advanced while paused');
  assert.match(await ok(d.docker(['ps', '--filter', 'name=ticker', '--format', '{{.Status}}'])), /\(Paused\)/);

  const exec = await d.docker(['exec', 'ticker', 'true']);
  assert.notEqual(exec.code, 0);
  assert.match(exec.stderr, /is paused, unpause the container before exec/);
  const again = await d.docker(['pause', 'ticker']);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /is already paused/);

  await ok(d.docker(['unpause', 'ticker']));
  await sleep(800);
  assert.ok((await counter('ticker')) > frozen + 3, 'the counter did not go on after unpause');
  const not = await d.docker(['unpause', 'ticker']);
  assert.equal(not.code, 1);
  assert.match(not.stderr, /is not paused/);

  const events = await ok(d.docker(['events', '--since', '0', '--until', String(Math.ceil(Date.now() / 1000)), '--filter', 'container=ticker', '--format', '{{.Action}}']));
  assert.deepEqual(events.split('\n').filter((a) => a === 'pause' || a === 'unpause'), ['pause', 'unpause']);
  await ok(d.docker(['rm', '-f', 'ticker']));
});

test('a container paused before a kill -9 of berthd is paused for the next daemon, and unpause lets it go on', { timeout: 120_000 }, async () => {
  // The freezer is set by berthd itself (not runc pause); runc's state, which the next daemon reads, must agree.
  await ok(d.docker(['run', '-d', '--name', 'frozen-over', 'busybox', 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done']));
  await sleep(500);
  await ok(d.docker(['pause', 'frozen-over']));
  const frozen = await counter('frozen-over');
  await d.kill9();
  await d.restart();
  assert.equal((await inspect('frozen-over')).State.Status, 'paused');
  assert.equal(await counter('frozen-over'), frozen, 'the counter advanced while paused');
  await ok(d.docker(['unpause', 'frozen-over']));
  await sleep(800);
  assert.ok((await counter('frozen-over')) > frozen + 3, 'the counter did not go on after unpause');
  await ok(d.docker(['rm', '-f', 'frozen-over']));
});

test('stop, kill and rm -f end a paused container as dockerd does', { timeout: 120_000 }, async () => {
  for (const [verb, args] of [['stop', ['stop', '-t', '1']], ['kill', ['kill']], ['rm', ['rm', '-f']]] as const) {
    const name = `frozen-${verb}`;
    await ok(d.docker(['run', '-d', '--name', name, 'busybox', 'sleep', '1000']));
    await ok(d.docker(['pause', name]));
    const t0 = Date.now();
    await ok(d.docker([...args, name]));
    // Frozen, the process would never take the SIGKILL: it must be thawed for it.
    assert.ok(Date.now() - t0 < 4000, `${verb} of a paused container took ${Date.now() - t0} ms`);
    if (verb !== 'rm') {
      const s = (await inspect(name)).State;
      assert.equal(s.Status, 'exited', `${verb}: ${JSON.stringify(s)}`);
      await ok(d.docker(['rm', name]));
    } else {
      assert.equal((await d.docker(['inspect', name])).code, 1);
    }
  }
  assert.deepEqual(leftovers(d), { mounts: [], cgroups: [], processes: [], files: [] });
});

test('top lists the container processes, with ps options; a stopped container is refused', { timeout: 60_000 }, async () => {
  await ok(d.docker(['run', '-d', '--name', 'tops', 'busybox', 'sh', '-c', 'sleep 1001 & sleep 1002; echo done']));
  await sleep(300);
  const out = await ok(d.docker(['top', 'tops']));
  const [head, ...rows] = out.trim().split('\n');
  assert.match(head!, /^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD$/);
  const cmds = rows.map((r) => r.trim().split(/\s+/).slice(7).join(' '));
  assert.ok(cmds.includes('sleep 1001') && cmds.includes('sleep 1002'), out);
  assert.ok(cmds.some((c) => c.startsWith('sh -c')), out);
  assert.equal(rows.length, 3, out);

  const custom = await ok(d.berth(['top', 'tops', '-o', 'pid,comm']));
  assert.match(custom.split('\n')[0]!, /^PID\s+COMMAND/);
  assert.equal(custom.trim().split('\n').length, 4);

  await ok(d.docker(['stop', '-t', '0', 'tops']));
  const stopped = await d.docker(['top', 'tops']);
  assert.equal(stopped.code, 1);
  assert.match(stopped.stderr, /is not running/);
  await ok(d.docker(['rm', 'tops']));
});

/** The first n JSON lines of a streamed response; then the connection is dropped. */
function firstLines(p: string, n: number): Promise<any[]> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath: d.socket, path: p, timeout: 10_000 }, (res) => {
      let buf = '';
      const docs: any[] = [];
      res.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0 && docs.length < n) {
          docs.push(JSON.parse(buf.slice(0, nl)));
          buf = buf.slice(nl + 1);
        }
        if (docs.length >= n) {
          req.destroy();
          resolve(docs);
        }
      });
      res.on('end', () => reject(new Error(`stream ended after ${docs.length} documents`)));
    });
    req.on('timeout', () => req.destroy(new Error('stats stream timed out')));
    req.on('error', (e) => { if (!req.destroyed || e.message.includes('timed out')) reject(e); });
  });
}

function cgroupFile(controller: string, id: string, file: string): string {
  const mount = cgroupMounts().find((m) => m.controllers.includes(controller));
  assert.ok(mount, `no ${controller} cgroup mount`);
  return fs.readFileSync(path.join(mount.path, d.cgroupParent, id, file), 'utf8').trim();
}

test('stats --no-stream agrees with the cgroup files; the API gives the one-shot and stream forms', { timeout: 120_000 }, async () => {
  // A steady memory user: 20 MB in /dev/shm, charged to the container and not reclaimable page cache.
  const id = (await ok(d.docker(['run', '-d', '--name', 'st', '--memory', '256m', '--pids-limit', '50', 'busybox', 'sh', '-c', 'head -c 20000000 /dev/zero > /dev/shm/f; sleep 1000']))).trim();
  await sleep(1500);
  const line = await ok(d.docker(['stats', '--no-stream', '--format', '{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.MemPerc}}|{{.PIDs}}|{{.NetIO}}|{{.BlockIO}}', 'st']));
  const [name, cpu, mem, memPerc, pids] = line.trim().split('|');
  assert.equal(name, 'st');
  assert.match(cpu!, /^\d+\.\d\d%$/);
  assert.equal(pids, cgroupFile('pids', id, 'pids.current'));
  const [usage, limit] = mem!.split(' / ');
  assert.equal(limit, '256MiB');
  const toBytes = (s: string) => {
    const m = /^([\d.]+)(B|KiB|MiB|GiB)$/.exec(s);
    assert.ok(m, s);
    return Number(m[1]) * { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[m[2] as 'B'];
  };
  const usageBytes = toBytes(usage!);
  const raw = Number(cgroupFile('memory', id, 'memory.usage_in_bytes'));
  const inactive = Number(/^total_inactive_file (\d+)$/m.exec(cgroupFile('memory', id, 'memory.stat'))?.[1] ?? 0);
  const want = raw - inactive;
  assert.ok(Math.abs(usageBytes - want) <= want * 0.05, `stats says ${usage}, the cgroup ${want}`);
  assert.ok(usageBytes > 20e6, `the 20 MB the shell holds are not counted: ${usage}`);
  const perc = Number(memPerc!.replace('%', ''));
  assert.ok(Math.abs(perc - (usageBytes / (256 * 1024 ** 2)) * 100) < 0.5, `MEM % ${memPerc} for ${usage} of 256MiB`);

  const header = await ok(d.docker(['stats', '--no-stream', 'st']));
  assert.match(header.split('\n')[0]!, /^CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+NET I\/O\s+BLOCK I\/O\s+PIDS$/);

  const oneShot = await d.api('GET', '/containers/st/stats?stream=false&one-shot=true');
  assert.equal(oneShot.status, 200);
  assert.equal(oneShot.body.id, id);
  assert.equal(oneShot.body.name, '/st');
  assert.equal(oneShot.body.preread, '0001-01-01T00:00:00Z');
  assert.equal(oneShot.body.pids_stats.limit, 50);
  assert.ok(oneShot.body.cpu_stats.cpu_usage.total_usage > 0);
  assert.ok(oneShot.body.cpu_stats.system_cpu_usage > 0);
  assert.equal(oneShot.body.memory_stats.limit, 256 * 1024 ** 2);

  const pair = await d.api('GET', '/containers/st/stats?stream=false');
  assert.notEqual(pair.body.preread, '0001-01-01T00:00:00Z');
  assert.ok(pair.body.cpu_stats.system_cpu_usage > pair.body.precpu_stats.system_cpu_usage);

  // The stream: one document per second, each with the previous one as precpu.
  const docs = await firstLines(`/containers/st/stats`, 3);
  assert.equal(docs[0].preread, '0001-01-01T00:00:00Z');
  assert.equal(docs[1].preread, docs[0].read);
  assert.equal(docs[2].precpu_stats.cpu_usage.total_usage, docs[1].cpu_stats.cpu_usage.total_usage);
  const gap = Date.parse(docs[2].read) - Date.parse(docs[1].read);
  assert.ok(gap >= 900 && gap < 2000, `documents ${gap} ms apart`);
  await ok(d.docker(['rm', '-f', 'st']));
  const gone = await d.api('GET', '/containers/st/stats?stream=false');
  assert.equal(gone.status, 404);
});

test('rename and update show in inspect, with docker errors for bad input', { timeout: 120_000 }, async () => {
  await ok(d.docker(['run', '-d', '--name', 'old', 'busybox', 'sleep', '1000']));
  await ok(d.docker(['run', '-d', '--name', 'other', 'busybox', 'sleep', '1000']));
  await ok(d.docker(['rename', 'old', 'new']));
  assert.equal((await inspect('new')).Name, '/new');
  assert.equal((await d.docker(['inspect', 'old'])).code, 1);
  const taken = await d.docker(['rename', 'new', 'other']);
  assert.equal(taken.code, 1);
  assert.match(taken.stderr, /The container name "\/other" is already in use/);
  const bad = await d.docker(['rename', 'new', 'no/slash']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /Invalid container name/);
  const ev = await ok(d.docker(['events', '--since', '0', '--until', String(Math.ceil(Date.now() / 1000)), '--filter', 'event=rename', '--format', '{{.Actor.Attributes.oldName}}>{{.Actor.Attributes.name}}']));
  assert.equal(ev.trim(), '/old>new');

  await ok(d.docker(['update', '--memory', '64m', '--memory-swap', '128m', '--cpus', '0.5', '--pids-limit', '20', '--restart', 'on-failure:3', 'new']));
  const h = (await inspect('new')).HostConfig;
  assert.equal(h.Memory, 64 * 1024 ** 2);
  assert.equal(h.MemorySwap, 128 * 1024 ** 2);
  assert.equal(h.NanoCpus, 5e8);
  assert.equal(h.PidsLimit, 20);
  assert.deepEqual(h.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 3 });
  const id = (await inspect('new')).Id;
  // The running container has the new limits now.
  assert.equal(cgroupFile('memory', id, 'memory.limit_in_bytes'), String(64 * 1024 ** 2));
  assert.equal(cgroupFile('pids', id, 'pids.max'), '20');
  assert.equal(cgroupFile('cpu', id, 'cpu.cfs_quota_us'), '50000');
  const limited = await d.docker(['exec', 'new', 'sh', '-c', 'for i in $(seq 30); do sleep 5 & done; wait']);
  assert.notEqual(limited.code, 0, 'pids-limit 20 let 30 processes start');

  const small = await d.docker(['update', '--memory', '1m', 'new']);
  assert.equal(small.code, 1);
  assert.match(small.stderr, /Minimum memory limit allowed is 6MB/);
  const swap = await d.docker(['update', '--memory', '200m', 'new']);
  assert.equal(swap.code, 1);
  assert.match(swap.stderr, /Memory limit should be smaller than already set memoryswap limit/);
  const missing = await d.docker(['update', '--memory', '64m', 'nosuch']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /No such container: nosuch/);
  const notYet = await d.docker(['update', '--blkio-weight', '300', 'new']);
  assert.equal(notYet.code, 1);
  assert.match(notYet.stderr, /--blkio-weight/);
  assert.equal((await inspect('new')).HostConfig.Memory, 64 * 1024 ** 2, 'a refused update changed the record');
  await ok(d.docker(['rm', '-f', 'new', 'other']));
});

test('a paused container is unhealthy, as in dockerd; unpause brings its checks back', { timeout: 60_000 }, async () => {
  await ok(d.docker(['run', '-d', '--name', 'hp', '--health-cmd', 'true', '--health-interval', '200ms', 'busybox', 'sleep', '1000']));
  const status = async () => (await inspect('hp')).State.Health.Status as string;
  const until = async (want: string) => {
    for (let i = 0; i < 50 && (await status()) !== want; i++) await sleep(200);
    assert.equal(await status(), want);
  };
  await until('healthy');
  await ok(d.docker(['pause', 'hp']));
  assert.equal(await status(), 'unhealthy');
  await ok(d.docker(['unpause', 'hp']));
  await until('healthy');
  await ok(d.docker(['rm', '-f', 'hp']));
});

test('a paused container of a daemon killed with -9 is still cleaned up (thawed, then killed)', { timeout: 120_000 }, async () => {
  const own = await startDaemon();
  let pid = 0;
  try {
    await loadTestImages(own);
    const run = await own.docker(['run', '-d', '--network', 'none', 'busybox', 'sleep', '1000']);
    assert.equal(run.code, 0, run.stderr);
    pid = JSON.parse((await own.docker(['inspect', run.stdout.trim()])).stdout)[0].State.Pid;
    assert.equal((await own.docker(['pause', run.stdout.trim()])).code, 0);
    await own.kill9();
  } finally {
    await own.stop();
  }
  const state = fs.existsSync(`/proc/${pid}`) ? /^State:.*$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[0] : 'gone';
  assert.ok(state === 'gone' || /zombie/.test(state ?? ''), `the frozen process outlived the clean-up: ${state}`);
  assert.deepEqual(cgroupMounts().map((m) => path.join(m.path, own.cgroupParent)).filter((p) => fs.existsSync(p)), []);
});
