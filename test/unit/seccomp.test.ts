import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { defaultSeccomp, parseSeccompProfile } from '../../src/runtime/seccomp.js';
import { InvalidParameter } from '../../src/errors.js';

const allowed = (p: ReturnType<typeof defaultSeccomp>) => new Set(p.syscalls!.filter((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args).flatMap((r) => r.names));

describe('default seccomp profile', () => {
  it('is an allow-list that refuses everything else with EPERM', () => {
    const p = defaultSeccomp(['CAP_CHOWN']);
    assert.equal(p.defaultAction, 'SCMP_ACT_ERRNO');
    assert.equal(p.defaultErrnoRet, 1);
    const a = allowed(p);
    for (const n of ['read', 'write', 'openat', 'pipe2', 'execve', 'futex', 'socket', 'wait4', 'rt_sigaction', 'ptrace']) assert.ok(a.has(n), n);
    for (const n of ['mount', 'unshare', 'setns', 'keyctl', 'add_key', 'request_key', 'kexec_load', 'init_module', 'reboot', 'clock_settime', 'bpf']) {
      assert.ok(!a.has(n), n);
    }
  });

  it('allows clone only without namespace flags, and clone3 answers ENOSYS, unless the container has SYS_ADMIN', () => {
    const p = defaultSeccomp([]);
    const clone = p.syscalls!.find((r) => r.names.includes('clone'))!;
    assert.deepEqual(clone.args, [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }]);
    assert.deepEqual(p.syscalls!.find((r) => r.names.includes('clone3')), { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 });
    const admin = defaultSeccomp(['CAP_SYS_ADMIN']);
    const a = allowed(admin);
    for (const n of ['clone', 'clone3', 'mount', 'unshare', 'setns']) assert.ok(a.has(n), n);
    assert.ok(!a.has('keyctl'), 'keyctl stays closed even with SYS_ADMIN');
    assert.ok(allowed(defaultSeccomp(['CAP_SYS_TIME'])).has('clock_settime'));
  });
});

describe('profile files (Docker format)', () => {
  it('keeps rules whose includes/excludes match the container', () => {
    const text = JSON.stringify({
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        { names: ['read'], action: 'SCMP_ACT_ALLOW' },
        { name: 'mount', action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
        { names: ['chown'], action: 'SCMP_ACT_ALLOW', excludes: { caps: ['CAP_SYS_ADMIN'] } },
        { names: ['kcmp'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '99.0' } },
      ],
    });
    const names = (caps: string[]) => parseSeccompProfile(text, caps).syscalls!.flatMap((r) => r.names);
    assert.deepEqual(names([]), ['read', 'chown']);
    assert.deepEqual(names(['CAP_SYS_ADMIN']), ['read', 'mount']);
  });

  it('refuses what is not a profile with dockerd\'s message', () => {
    const bad = (text: string) => assert.throws(() => parseSeccompProfile(text, []), (e: Error) => e instanceof InvalidParameter && /^Decoding seccomp profile failed: /.test(e.message));
    bad('not json');
    bad('[]');
    bad('{"defaultAction":"SCMP_ACT_NOPE"}');
    bad('{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"LIKE"}]}]}');
  });
});
