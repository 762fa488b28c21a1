/**
 * HostConfig as the docker CLI 28 sends it: every field either works or is refused with a 400 that
 * names the option; none is accepted and ignored.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, loadTestImages, leftovers, type Daemon } from '../harness.js';

let d: Daemon;

before(async () => {
  d = await startDaemon();
  await loadTestImages(d);
});

after(async () => {
  await d?.stop();
});

/** docker run options berth does not implement yet, and the words its refusal must contain. */
const REFUSED: [string[], RegExp][] = [
  [['--tmpfs', '/t'], /--tmpfs is not supported yet/],
  [['--ulimit', 'nofile=512:1024'], /--ulimit is not supported yet/],
  [['--dns', '127.0.0.9'], /--dns is not supported yet/],
  [['--dns-search', 'example.test'], /--dns-search is not supported yet/],
  [['--dns-option', 'ndots:2'], /--dns-option is not supported yet/],
  [['--mount', 'type=tmpfs,destination=/t'], /--mount is not supported yet/],
  [['--security-opt', 'no-new-privileges'], /--security-opt is not supported yet/],
  [['--add-host', 'h:127.0.0.9'], /--add-host is not supported yet/],
  [['-v', '/tmp:/x'], /-v, --volume is not supported yet/],
  [['-v', '/data'], /-v, --volume is not supported yet/],
  [['--group-add', '10'], /--group-add is not supported yet/],
  [['--pid', 'host'], /--pid is not supported yet/],
  [['--ipc', 'host'], /--ipc is not supported yet/],
  [['--uts', 'host'], /--uts is not supported yet/],
  [['--userns', 'host'], /--userns is not supported yet/],
  [['--init'], /--init is not supported yet/],
  [['--sysctl', 'net.ipv4.ip_forward=1'], /--sysctl is not supported yet/],
  [['--device', '/dev/null:/dev/x'], /--device is not supported yet/],
  [['--cpuset-cpus', '0'], /--cpuset-cpus is not supported yet/],
  [['--memory-reservation', '64m'], /--memory-reservation is not supported yet/],
  [['--oom-kill-disable'], /--oom-kill-disable is not supported yet/],
  [['--oom-score-adj', '100'], /--oom-score-adj is not supported yet/],
  [['--cgroup-parent', 'other'], /--cgroup-parent is not supported yet/],
  [['--log-opt', 'max-size=1m'], /--log-opt is not supported yet/],
  [['--volumes-from', 'x'], /--volumes-from is not supported yet/],
  [['--link', 'x:y'], /--link is not supported yet/],
  [['-p', '127.0.0.1:8080:80'], /publishing ports \(-p, -P\) is not supported yet/],
];

test('docker run refuses each option berth does not implement, with exit 125 and a message that names it', { timeout: 300_000 }, async () => {
  for (const [args, message] of REFUSED) {
    const r = await d.docker(['run', '--rm', ...args, 'busybox', 'true']);
    assert.equal(r.code, 125, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
  }
  const list = await d.api('GET', '/containers/json?all=1');
  assert.deepEqual(list.body, [], 'a refused run left a container');
  assert.deepEqual(leftovers(d), { mounts: [], cgroups: [], processes: [], files: [] });
});

test('--shm-size sizes /dev/shm; the default is 64 MiB', { timeout: 60_000 }, async () => {
  const sized = await d.docker(['run', '--rm', '--shm-size', '16m', 'busybox', 'df', '-k', '/dev/shm']);
  assert.equal(sized.code, 0, sized.stderr);
  assert.match(sized.stdout, /\s16384\s/);
  const plain = await d.docker(['run', '--rm', 'busybox', 'df', '-k', '/dev/shm']);
  assert.match(plain.stdout, /\s65536\s/);
  const negative = await d.api('POST', '/containers/create', { Image: 'busybox', HostConfig: { ShmSize: -1 } });
  assert.equal(negative.status, 400);
});

/** The HostConfig the docker CLI 28 sends for a plain `docker create`, field by field, with a value that
 *  turns the option on. Each must be implemented (201) or refused by name (400). */
const FIELDS: Record<string, unknown> = {
  Binds: ['/tmp:/x'], LogConfig: { Type: 'syslog', Config: {} }, NetworkMode: 'container:x', PortBindings: { '80/tcp': [{ HostPort: '8080' }] },
  RestartPolicy: { Name: 'always', MaximumRetryCount: 0 }, AutoRemove: true, VolumeDriver: 'x', VolumesFrom: ['x'], ConsoleSize: [24, 80],
  CapAdd: ['NET_ADMIN'], CapDrop: ['CHOWN'], CgroupnsMode: 'host', Dns: ['127.0.0.9'], DnsOptions: ['ndots:2'], DnsSearch: ['x.test'],
  ExtraHosts: ['h:127.0.0.9'], GroupAdd: ['10'], IpcMode: 'host', Cgroup: 'x', Links: ['x:y'], OomScoreAdj: 100, PidMode: 'host',
  Privileged: true, PublishAllPorts: true, ReadonlyRootfs: true, SecurityOpt: ['no-new-privileges'], UTSMode: 'host', UsernsMode: 'host',
  ShmSize: 1 << 24, Isolation: 'default', CpuShares: 512, Memory: 64 << 20, NanoCpus: 500_000_000, CgroupParent: 'x', BlkioWeight: 300,
  BlkioWeightDevice: [{ Path: '/dev/null', Weight: 300 }], BlkioDeviceReadBps: [{ Path: '/dev/null', Rate: 1 }],
  BlkioDeviceWriteBps: [{ Path: '/dev/null', Rate: 1 }], BlkioDeviceReadIOps: [{ Path: '/dev/null', Rate: 1 }],
  BlkioDeviceWriteIOps: [{ Path: '/dev/null', Rate: 1 }], CpuPeriod: 50_000, CpuQuota: 25_000, CpuRealtimePeriod: 1000,
  CpuRealtimeRuntime: 100, CpusetCpus: '0', CpusetMems: '0', Devices: [{ PathOnHost: '/dev/null', PathInContainer: '/dev/x', CgroupPermissions: 'rwm' }],
  DeviceCgroupRules: ['c 1:3 rwm'], DeviceRequests: [{ Count: -1, Capabilities: [['gpu']] }], MemoryReservation: 32 << 20,
  MemorySwap: 128 << 20, MemorySwappiness: 10, OomKillDisable: true, PidsLimit: 50, Ulimits: [{ Name: 'nofile', Soft: 512, Hard: 1024 }],
  CpuCount: 1, CpuPercent: 50, IOMaximumIOps: 10, IOMaximumBandwidth: 10, MaskedPaths: [], ReadonlyPaths: [],
  Tmpfs: { '/t': '' }, Mounts: [{ Type: 'tmpfs', Target: '/t' }], Init: true, Sysctls: { 'net.ipv4.ip_forward': '1' }, Runtime: 'crun',
  StorageOpt: { size: '1G' }, Annotations: { a: 'b' }, SomeFutureField: 1,
};
/** Implemented: the value shows in inspect. */
const WORKS = ['RestartPolicy', 'AutoRemove', 'ConsoleSize', 'CapAdd', 'CapDrop', 'Privileged', 'ReadonlyRootfs', 'ShmSize', 'CpuShares', 'Memory',
  'NanoCpus', 'PidsLimit', 'MemorySwap', 'CpuPeriod', 'CpuQuota'];
/** Accepted because they change nothing on Linux. */
const INERT = ['Isolation'];

test('every HostConfig field the docker CLI sends is implemented or refused by name', { timeout: 120_000 }, async () => {
  for (const [field, value] of Object.entries(FIELDS)) {
    const hostConfig: Record<string, unknown> = { [field]: value };
    const r = await d.api('POST', '/containers/create', { Image: 'busybox', Cmd: ['true'], HostConfig: hostConfig });
    if (INERT.includes(field)) {
      assert.equal(r.status, 201, `${field}: ${JSON.stringify(r.body)}`);
      assert.equal((await d.api('DELETE', `/containers/${r.body.Id}`)).status, 204);
    } else if (WORKS.includes(field)) {
      assert.equal(r.status, 201, `${field}: ${JSON.stringify(r.body)}`);
      const inspect = await d.api('GET', `/containers/${r.body.Id}/json`);
      assert.deepEqual(inspect.body.HostConfig[field], value, field);
      assert.equal((await d.api('DELETE', `/containers/${r.body.Id}`)).status, 204);
    } else {
      assert.equal(r.status, 400, `${field} was accepted: ${JSON.stringify(r.body)}`);
      assert.match(r.body.message, /not supported yet/, field);
    }
  }
  const list = await d.api('GET', '/containers/json?all=1');
  assert.deepEqual(list.body, []);
});
