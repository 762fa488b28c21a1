/**
 * Self-test of the e2e harness, runnable before the real daemon exists: the image tars, the hello
 * program, leftovers()/cleanupHost() against real mounts, cgroups and processes, and the daemon
 * lifecycle (start, api, docker CLI env, kill9, restart, stop, load images) against a tiny fake
 * berthd written to a temp dir.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, describe, test } from 'node:test';
import tar from 'tar-stream';
import { MNT_DETACH, mount, umount } from '../../src/sys/index.js';
import {
  cgroupMounts,
  cleanupHost,
  leftovers,
  loadTestImages,
  logTail,
  paths,
  repoRoot,
  run,
  startDaemon,
  stopAllDaemons,
  testImages,
  type DaemonTarget,
} from '../harness.js';

const PT_DYNAMIC = 2;
const PT_INTERP = 3;

/** The p_type of each program header of a 64-bit little-endian ELF file. */
function elfProgramHeaderTypes(bin: Buffer): number[] {
  assert.equal(bin[4], 2, 'ELFCLASS64');
  assert.equal(bin[5], 1, 'little-endian');
  const phoff = Number(bin.readBigUInt64LE(0x20));
  const phentsize = bin.readUInt16LE(0x36);
  const phnum = bin.readUInt16LE(0x38);
  assert.ok(phnum > 0 && phoff + phnum * phentsize <= bin.length, 'program headers inside the file');
  return Array.from({ length: phnum }, (_, i) => bin.readUInt32LE(phoff + i * phentsize));
}

interface Entry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname: string | null;
  data: Buffer;
}

async function readTar(file: string): Promise<Entry[]> {
  const entries: Entry[] = [];
  const ex = tar.extract();
  ex.on('entry', (h, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c) => chunks.push(c as Buffer));
    stream.on('end', () => {
      entries.push({
        name: h.name,
        type: h.type ?? 'file',
        mode: h.mode ?? 0,
        uid: h.uid ?? -1,
        gid: h.gid ?? -1,
        mtime: h.mtime ? h.mtime.getTime() : -1,
        linkname: h.linkname ?? null,
        data: Buffer.concat(chunks),
      });
      next();
    });
  });
  await pipeline(fs.createReadStream(file), ex);
  return entries;
}

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

function tmpDir(prefix: string): string {
  return fs.mkdtempSync(`/tmp/${prefix}`);
}

after(() => stopAllDaemons());

describe('test images', () => {
  test('hello-world tar holds only a small static /hello that prints the greeting', async () => {
    const [hello] = await testImages();
    const entries = await readTar(hello.tar);
    assert.deepEqual(
      entries.map((e) => [e.name, e.type, e.mode, e.uid, e.gid]),
      [['hello', 'file', 0o755, 0, 0]],
    );
    const bin = entries[0].data;
    assert.equal(bin.subarray(0, 4).toString('latin1'), '\x7fELF');
    assert.ok(bin.length < 64 * 1024, `hello is ${bin.length} bytes`);

    const dir = tmpDir('hello-selftest-');
    try {
      const exe = path.join(dir, 'hello');
      fs.writeFileSync(exe, bin, { mode: 0o755 });
      const r = await run(exe, []);
      assert.equal(r.code, 0);
      assert.equal(r.stderr, '');
      assert.match(r.stdout, /^\nHello from berth!\n/);
      assert.match(r.stdout, /berth run -it busybox sh/);
      assert.match(r.stdout, / 4\. /);
      // No interpreter: it must run in an image that has nothing but /hello.
      assert.deepEqual(elfProgramHeaderTypes(bin).filter((t) => t === PT_INTERP || t === PT_DYNAMIC), []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('busybox tar is a usable, deterministic rootfs', async () => {
    const [, busybox] = await testImages();
    const entries = await readTar(busybox.tar);
    const by = new Map(entries.map((e) => [e.name, e]));
    for (const e of entries) {
      assert.ok(!e.name.startsWith('/') && !e.name.startsWith('./'), e.name);
      assert.equal(e.mtime, 0, e.name);
    }
    assert.equal(by.get('bin/busybox')?.mode, 0o755);
    assert.equal(by.get('bin/sh')?.type, 'symlink');
    assert.equal(by.get('bin/sh')?.linkname, 'busybox');
    assert.ok(entries.filter((e) => e.type === 'symlink').length > 200);
    assert.equal(by.get('tmp/')?.mode, 0o1777);
    for (const d of ['proc/', 'sys/', 'dev/', 'root/', 'home/', 'var/']) assert.equal(by.get(d)?.type, 'directory', d);
    assert.equal(by.get('home/berth/')?.uid, 1000);
    const passwd = by.get('etc/passwd')!.data.toString();
    assert.match(passwd, /^root:x:0:0:root:\/root:\/bin\/sh$/m);
    assert.match(passwd, /^nobody:x:65534:65534:nobody:\/home:\/bin\/false$/m);
    assert.match(passwd, /^berth:x:1000:1000:/m);
    assert.match(by.get('etc/group')!.data.toString(), /^berth:x:1000:$/m);
    for (const e of entries) if (e.name !== 'home/berth/') assert.equal(e.uid, 0, e.name);

    const dir = tmpDir('busybox-selftest-');
    try {
      // Same input, same bytes (so the same diffID).
      const again = path.join(dir, 'again.tar');
      const r = await run(path.join(repoRoot, 'scripts/mkimage-busybox.sh'), [again]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(sha256(again), sha256(busybox.tar));
      // The rootfs works on its own: a shell from it, with its applets, in a chroot.
      const rootfs = path.join(dir, 'rootfs');
      fs.mkdirSync(rootfs);
      assert.equal((await run('tar', ['-xf', busybox.tar, '-C', rootfs])).code, 0);
      const sh = await run('chroot', [rootfs, '/bin/sh', '-c', 'cd /tmp && echo hi > f && cat f && ls -ld /tmp && grep -c : /etc/passwd']);
      assert.equal(sh.code, 0, sh.stderr);
      assert.match(sh.stdout, /^hi\ndrwxrwxrwt .*\n3\n$/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('leftovers and cleanupHost', () => {
  test('find and remove mounts, cgroups, monitor processes and container files', async () => {
    const root = tmpDir('berth-e2e-');
    const t: DaemonTarget = {
      root,
      dataRoot: path.join(root, 'data'),
      execRoot: path.join(root, 'exec'),
      cgroupParent: `berth-e2e-selftest-${process.pid}`,
    };
    const children: ChildProcess[] = [];
    try {
      assert.deepEqual(leftovers(t), { mounts: [], cgroups: [], processes: [], files: [] });

      // Nested mounts, one with a space in its name (mountinfo escapes it).
      const m1 = path.join(t.dataRoot, 'm 1');
      const m2 = path.join(m1, 'm2');
      fs.mkdirSync(m1, { recursive: true });
      mount('tmpfs', m1, 'tmpfs', 0, 'size=1m');
      fs.mkdirSync(m2);
      mount('tmpfs', m2, 'tmpfs', 0, 'size=1m');

      // A "monitor" naming the exec root, with a child of its own.
      const id = 'c'.repeat(64);
      fs.mkdirSync(path.join(t.execRoot, 'c', id), { recursive: true });
      fs.mkdirSync(path.join(t.execRoot, 'c', 'exits', 'empty'), { recursive: true });
      fs.writeFileSync(path.join(t.execRoot, 'c', 'exits', id), '0');
      fs.mkdirSync(path.join(t.execRoot, 'containers'), { recursive: true });
      fs.writeFileSync(path.join(t.execRoot, 'containers', 'stray'), '');
      const monitor = spawn('/bin/sh', ['-c', 'sleep 1000; :', 'sh', path.join(t.execRoot, 'c', id)], {
        argv0: 'conmon',
        stdio: 'ignore',
      });
      children.push(monitor);

      // A "container" process in a cgroup under the parent, in two hierarchies.
      const sleeper = spawn('sleep', ['1000'], { stdio: 'ignore' });
      children.push(sleeper);
      // Every hierarchy kind the host uses: v1 controllers and the hybrid's unified cgroup2, or the
      // one cgroup2 tree of a pure v2 host.
      const cgs = cgroupMounts()
        .filter((h) => h.version === 2 || h.controllers.includes('pids') || h.controllers.includes('memory'))
        .map((h) => path.join(h.path, t.cgroupParent, 'ctr'));
      assert.ok(cgs.length > 0, 'no cgroup hierarchy found on this host');
      for (const cg of cgs) {
        fs.mkdirSync(cg, { recursive: true });
        fs.writeFileSync(path.join(cg, 'cgroup.procs'), String(sleeper.pid));
      }
      // Let sh fork its sleep before we look.
      await new Promise((r) => setTimeout(r, 200));

      const l = leftovers(t);
      assert.deepEqual(l.mounts, [m1, m2]);
      assert.deepEqual(l.cgroups.sort(), cgs.map((c) => fs.realpathSync(c)).sort());
      assert.equal(l.processes.length, 1);
      assert.match(l.processes[0], new RegExp(`^${monitor.pid} conmon `));
      assert.deepEqual(l.files, [id, `exits/${id}`, 'containers/stray']);

      cleanupHost(t);
      assert.deepEqual(leftovers(t), { mounts: [], cgroups: [], processes: [], files: [] });
      assert.ok(!fs.existsSync(root));
      for (const cg of cgs) assert.ok(!fs.existsSync(path.dirname(cg)), cg);
      for (const c of children) {
        if (c.exitCode === null && c.signalCode === null) await new Promise((r) => c.once('exit', r));
        assert.equal(c.signalCode, 'SIGKILL');
      }
    } finally {
      for (const c of children) c.kill('SIGKILL');
      for (const m of [path.join(t.dataRoot, 'm 1', 'm2'), path.join(t.dataRoot, 'm 1')]) {
        try {
          umount(m, MNT_DETACH);
        } catch {}
      }
      for (const h of ['pids', 'memory']) {
        for (const p of [`/sys/fs/cgroup/${h}/${t.cgroupParent}/ctr`, `/sys/fs/cgroup/${h}/${t.cgroupParent}`]) {
          try {
            fs.rmdirSync(p);
          } catch {}
        }
      }
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

/**
 * A stand-in berthd: serves /_ping, /version, image import and inspect on the -H socket, writes the
 * pidfile, and leaves a tmpfs mounted under its data root on exit — a sloppy daemon stop() must
 * still clean up after.
 */
const fakeDaemon = `#!/usr/bin/env node
const http = require('node:http');
const fs = require('node:fs');
const { execFileSync } = require('node:child_process');
const argv = process.argv.slice(2);
const arg = (f) => argv[argv.indexOf(f) + 1];
console.log('fake berthd argv: ' + argv.join(' '));
if (argv.includes('--fail')) { console.error('boom: refusing to start'); process.exit(1); }
const sock = arg('-H').replace('unix://', '');
const shm = arg('--data-root') + '/shm';
fs.mkdirSync(shm, { recursive: true });
execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', shm]);
const images = new Map();
try { fs.unlinkSync(sock); } catch {}
const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  const p = u.pathname.replace(/^\\/v1\\.\\d+/, '');
  const json = (status, v) => { res.writeHead(status, { 'Content-Type': 'application/json', 'Api-Version': '1.50' }); res.end(JSON.stringify(v)); };
  if (p === '/_ping') { res.writeHead(200, { 'Api-Version': '1.50', 'Content-Type': 'text/plain' }); return res.end(req.method === 'HEAD' ? undefined : 'OK'); }
  if (p === '/version') return json(200, { Version: 'fake-0', ApiVersion: '1.50', MinAPIVersion: '1.24', Os: 'linux', Arch: 'amd64' });
  if (p === '/images/create' && req.method === 'POST') {
    let n = 0;
    req.on('data', (c) => { n += c.length; });
    req.on('end', () => {
      const ref = u.searchParams.get('repo') + ':' + u.searchParams.get('tag');
      images.set(ref, { bytes: n, changes: u.searchParams.getAll('changes') });
      console.log('imported ' + ref + ' ' + n + ' ' + JSON.stringify(u.searchParams.getAll('changes')));
      json(200, { status: 'sha256:' + '0'.repeat(64) });
    });
    return;
  }
  const m = /^\\/images\\/(.+)\\/json$/.exec(p);
  if (m && images.has(decodeURIComponent(m[1]))) return json(200, { RepoTags: [decodeURIComponent(m[1])], ...images.get(decodeURIComponent(m[1])) });
  json(404, { message: 'No such image: ' + (m ? decodeURIComponent(m[1]) : p) });
});
server.listen(sock, () => fs.writeFileSync(arg('--pidfile'), String(process.pid)));
process.on('SIGTERM', () => { console.log('fake berthd: SIGTERM'); server.close(() => process.exit(0)); });
`;

describe('daemon lifecycle (fake berthd)', () => {
  const saved = { ...paths };
  const dir = tmpDir('berth-fake-');
  const fake = path.join(dir, 'berthd');
  fs.writeFileSync(fake, fakeDaemon, { mode: 0o755 });
  after(() => {
    Object.assign(paths, saved);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('start, talk, kill -9, restart, load images, stop', async () => {
    paths.berthd = fake;
    paths.berth = '/bin/sh';
    const d = await startDaemon({ config: { debug: true } });
    let stopped = false;
    try {
      assert.match(d.root, /^\/tmp\/berth-e2e-[a-z0-9]{4}$/);
      // The deepest unix socket the runtime makes: conmon's attach socket (sun_path holds 107 bytes).
      assert.ok(Buffer.byteLength(path.join(d.execRoot, 'containers', 'f'.repeat(64), 'attach')) <= 107);
      assert.ok(Buffer.byteLength(path.join(d.execRoot, 'c', 'f'.repeat(64), 'attach')) <= 107);
      assert.equal(d.host, `unix://${d.socket}`);
      assert.equal(d.env.DOCKER_HOST, d.host);
      assert.equal(d.env.BERTH_HOST, d.host);
      assert.match(d.cgroupParent, /^berth-e2e-[0-9a-f]{8}$/);
      assert.equal(d.pid, Number(fs.readFileSync(path.join(d.execRoot, 'berthd.pid'), 'utf8')));
      assert.match(logTail(d), /--config-file \S+daemon\.json/);
      assert.deepEqual(JSON.parse(fs.readFileSync(path.join(d.root, 'daemon.json'), 'utf8')), { debug: true });

      const ping = await d.api('GET', '/_ping');
      assert.deepEqual([ping.status, ping.body], [200, 'OK']);
      const missing = await d.api('GET', '/v1.50/images/nope/json');
      assert.equal(missing.status, 404);
      assert.deepEqual(missing.body, { message: 'No such image: nope' });

      // The real docker CLI finds the daemon through env.
      const v = await d.docker(['version', '--format', '{{.Server.Version}}']);
      assert.equal(v.code, 0, v.stderr);
      assert.equal(v.stdout.trim(), 'fake-0');
      // berth() passes env and stdin (bin/berth stood in for by sh here).
      const b = await d.berth(['-c', 'echo "$BERTH_HOST"; cat'], { input: 'from stdin' });
      assert.deepEqual(b, { code: 0, stdout: `${d.host}\nfrom stdin`, stderr: '' });
      await assert.rejects(d.berth(['-c', 'sleep 5'], { timeoutMs: 200 }), /timed out after 200 ms/);

      const pid1 = d.pid;
      await d.kill9();
      assert.ok(!fs.existsSync(`/proc/${pid1}/cmdline`) || fs.readFileSync(`/proc/${pid1}/stat`, 'utf8').includes(') Z'));
      await d.restart();
      assert.notEqual(d.pid, pid1);
      assert.equal((await d.api('GET', '/_ping')).status, 200);
      assert.equal(logTail(d, 1000).match(/harness: .* starting/g)?.length, 2);

      await loadTestImages(d);
      const hello = await d.api('GET', '/images/hello-world:latest/json');
      assert.equal(hello.status, 200);
      assert.deepEqual(hello.body.changes, ['CMD ["/hello"]']);
      assert.equal(hello.body.bytes, fs.statSync((await testImages())[0].tar).size);
      const bb = await d.api('GET', '/images/busybox:latest/json');
      assert.deepEqual(bb.body.changes, ['CMD ["sh"]']);
      await loadTestImages(d); // already there: not imported again
      assert.equal(logTail(d, 1000).match(/imported /g)?.length, 2);

      // The fake leaves a tmpfs under its data root; stop() must remove it and everything else.
      assert.equal(leftovers(d).mounts.length, 1);
      const t = { root: d.root, dataRoot: d.dataRoot, execRoot: d.execRoot, cgroupParent: d.cgroupParent };
      await d.stop();
      stopped = true;
      assert.deepEqual(leftovers(t), { mounts: [], cgroups: [], processes: [], files: [] });
      assert.ok(!fs.existsSync(t.root));
    } finally {
      if (!stopped) await d.stop();
    }
  });

  test('a daemon that dies at start-up fails fast with its log, leaving nothing', async () => {
    paths.berthd = fake;
    const before = fs.readdirSync('/tmp').filter((n) => n.startsWith('berth-e2e-')).sort();
    const t0 = Date.now();
    await assert.rejects(startDaemon({ extraArgs: ['--fail'] }), /exited with code 1 before answering \/_ping[\s\S]*boom: refusing to start/);
    assert.ok(Date.now() - t0 < 5000);
    assert.deepEqual(fs.readdirSync('/tmp').filter((n) => n.startsWith('berth-e2e-')).sort(), before);
  });

  test('a missing berthd binary is reported clearly', async () => {
    paths.berthd = path.join(dir, 'no-such-berthd');
    await assert.rejects(startDaemon(), /cannot start .*no-such-berthd: spawn .* ENOENT/);
  });
});
