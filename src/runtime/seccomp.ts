/**
 * Seccomp for containers: berth's own default profile (an allow-list: every syscall not named here
 * fails with EPERM), and the translation of a user's profile file (Docker's seccomp JSON format) into
 * the OCI `linux.seccomp` runc loads.
 *
 * The default follows the rule Docker's profile is built on: a syscall is open when the kernel's own
 * checks are enough inside namespaces; a syscall that acts on something the namespaces do not cover
 * (the kernel keyring, kexec, modules, the clock, mounts, new namespaces) is open only to a container
 * that holds the capability the kernel would ask for, so `--cap-add SYS_ADMIN` gets mount back.
 *
 * What the filter costs: runc (1.1.5, libseccomp 2.5.4 here) compiles it at every start and every
 * exec: ~9 ms of runc CPU on x86_64 + x86, ~4.5 ms on x86_64 alone, ~1 ms for a one-rule filter
 * (bench/seccomp.ts; --split times libseccomp's phases). Of the 9: libseccomp ~6 in runc (perf;
 * adding the rules ~2, each into every architecture twice, live and transaction shadow; generating
 * the BPF ~3, in time that grows faster than the blocks of all architectures together, which is why
 * i386 costs more than x86_64 itself), runc's own Go code ~1 (config, the ENOSYS patch), the
 * kernel's load ~0.6. The shape of the profile barely matters: name order, folding the personality
 * values into a masked compare (which costs more, not less), dropping the names no architecture
 * here has (recv, send) each move libseccomp's instructions by 4% or less (callgrind). Only fewer
 * names or architectures would, and each name is open on purpose; without SCMP_ARCH_X86 an i386
 * program dies of SIGSYS at its first call (test/e2e/isolation.test.ts). It stays an allow-list all
 * the same: a deny-list (~2.4 ms for the ~96 names this one refuses) lets through every syscall
 * libseccomp cannot name (on kernel 6.18: statmount, listmount, lsm_*, mseal, *xattrat,
 * open_tree_attr, file_getattr/setattr), where this profile answers ENOSYS. The names go in one
 * rule: one rule per name costs runc more (~2 ms).
 */
import os from 'node:os';
import { InvalidParameter } from '../errors.js';
import { x32Supported } from '../sys/index.js';

export interface OciSeccompArg { index: number; value: number; valueTwo?: number; op: string }
export interface OciSeccompRule { names: string[]; action: string; errnoRet?: number; args?: OciSeccompArg[] }
export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  syscalls?: OciSeccompRule[];
}

const EPERM = 1;
const ENOSYS = 38;

/** Syscalls any container may make: files, memory, processes and signals, IPC and sockets in its own namespaces. */
const ALWAYS = `
  read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 open openat openat2 creat close
  close_range lseek _llseek dup dup2 dup3 fcntl fcntl64 ioctl flock fsync fdatasync sync syncfs
  sync_file_range truncate truncate64 ftruncate ftruncate64 fallocate fadvise64 fadvise64_64 readahead
  sendfile sendfile64 splice tee vmsplice copy_file_range pipe pipe2 cachestat
  stat stat64 lstat lstat64 fstat fstat64 newfstatat fstatat64 statx statfs statfs64 fstatfs fstatfs64
  access faccessat faccessat2 readlink readlinkat getdents getdents64 getcwd chdir fchdir chroot
  mkdir mkdirat rmdir unlink unlinkat rename renameat renameat2 link linkat symlink symlinkat mknod mknodat
  chmod fchmod fchmodat chown chown32 fchown fchown32 fchownat lchown lchown32 umask utime utimes utimensat
  utimensat_time64 futimesat name_to_handle_at fchmodat2
  getxattr lgetxattr fgetxattr setxattr lsetxattr fsetxattr listxattr llistxattr flistxattr removexattr
  lremovexattr fremovexattr
  select _newselect pselect6 pselect6_time64 poll ppoll ppoll_time64 epoll_create epoll_create1 epoll_ctl
  epoll_ctl_old epoll_wait epoll_wait_old epoll_pwait epoll_pwait2 eventfd eventfd2 signalfd signalfd4
  timerfd_create timerfd_settime timerfd_settime64 timerfd_gettime timerfd_gettime64 inotify_init
  inotify_init1 inotify_add_watch inotify_rm_watch fanotify_mark
  io_setup io_destroy io_getevents io_pgetevents io_pgetevents_time64 io_submit io_cancel
  brk mmap mmap2 munmap mremap mprotect pkey_mprotect pkey_alloc pkey_free madvise mincore mlock mlock2
  mlockall munlock munlockall msync memfd_create memfd_secret membarrier remap_file_pages mseal map_shadow_stack
  fork vfork execve execveat exit exit_group wait4 waitid waitpid kill tkill tgkill
  getpid getppid gettid getpgid setpgid getpgrp getsid setsid
  getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32 setuid setuid32 setgid setgid32
  setreuid setreuid32 setregid setregid32 setresuid setresuid32 setresgid setresgid32 getresuid getresuid32
  getresgid getresgid32 getgroups getgroups32 setgroups setgroups32 setfsuid setfsuid32 setfsgid setfsgid32
  capget capset prctl arch_prctl set_thread_area get_thread_area set_tid_address set_robust_list
  get_robust_list futex futex_time64 futex_waitv rseq restart_syscall seccomp
  getpriority setpriority sched_yield sched_getaffinity sched_setaffinity sched_getattr sched_setattr
  sched_getparam sched_setparam sched_getscheduler sched_setscheduler sched_get_priority_max
  sched_get_priority_min sched_rr_get_interval sched_rr_get_interval_time64 ioprio_get ioprio_set getcpu
  getrlimit setrlimit prlimit64 ugetrlimit getrusage times uname sysinfo
  pause nanosleep clock_nanosleep clock_nanosleep_time64 alarm getitimer setitimer timer_create timer_delete
  timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 gettimeofday time
  clock_gettime clock_gettime64 clock_getres clock_getres_time64 adjtimex
  rt_sigaction rt_sigprocmask rt_sigreturn rt_sigsuspend rt_sigpending rt_sigtimedwait rt_sigtimedwait_time64
  rt_sigqueueinfo rt_tgsigqueueinfo sigaction sigaltstack signal sigpending sigprocmask sigreturn sigsuspend
  pidfd_open pidfd_send_signal process_mrelease
  msgget msgsnd msgrcv msgctl semget semop semtimedop semtimedop_time64 semctl shmget shmat shmdt shmctl ipc
  mq_open mq_unlink mq_timedsend mq_timedsend_time64 mq_timedreceive mq_timedreceive_time64 mq_notify
  mq_getsetattr
  socket socketpair bind connect listen accept accept4 getsockname getpeername sendto recvfrom send recv
  sendmsg recvmsg sendmmsg recvmmsg recvmmsg_time64 setsockopt getsockopt shutdown socketcall
  get_mempolicy getrandom landlock_create_ruleset landlock_add_rule landlock_restrict_self
`;

/** Before 4.8 ptrace could be used to get around seccomp, so older kernels keep it for CAP_SYS_PTRACE. */
const PTRACE = 'ptrace process_vm_readv process_vm_writev';

/** Syscalls open only to a container holding the capability (the kernel checks the same one). */
const BY_CAPABILITY: Record<string, string> = {
  CAP_SYS_ADMIN: `
    mount umount umount2 mount_setattr move_mount open_tree fsopen fsconfig fsmount fspick pivot_root
    unshare setns clone clone3 sethostname setdomainname quotactl quotactl_fd swapon swapoff
    fanotify_init lookup_dcookie perf_event_open bpf`,
  CAP_SYS_BOOT: 'reboot kexec_load kexec_file_load',
  CAP_SYS_MODULE: 'init_module finit_module delete_module',
  CAP_SYS_TIME: 'settimeofday stime clock_settime clock_settime64 clock_adjtime clock_adjtime64',
  CAP_SYS_RAWIO: 'iopl ioperm',
  CAP_SYS_PACCT: 'acct',
  CAP_SYS_NICE: 'set_mempolicy set_mempolicy_home_node mbind move_pages migrate_pages',
  CAP_SYS_PTRACE: 'kcmp pidfd_getfd userfaultfd process_madvise',
  CAP_SYS_TTY_CONFIG: 'vhangup',
  CAP_SYSLOG: 'syslog',
  CAP_DAC_READ_SEARCH: 'open_by_handle_at',
  CAP_BPF: 'bpf',
  CAP_PERFMON: 'perf_event_open',
};

/** CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET: the flags that make namespaces. */
const CLONE_NAMESPACE_FLAGS = 0x7e020000;

/** personality(2) values a program may ask for: the default domain, its 32-bit form, and the query. */
const PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

const words = (s: string) => s.split(/\s+/).filter(Boolean);

/** The seccomp architectures of this machine: its own and the compat ABIs its kernel runs. */
export function seccompArchitectures(arch: string = os.arch()): string[] {
  switch (arch) {
    // x32 only where the kernel has it: each architecture adds a filter runc compiles at every start.
    case 'x64': return ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', ...(x32Supported() ? ['SCMP_ARCH_X32'] : [])];
    case 'arm64': return ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'];
    case 'ia32': return ['SCMP_ARCH_X86'];
    case 'arm': return ['SCMP_ARCH_ARM'];
    case 'ppc64': return ['SCMP_ARCH_PPC64LE'];
    case 's390x': return ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'];
    default: return [];
  }
}

/** berth's default profile for a container holding `caps` (the CAP_* names of its bounding set). */
export function defaultSeccomp(caps: readonly string[]): OciSeccomp {
  const held = new Set(caps);
  const allow = new Set(words(ALWAYS));
  if (kernelAtLeast('4.8') || held.has('CAP_SYS_PTRACE')) for (const n of words(PTRACE)) allow.add(n);
  for (const [cap, names] of Object.entries(BY_CAPABILITY)) if (held.has(cap)) for (const n of words(names)) allow.add(n);
  const rules: OciSeccompRule[] = [];
  const sysAdmin = held.has('CAP_SYS_ADMIN');
  if (!sysAdmin) {
    // clone without namespace flags (threads, fork); clone3 hides its flags in memory seccomp cannot
    // read, so it answers ENOSYS and libc falls back to clone.
    allow.delete('clone');
    allow.delete('clone3');
    rules.push({ names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] });
    rules.push({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS });
  }
  for (const p of PERSONALITIES) rules.push({ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: p, op: 'SCMP_CMP_EQ' }] });
  rules.unshift({ names: [...allow].sort(), action: 'SCMP_ACT_ALLOW' });
  return { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: EPERM, architectures: seccompArchitectures(), syscalls: rules };
}

// ---- a user's profile (--security-opt seccomp=<file>: the CLI sends the file's JSON) ----------

interface DockerFilter { caps?: string[]; arches?: string[]; minKernel?: string }
interface DockerSyscall {
  name?: string; names?: string[]; action: string; errnoRet?: number;
  args?: Array<{ index: number; value: number; valueTwo?: number; op: string }> | null;
  includes?: DockerFilter; excludes?: DockerFilter;
}
interface DockerProfile {
  defaultAction: string; defaultErrnoRet?: number;
  architectures?: string[]; archMap?: Array<{ architecture: string; subArchitectures?: string[] }> | null;
  syscalls?: DockerSyscall[] | null;
}

const ACTIONS = new Set(['SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_TRAP', 'SCMP_ACT_ERRNO',
  'SCMP_ACT_TRACE', 'SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_NOTIFY']);
const OPS = new Set(['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ']);

function kernelAtLeast(min: string, release: string = os.release()): boolean {
  const parse = (v: string) => v.split(/[.-]/).slice(0, 2).map((x) => Number.parseInt(x, 10) || 0);
  const [a = 0, b = 0] = parse(release);
  const [x = 0, y = 0] = parse(min);
  return a > x || (a === x && b >= y);
}

function checkAction(a: unknown, where: string): string {
  if (typeof a !== 'string' || !ACTIONS.has(a)) throw new InvalidParameter(`Decoding seccomp profile failed: ${where}: unknown action ${JSON.stringify(a)}`);
  return a;
}

/**
 * Parse a profile in Docker's format and keep what applies to a container holding `caps` on this
 * machine (includes/excludes by capability, architecture, kernel). Throws InvalidParameter with
 * dockerd's "Decoding seccomp profile failed" for anything that is not such a profile.
 */
export function parseSeccompProfile(text: string, caps: readonly string[]): OciSeccomp {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InvalidParameter(`Decoding seccomp profile failed: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InvalidParameter('Decoding seccomp profile failed: not a JSON object');
  const p = raw as DockerProfile;
  const out: OciSeccomp = { defaultAction: checkAction(p.defaultAction, 'defaultAction') };
  if (typeof p.defaultErrnoRet === 'number') out.defaultErrnoRet = p.defaultErrnoRet;
  const native = seccompArchitectures();
  if (p.architectures?.length && p.archMap?.length) throw new InvalidParameter("Decoding seccomp profile failed: 'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'");
  if (p.architectures?.length) out.architectures = [...p.architectures];
  else if (p.archMap?.length) {
    const mine = p.archMap.find((m) => m.architecture === native[0]);
    if (mine) out.architectures = [mine.architecture, ...(mine.subArchitectures ?? [])];
  }
  const held = new Set(caps);
  const arch = native[0] ?? '';
  const applies = (f: DockerFilter | undefined, include: boolean): boolean => {
    if (!f) return true;
    const hits: boolean[] = [];
    if (f.caps?.length) hits.push(include ? f.caps.every((c) => held.has(c)) : f.caps.some((c) => held.has(c)));
    if (f.arches?.length) hits.push(f.arches.includes(arch));
    if (f.minKernel) hits.push(kernelAtLeast(f.minKernel));
    if (!hits.length) return true;
    return include ? hits.every(Boolean) : !hits.some(Boolean);
  };
  const rules: OciSeccompRule[] = [];
  for (const [i, s] of (p.syscalls ?? []).entries()) {
    const names = s.names?.length ? s.names : s.name ? [s.name] : [];
    if (s.name && s.names?.length) throw new InvalidParameter("Decoding seccomp profile failed: 'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'");
    if (!names.length) throw new InvalidParameter(`Decoding seccomp profile failed: syscalls[${i}] names no syscall`);
    const action = checkAction(s.action, `syscalls[${i}]`);
    if (!applies(s.includes, true) || !applies(s.excludes, false)) continue;
    const rule: OciSeccompRule = { names: [...names], action };
    if (typeof s.errnoRet === 'number') rule.errnoRet = s.errnoRet;
    if (s.args?.length) {
      rule.args = s.args.map((a) => {
        if (!OPS.has(a.op)) throw new InvalidParameter(`Decoding seccomp profile failed: syscalls[${i}]: unknown operator ${JSON.stringify(a.op)}`);
        return { index: a.index, value: a.value, ...(a.valueTwo ? { valueTwo: a.valueTwo } : {}), op: a.op };
      });
    }
    rules.push(rule);
  }
  out.syscalls = rules;
  return out;
}
