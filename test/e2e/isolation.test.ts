/**
 * Docker's default isolation, tried from inside containers with the docker CLI: the battery of
 * escapes fails in a default container (seccomp, capabilities, device cgroup, read-only /proc and
 * /sys, namespaces) and works with --privileged where Docker with a full bounding set allows it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDaemon, loadTestImages, leftovers, paths, repoRoot, run, testImages, type Daemon } from '../harness.js';

let d: Daemon;
let work: string;
/** The busybox image plus /probe (test/fixtures/isolation-probe.c): keyctl and ptrace; and /i386-probe (test/fixtures/i386-probe.S). */
const PROBE = 'isolation-probe:latest';

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-isolation-'));
  const cc = await run('gcc', ['-static', '-O2', '-Wall', '-Werror', '-o', path.join(work, 'probe'), path.join(repoRoot, 'test/fixtures/isolation-probe.c')]);
  assert.equal(cc.code, 0, `gcc: ${cc.stderr}`);
  const as = await run('as', ['--32', '-o', path.join(work, 'i386-probe.o'), path.join(repoRoot, 'test/fixtures/i386-probe.S')]);
  assert.equal(as.code, 0, `as --32: ${as.stderr}`);
  const ld = await run('ld', ['-m', 'elf_i386', '-o', path.join(work, 'i386-probe'), path.join(work, 'i386-probe.o')]);
  assert.equal(ld.code, 0, `ld -m elf_i386: ${ld.stderr}`);
  const busybox = (await testImages()).find((i) => i.ref.startsWith('busybox'))!;
  const tar = path.join(work, 'probe.tar');
  fs.copyFileSync(busybox.tar, tar);
  const add = await run('tar', ['-C', work, '--owner=0', '--group=0', '-rf', tar, 'probe', 'i386-probe']);
  assert.equal(add.code, 0, add.stderr);
  const imp = await d.docker(['import', '-c', 'CMD ["sh"]', tar, PROBE]);
  assert.equal(imp.code, 0, imp.stderr);
});

after(async () => {
  await d?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

async function sh(args: string[], script: string) {
  return d.docker(['run', '--rm', ...args, PROBE, 'sh', '-c', script]);
}

/** A script that must fail in a default container (with a permission error) and succeed with the given flags. */
async function refusedThenAllowed(name: string, script: string, allowed: string[] = ['--privileged'], also: string[] = []) {
  const plain = await sh(also, script);
  assert.notEqual(plain.code, 0, `${name}: worked in a default container:\n${plain.stdout}${plain.stderr}`);
  assert.match(plain.stdout + plain.stderr, /not permitted|permission denied|read-only file system/i, `${name}: ${plain.stdout}${plain.stderr}`);
  const priv = await sh([...allowed, ...also], script);
  assert.equal(priv.code, 0, `${name} with ${allowed.join(' ')}: ${priv.stdout}${priv.stderr}`);
}

/** The host's first real disk (major:minor), for the mknod escape. */
function hostBlockDevice(): { name: string; major: number; minor: number } {
  for (const name of fs.readdirSync('/sys/block')) {
    if (/^(loop|ram|zram|nbd)/.test(name)) continue;
    if (Number(fs.readFileSync(`/sys/block/${name}/size`, 'utf8')) === 0) continue;
    const [major, minor] = fs.readFileSync(`/sys/block/${name}/dev`, 'utf8').trim().split(':').map(Number);
    return { name, major: major!, minor: minor! };
  }
  throw new Error('this machine has no block device to test with');
}

test('seccomp: filtering (2) by default; 0 with seccomp=unconfined and with --privileged', { timeout: 60_000 }, async () => {
  const mode = async (args: string[]) => (await sh(args, 'grep Seccomp: /proc/self/status')).stdout.trim();
  assert.match(await mode([]), /^Seccomp:\s+2$/);
  assert.match(await mode(['--security-opt', 'seccomp=unconfined']), /^Seccomp:\s+0$/);
  assert.match(await mode(['--privileged']), /^Seccomp:\s+0$/);
  // exec'd processes inherit the container's filter
  const id = (await d.docker(['run', '-d', PROBE, 'sleep', '60'])).stdout.trim();
  const ex = await d.docker(['exec', id, 'grep', 'Seccomp:', '/proc/self/status']);
  assert.match(ex.stdout, /^Seccomp:\s+2$/m);
  await d.docker(['rm', '-f', id]);
});

test('seccomp: an i386 program runs under the default profile, and its gated calls stay gated', { timeout: 60_000 }, async () => {
  // Without SCMP_ARCH_X86 in the filter the kernel would kill it (SIGSYS, exit 159) at its first call.
  const plain = await d.docker(['run', '--rm', PROBE, '/i386-probe']);
  assert.equal(plain.code, 0, `exit ${plain.code} (10: unshare worked, 3: stat64 failed, 4: unshare failed but not with EPERM): ${plain.stdout}${plain.stderr}`);
  assert.equal(plain.stdout, 'i386 ok\n');
  const unconfined = await d.docker(['run', '--rm', '--security-opt', 'seccomp=unconfined', PROBE, '/i386-probe']);
  assert.equal(unconfined.code, 10, `unconfined: the filter is what refused unshare: ${unconfined.stdout}${unconfined.stderr}`);
});

test('battery: mount, unshare -U and keyctl fail by default (EPERM, not ENOENT), work with --privileged', { timeout: 120_000 }, async () => {
  await refusedThenAllowed('mount', 'mount -t tmpfs t /tmp');
  await refusedThenAllowed('unshare -U', 'unshare -U true');
  await refusedThenAllowed('keyctl', '/probe keyctl');
  // Only the filter stood between a default container and a user namespace: without it, the kernel allows one.
  assert.equal((await sh(['--security-opt', 'seccomp=unconfined'], 'unshare -U true')).code, 0);
  // SYS_ADMIN opens mount again, as in Docker's profile
  assert.equal((await sh(['--cap-add', 'SYS_ADMIN'], 'mount -t tmpfs t /tmp')).code, 0);
});

/** Whether this host lets even its own root open a device node made with mknod (this sandbox does not). */
async function hostOpensMknodDevices(dev: { major: number; minor: number }): Promise<boolean> {
  const node = path.join(work, 'host-node');
  const r = await run('sh', ['-c', `mknod ${node} b ${dev.major} ${dev.minor} && dd if=${node} of=/dev/null bs=512 count=1; s=$?; rm -f ${node}; exit $s`]);
  return r.code === 0;
}

test('battery: a host block device made with mknod cannot be read; --privileged sees the host devices', { timeout: 60_000 }, async () => {
  const dev = hostBlockDevice();
  const mknodRead = `mknod /tmp/disk b ${dev.major} ${dev.minor} && dd if=/tmp/disk of=/dev/null bs=512 count=1`;
  const plain = await sh([], mknodRead);
  assert.notEqual(plain.code, 0, 'read a host disk through mknod in a default container');
  assert.match(plain.stderr, /not permitted/i);
  assert.notEqual((await sh([], `test -e /dev/${dev.name}`)).code, 0, `/dev/${dev.name} visible in a default container`);
  const priv = await sh(['--privileged'], `ls -l /dev/${dev.name} && dd if=/dev/${dev.name} of=/dev/null bs=512 count=1`);
  assert.match(priv.stdout, new RegExp(`^b.*\\s${dev.major},\\s+${dev.minor}\\s.*/dev/${dev.name}$`, 'm'), `privileged container lacks the host's /dev/${dev.name}`);
  if (await hostOpensMknodDevices(dev)) {
    assert.equal(priv.code, 0, `privileged container cannot read /dev/${dev.name}: ${priv.stderr}`);
    assert.equal((await sh(['--privileged'], mknodRead)).code, 0, 'privileged container cannot read a node it made');
  } else {
    // This host refuses to open a block device node made with mknod even to its own root (only the
    // host's devtmpfs nodes open), so the read cannot work in any container here, privileged or not,
    // under dockerd as under berth. The node is there and the device cgroup allows it:
    assert.match(priv.stderr, /not permitted/i);
    const list = await sh(['--privileged'], 'cat /sys/fs/cgroup/devices/devices.list 2>/dev/null || echo "a *:* rwm"');
    assert.match(list.stdout, /^a \*:\* rwm$/m);
  }
});

test('battery: /proc/sys, /proc/sysrq-trigger and /sys are read-only by default, writable with --privileged', { timeout: 60_000 }, async () => {
  // kernel.hostname is the container's own (UTS namespace), so writing it harms nothing on the host
  await refusedThenAllowed('/proc/sys write', 'echo probe > /proc/sys/kernel/hostname');
  if (fs.existsSync('/proc/sysrq-trigger')) {
    const r = await sh([], 'echo h > /proc/sysrq-trigger');
    assert.notEqual(r.code, 0, 'wrote /proc/sysrq-trigger in a default container');
  } else {
    // This kernel has no /proc/sysrq-trigger (see NOTES-machine.md): nothing to write to, on either side.
    assert.notEqual((await sh([], 'test -e /proc/sysrq-trigger')).code, 0);
  }
  // lo of the container's own network namespace: its sysfs entry is writable only when /sys is rw
  await refusedThenAllowed('/sys write', 'echo 1400 > /sys/class/net/lo/mtu');
});

test('battery: the host hostname cannot be changed; a privileged container changes only its own', { timeout: 60_000 }, async () => {
  const before = os.hostname();
  const uts = await sh(['--uts', 'host'], 'hostname berth-escape');
  assert.notEqual(uts.code, 0, 'changed the host hostname from a default container');
  assert.match(uts.stderr, /not permitted/i);
  assert.equal((await sh([], 'hostname berth-escape')).code, 1);
  const priv = await sh(['--privileged'], 'hostname berth-inside && hostname');
  assert.equal(priv.code, 0, priv.stderr);
  assert.equal(priv.stdout.trim(), 'berth-inside');
  assert.equal(os.hostname(), before);
  const inHost = await sh(['--uts', 'host'], 'hostname');
  assert.equal(inHost.stdout.trim(), before);
});

test('battery: a dropped capability cannot be used or raised; cap-add/cap-drop ALL', { timeout: 60_000 }, async () => {
  // NET_ADMIN is not in Docker's default set; CHOWN is, until dropped.
  await refusedThenAllowed('NET_ADMIN', 'ip link set lo mtu 1400');
  await refusedThenAllowed('dropped CHOWN', 'touch /tmp/f && chown 1000 /tmp/f', ['--cap-add', 'CHOWN'], ['--cap-drop', 'CHOWN']);
  // gone from the bounding set too, so no exec (setuid or file caps) can bring it back
  const bnd = await sh(['--cap-drop', 'CHOWN'], 'grep CapBnd /proc/self/status');
  assert.equal(BigInt(`0x${bnd.stdout.trim().split(/\s+/)[1]}`) & 1n, 0n);
  const setpriv = await sh(['--cap-drop', 'CHOWN'], 'setpriv --inh-caps +chown --ambient-caps +chown true');
  assert.notEqual(setpriv.code, 0, 'raised a dropped capability with setpriv');
  const none = await sh(['--cap-drop', 'ALL'], 'grep CapEff /proc/self/status');
  assert.match(none.stdout, /CapEff:\s+0000000000000000/);
  const all = await sh(['--cap-add', 'ALL'], 'grep CapEff /proc/self/status');
  const host = /CapBnd:\s+(\w+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1];
  assert.match(all.stdout, new RegExp(`CapEff:\\s+${host}`));
  const priv = await sh(['--privileged'], 'grep CapEff /proc/self/status');
  assert.match(priv.stdout, new RegExp(`CapEff:\\s+${host}`), 'privileged gets the daemon\'s own bounding set');
  const bad = await d.docker(['run', '--rm', '--cap-add', 'NOT_A_CAP', PROBE, 'true']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /unknown capability/);
});

test('battery: ptrace of a process outside the container fails; privileged with --pid=host attaches', { timeout: 60_000 }, async () => {
  const target: ChildProcess = spawn('sleep', ['120'], { stdio: 'ignore' });
  try {
    const pid = target.pid!;
    // in its own PID namespace the host process does not even exist
    const own = await sh([], `/probe ptrace ${pid}`);
    assert.notEqual(own.code, 0);
    // sharing the host's PID namespace, it is visible but out of reach without CAP_SYS_PTRACE
    await refusedThenAllowed('ptrace outside', `/probe ptrace ${pid}`, ['--privileged'], ['--pid', 'host']);
  } finally {
    target.kill('SIGKILL');
  }
});

test('no-new-privileges sets NoNewPrivs; bad security options are refused with dockerd\'s message', { timeout: 60_000 }, async () => {
  assert.match((await sh(['--security-opt', 'no-new-privileges'], 'grep NoNewPrivs /proc/self/status')).stdout, /NoNewPrivs:\s+1/);
  assert.match((await sh(['--security-opt', 'no-new-privileges=true'], 'grep NoNewPrivs /proc/self/status')).stdout, /NoNewPrivs:\s+1/);
  assert.match((await sh([], 'grep NoNewPrivs /proc/self/status')).stdout, /NoNewPrivs:\s+0/);
  // AppArmor and SELinux are off on this kernel: dockerd applies no profile and no label, and accepts the option
  assert.equal(fs.existsSync('/sys/fs/selinux/enforce'), false);
  assert.equal((await sh(['--security-opt', 'apparmor=unconfined', '--security-opt', 'label=disable'], 'true')).code, 0);
  const bad = await d.api('POST', '/containers/create', { Image: PROBE, HostConfig: { SecurityOpt: ['bogus=1'] } });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.message, 'invalid --security-opt 2: "bogus=1"');
  const nnp = await d.api('POST', '/containers/create', { Image: PROBE, HostConfig: { SecurityOpt: ['no-new-privileges=maybe'] } });
  assert.equal(nnp.status, 400);
  const list = await d.api('GET', '/containers/json?all=1');
  assert.deepEqual(list.body, []);
});

test('seccomp=<file>: a Docker-format profile applies; one that is not JSON is refused and creates nothing', { timeout: 60_000 }, async () => {
  const profile = path.join(work, 'no-mkdir.json');
  fs.writeFileSync(profile, JSON.stringify({
    defaultAction: 'SCMP_ACT_ALLOW',
    archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] },
      { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] }],
    syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
  }));
  const denied = await sh(['--security-opt', `seccomp=${profile}`], 'mkdir /tmp/x');
  assert.notEqual(denied.code, 0);
  assert.match(denied.stderr, /not permitted/i);
  // everything else is allowed by that profile, even unshare -U
  assert.equal((await sh(['--security-opt', `seccomp=${profile}`], 'unshare -U true && grep -q "Seccomp:.*2" /proc/self/status')).code, 0);

  const notJson = path.join(work, 'bad.json');
  fs.writeFileSync(notJson, 'this is not json');
  const cli = await d.docker(['run', '--rm', '--security-opt', `seccomp=${notJson}`, PROBE, 'true']);
  assert.equal(cli.code, 125);
  const api = await d.api('POST', '/containers/create', { Image: PROBE, HostConfig: { SecurityOpt: ['seccomp=this is not json'] } });
  assert.equal(api.status, 400);
  assert.match(api.body.message, /^Decoding seccomp profile failed: /);
  assert.deepEqual((await d.api('GET', '/containers/json?all=1')).body, []);
});

test('daemon seccomp-profile replaces berth\'s default; a profile that is not JSON stops berthd before it creates anything', { timeout: 90_000 }, async () => {
  const profile = path.join(work, 'daemon-no-mkdir.json');
  fs.writeFileSync(profile, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }] }));
  const d2 = await startDaemon({ config: { 'seccomp-profile': profile }, extraArgs: ['--default-ulimit', 'memlock=8192:16384'] });
  try {
    await loadTestImages(d2);
    const r = await d2.docker(['run', '--rm', 'busybox', 'sh', '-c', 'mkdir /tmp/x; unshare -U true && echo userns; grep "Max locked memory" /proc/self/limits']);
    assert.match(r.stderr, /mkdir: can't create directory '\/tmp\/x': Operation not permitted/);
    assert.match(r.stdout, /^userns$/m, 'the daemon profile allows what berth\'s default refuses');
    assert.match(r.stdout, /Max locked memory\s+8192\s+16384\s/);
    // --security-opt still wins over the daemon's profile
    const own = await d2.docker(['run', '--rm', '--security-opt', 'seccomp=unconfined', 'busybox', 'grep', 'Seccomp:', '/proc/self/status']);
    assert.match(own.stdout, /Seccomp:\s+0/);
  } finally {
    await d2.stop();
  }
  const bad = path.join(work, 'daemon-bad.json');
  fs.writeFileSync(bad, 'nope');
  const cfg = path.join(work, 'daemon-bad-config.json');
  fs.writeFileSync(cfg, JSON.stringify({ 'seccomp-profile': bad }));
  const exec = path.join(work, 'bad-exec');
  const r = await run(paths.berthd, ['--config-file', cfg, '--exec-root', exec, '--data-root', path.join(work, 'bad-data')], { timeoutMs: 10_000 });
  assert.equal(r.code, 1);
  assert.match(r.stderr + r.stdout, /Decoding seccomp profile failed/);
  assert.equal(fs.existsSync(exec), false, 'berthd created its exec root before refusing the profile');
});

test('masked and read-only paths as Docker\'s; systempaths=unconfined lifts them', { timeout: 60_000 }, async () => {
  const masked = await sh([], 'wc -c < /proc/timer_list; ls /sys/firmware | wc -l; touch /proc/sys/x 2>&1; grep " /proc/sys " /proc/mounts');
  const [timerList, firmware] = masked.stdout.trim().split('\n');
  assert.equal(timerList!.trim(), '0', '/proc/timer_list is not masked');
  assert.equal(firmware!.trim(), '0', '/sys/firmware is not masked');
  assert.match(masked.stdout, /\/proc\/sys proc ro,/);
  const open = await sh(['--security-opt', 'systempaths=unconfined'], 'wc -c < /proc/timer_list; grep -c " /proc/sys " /proc/mounts');
  const [size, roSys] = open.stdout.trim().split('\n');
  assert.ok(Number(size) > 0, `/proc/timer_list still masked: ${open.stdout}`);
  assert.equal(roSys!.trim(), '0');
  const ro = await sh(['--read-only'], 'touch /newfile');
  assert.notEqual(ro.code, 0);
  assert.match(ro.stderr, /Read-only file system/);
});

test('supplementary groups as dockerd computes them: the primary group, then --group-add', { timeout: 60_000 }, async () => {
  const id = async (args: string[]) => (await d.docker(['run', '--rm', ...args, 'busybox', 'id'])).stdout.trim();
  assert.equal(await id(['-u', '1000:1000']), 'uid=1000(berth) gid=1000(berth) groups=1000(berth)');
  assert.equal(await id(['-u', 'berth']), 'uid=1000(berth) gid=1000(berth) groups=1000(berth)');
  assert.equal(await id(['-u', 'berth', '--group-add', 'nobody', '--group-add', '4242']), 'uid=1000(berth) gid=1000(berth) groups=1000(berth),4242,65534(nobody)'); // the kernel sorts them
  assert.equal(await id([]), 'uid=0(root) gid=0(root) groups=0(root)');
  // exec gets the container's --group-add too
  const c = (await d.docker(['run', '-d', '--group-add', '4242', 'busybox', 'sleep', '60'])).stdout.trim();
  assert.equal((await d.docker(['exec', '-u', 'berth', c, 'id', '-G'])).stdout.trim(), '1000 4242');
  await d.docker(['rm', '-f', c]);
  const bad = await d.docker(['run', '--rm', '--group-add', 'nosuchgroup', 'busybox', 'true']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /Unable to find group nosuchgroup: no matching entries in group file/);
  await d.docker(['container', 'prune', '-f']);
});

test('images REPO[:TAG] lists only the matching tags', { timeout: 60_000 }, async () => {
  assert.equal((await d.docker(['tag', 'busybox', 'acc/busybox:1'])).code, 0);
  assert.equal((await d.docker(['tag', 'acc/busybox:1', 'acc/tagged:x'])).code, 0);
  const repos = async (args: string[]) => (await d.docker(['images', '--format', '{{.Repository}}:{{.Tag}}', ...args])).stdout.trim().split('\n').sort();
  assert.deepEqual(await repos(['acc/tagged']), ['acc/tagged:x']);
  assert.deepEqual(await repos(['acc/busybox:1']), ['acc/busybox:1']);
  assert.deepEqual(await repos(['acc/*']), ['acc/busybox:1', 'acc/tagged:x']);
  assert.deepEqual(await repos(['--filter', 'reference=acc/tagged:*']), ['acc/tagged:x']);
  assert.ok((await repos([])).includes('busybox:latest'));
  for (const t of ['acc/busybox:1', 'acc/tagged:x']) await d.docker(['rmi', t]);
});

test('--pid/--ipc/--uts=host share the host\'s namespaces; container:<id> joins another container\'s', { timeout: 90_000 }, async () => {
  const ns = async (args: string[], kind: string) => (await d.docker(['run', '--rm', ...args, 'busybox', 'readlink', `/proc/self/ns/${kind}`])).stdout.trim();
  for (const [flag, kind] of [['--pid', 'pid'], ['--ipc', 'ipc'], ['--uts', 'uts']] as const) {
    const host = fs.readlinkSync(`/proc/self/ns/${kind}`);
    assert.notEqual(await ns([], kind), host, `a default container shares the host's ${kind} namespace`);
    assert.equal(await ns([flag, 'host'], kind), host, `${flag} host`);
  }
  const hostPids = await d.docker(['run', '--rm', '--pid', 'host', 'busybox', 'sh', '-c', `test -d /proc/${process.pid} && echo seen`]);
  assert.equal(hostPids.stdout.trim(), 'seen', 'the host\'s processes are not visible with --pid host');

  const donor = (await d.docker(['run', '-d', '--ipc', 'shareable', 'busybox', 'sh', '-c', 'echo shared > /dev/shm/probe; sleep 100'])).stdout.trim();
  try {
    const donorNs = (await d.docker(['exec', donor, 'readlink', '/proc/self/ns/pid'])).stdout.trim();
    assert.equal(await ns(['--pid', `container:${donor}`], 'pid'), donorNs);
    const ps = await d.docker(['run', '--rm', '--pid', `container:${donor}`, 'busybox', 'ps', '-o', 'args']);
    assert.match(ps.stdout, /sleep 100/);
    const ipc = await d.docker(['run', '--rm', '--ipc', `container:${donor}`, 'busybox', 'sh', '-c', 'readlink /proc/self/ns/ipc; cat /dev/shm/probe']);
    const donorIpc = (await d.docker(['exec', donor, 'readlink', '/proc/self/ns/ipc'])).stdout.trim();
    assert.deepEqual(ipc.stdout.trim().split('\n'), [donorIpc, 'shared']);
    const plain = (await d.docker(['run', '-d', 'busybox', 'sleep', '100'])).stdout.trim();
    const notShareable = await d.docker(['run', '--rm', '--ipc', `container:${plain}`, 'busybox', 'true']);
    assert.notEqual(notShareable.code, 0);
    assert.match(notShareable.stderr, /non-shareable IPC/);
    await d.docker(['rm', '-f', plain]);
  } finally {
    await d.docker(['rm', '-f', donor]);
  }
  const stopped = (await d.docker(['create', 'busybox', 'true'])).stdout.trim();
  const join = await d.docker(['run', '--rm', '--pid', `container:${stopped}`, 'busybox', 'true']);
  assert.notEqual(join.code, 0);
  assert.match(join.stderr, /cannot join PID of a non running container/);
  await d.docker(['rm', stopped]);
  assert.equal((await d.docker(['run', '--rm', '--userns', 'host', 'busybox', 'true'])).code, 0);
  const bad = await d.api('POST', '/containers/create', { Image: 'busybox', HostConfig: { PidMode: 'sideways' } });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.message, 'invalid PID mode: sideways');
  await d.docker(['container', 'prune', '-f']);
});

test('berth\'s own CLI sends the same options', { timeout: 60_000 }, async () => {
  const r = await d.berth(['run', '--rm', '--security-opt', 'no-new-privileges', '-u', 'berth', '--group-add', '4242', '--ulimit', 'nofile=100:200',
    '--cpuset-cpus', '0', '--oom-score-adj', '300', '--pid', 'host', 'busybox', 'sh', '-c',
    'grep -E "^(NoNewPrivs|Seccomp|Cpus_allowed_list):" /proc/self/status; id -G; ulimit -n; cat /proc/self/oom_score_adj; test -d /proc/' + process.pid + ' && echo host-pids']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n').map((l) => l.replace(/\s+/g, ' ')), ['NoNewPrivs: 1', 'Seccomp: 2', 'Cpus_allowed_list: 0', '1000 4242', '100', '300', 'host-pids']);
  const profile = path.join(work, 'berth-cli-no-mkdir.json');
  fs.writeFileSync(profile, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }] }));
  const denied = await d.berth(['run', '--rm', '--security-opt', `seccomp=${profile}`, 'busybox', 'mkdir', '/tmp/x']);
  assert.notEqual(denied.code, 0);
  const masked = await d.berth(['run', '--rm', '--security-opt', 'systempaths=unconfined', 'busybox', 'sh', '-c', 'wc -c < /proc/timer_list']);
  assert.ok(Number(masked.stdout.trim()) > 0, masked.stdout + masked.stderr);
  const notJson = path.join(work, 'berth-cli-bad.json');
  fs.writeFileSync(notJson, '{');
  const bad = await d.berth(['run', '--rm', '--security-opt', `seccomp=${notJson}`, 'busybox', 'true']);
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /compacting json for seccomp profile/);
});

test('the battery leaves nothing behind', { timeout: 30_000 }, async () => {
  assert.deepEqual((await d.api('GET', '/containers/json?all=1')).body, []);
  assert.deepEqual(leftovers(d), { mounts: [], cgroups: [], processes: [], files: [] });
});
