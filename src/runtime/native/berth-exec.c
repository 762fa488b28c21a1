/*
 * berth-exec: start a process inside a running container, as `runc exec` does, without Go's start-up,
 * runc's re-exec and a second compile of the seccomp profile. berthd (src/runtime/exec.ts) flattens the
 * OCI process into the options below; nothing here parses JSON.
 *
 *   berth-exec --dump-seccomp PID START FILE
 *       Writes the seccomp filter runc installed on the container's init (the oldest of its filters) to
 *       FILE as raw struct sock_filter; an empty FILE when init has none.
 *   berth-exec --pid PID --start START --id ID [--cgroup DIR]... [--seccomp FILE] [--rlimit RES:SOFT:HARD]...
 *              [--nnp] --uid UID --gid GID [--groups G,G...] --caps BND:EFF:PRM:INH:AMB [--cwd DIR]
 *              [--oom-score-adj N] [--env K=V]... -- ARGS...
 *       Runs ARGS in the container whose init is PID (verified by its start time, field 22 of
 *       /proc/PID/stat). Writes "pid N\n" on fd 3 once the command has been exec'd (N is its host pid),
 *       or "error MESSAGE\n" (runc's words) when it could not be started, then exits with the command's
 *       code (128+n when signal n ended it).
 *
 * The parent stays in the host's namespaces (only its children's pid namespace changes) and forwards
 * signals; the child joins the container's cgroups while it is still host root in the host's mount
 * namespace, then its namespaces, then sets up the process in the order of runc's setns init.
 *
 * Cgroups are joined without writing cgroup.procs: that write takes the kernel's global threadgroup
 * lock for writing, which waits for an RCU grace period (7-20 ms measured here, most of an exec). The
 * child is born in the cgroup2 directory instead (clone3 CLONE_INTO_CGROUP), and moves its only thread
 * with "0" in each v1 hierarchy's `tasks` file, which the kernel does without that lock (0.3 ms for
 * nine hierarchies). A kernel without clone3 gets cgroup.procs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/keyctl.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LIST 256
#define REPORT_FD 3

struct options {
  pid_t pid;
  const char *start, *id, *seccomp, *cwd, *oom_score_adj;
  const char *cgroups[MAX_LIST];
  int ncgroups;
  int cgroup2; /* index in cgroups of the cgroup2 directory the child is cloned into, or -1 */
  struct { int resource; struct rlimit lim; } rlimits[MAX_LIST];
  int nrlimits;
  int nnp;
  uid_t uid;
  gid_t gid;
  gid_t groups[MAX_LIST];
  int ngroups;
  uint64_t bounding, effective, permitted, inheritable, ambient;
  char *env[MAX_LIST * 4 + 1];
  int nenv;
  char **args;
};

/* Where failures are told: fd 3 in the parent, the close-on-exec pipe in the child. */
static int error_fd = REPORT_FD;
static const char *error_prefix = "error ";
static volatile pid_t child_pid;

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = snprintf(msg, sizeof msg, "%s", error_prefix);
  vsnprintf(msg + n, sizeof msg - n - 1, fmt, ap);
  va_end(ap);
  for (char *p = msg; *p; p++) if (*p == '\n') *p = ' '; /* one line */
  size_t len = strlen(msg);
  msg[len++] = '\n';
  if (write(error_fd, msg, len) < 0) { /* nobody to tell */ }
  _exit(1);
}

/* Go's wording of an errno (runc's messages come from Go): glibc's text, first letter small. */
static const char *errtext(int err) {
  static char buf[128];
  snprintf(buf, sizeof buf, "%s", strerror(err));
  if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z')) buf[0] += 'a' - 'A';
  return buf;
}

static long number(const char *s, const char *what) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end) fail("invalid %s: %s", what, s);
  return v;
}

static void parse(int argc, char **argv, struct options *o) {
  memset(o, 0, sizeof *o);
  o->pid = -1;
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--")) { i++; break; }
    if (!strcmp(a, "--nnp")) { o->nnp = 1; continue; }
    if (i + 1 >= argc) fail("option %s needs a value", a);
    const char *v = argv[++i];
    if (!strcmp(a, "--pid")) o->pid = (pid_t)number(v, "pid");
    else if (!strcmp(a, "--start")) o->start = v;
    else if (!strcmp(a, "--id")) o->id = v;
    else if (!strcmp(a, "--seccomp")) o->seccomp = v;
    else if (!strcmp(a, "--cwd")) o->cwd = v;
    else if (!strcmp(a, "--oom-score-adj")) o->oom_score_adj = v;
    else if (!strcmp(a, "--uid")) o->uid = (uid_t)number(v, "uid");
    else if (!strcmp(a, "--gid")) o->gid = (gid_t)number(v, "gid");
    else if (!strcmp(a, "--cgroup")) {
      if (o->ncgroups == MAX_LIST) fail("too many cgroups");
      o->cgroups[o->ncgroups++] = v;
    } else if (!strcmp(a, "--env")) {
      if (o->nenv == MAX_LIST * 4) fail("too many environment variables");
      o->env[o->nenv++] = (char *)v;
    } else if (!strcmp(a, "--groups")) {
      for (const char *p = v; *p;) {
        char *end;
        if (o->ngroups == MAX_LIST) fail("too many additional groups");
        o->groups[o->ngroups++] = (gid_t)strtoul(p, &end, 10);
        if (end == p || (*end && *end != ',')) fail("invalid groups: %s", v);
        p = *end ? end + 1 : end;
      }
    } else if (!strcmp(a, "--rlimit")) {
      /* RESOURCE:SOFT:HARD; -1 wraps to RLIM_INFINITY. */
      unsigned long long soft, hard;
      int res;
      if (o->nrlimits == MAX_LIST) fail("too many rlimits");
      if (sscanf(v, "%d:%llu:%llu", &res, &soft, &hard) != 3) fail("invalid rlimit: %s", v);
      o->rlimits[o->nrlimits].resource = res;
      o->rlimits[o->nrlimits].lim = (struct rlimit){ (rlim_t)soft, (rlim_t)hard };
      o->nrlimits++;
    } else if (!strcmp(a, "--caps")) {
      if (sscanf(v, "%" SCNx64 ":%" SCNx64 ":%" SCNx64 ":%" SCNx64 ":%" SCNx64, &o->bounding, &o->effective, &o->permitted,
                 &o->inheritable, &o->ambient) != 5) fail("invalid capabilities: %s", v);
    } else fail("unknown option %s", a);
  }
  if (o->pid <= 0 || !o->start || !o->id) fail("--pid, --start and --id are required");
  if (i >= argc) fail("no command");
  o->args = argv + i;
}

static ssize_t read_all(int fd, char *buf, size_t size) {
  size_t n = 0;
  while (n < size) {
    ssize_t r = read(fd, buf + n, size - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    n += (size_t)r;
  }
  return (ssize_t)n;
}

/* The text of a file under dirfd (NUL-terminated, cut to size-1 bytes). */
static void read_text(int dirfd, const char *name, char *buf, size_t size) {
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("open /proc/%s: %s", name, errtext(errno));
  ssize_t n = read_all(fd, buf, size - 1);
  if (n < 0) fail("read /proc/%s: %s", name, errtext(errno));
  buf[n] = 0;
  close(fd);
}

/*
 * A pidfd and a /proc directory fd for the container's init, both proven to be the process runc
 * started: the pidfd pins one process, the /proc directory opened after it is that process's as long
 * as the pidfd says it lives, and its start time is the one runc recorded.
 */
static int open_target(pid_t pid, const char *start, int *procfd) {
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) fail("container init process %d: %s", (int)pid, errtext(errno));
  char path[64], stat[1024];
  snprintf(path, sizeof path, "/proc/%d", (int)pid);
  *procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (*procfd < 0) fail("open %s: %s", path, errtext(errno));
  if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0) fail("container init process %d is gone", (int)pid);
  read_text(*procfd, "stat", stat, sizeof stat);
  /* Field 22; the command name (field 2) may hold spaces, so count from its closing parenthesis. */
  char *p = strrchr(stat, ')');
  for (int field = 2; p && field < 22; field++) p = strchr(p + 1, ' ');
  if (!p) fail("cannot parse /proc/%d/stat", (int)pid);
  size_t len = strcspn(p + 1, " \n");
  if (strlen(start) != len || strncmp(p + 1, start, len)) fail("container init process %d is not the one runc started", (int)pid);
  return pidfd;
}

static const struct { const char *name; int flag; } NAMESPACES[] = {
  /* user first: the others may belong to it (setns with a pidfd orders them itself; this order is for reading). */
  { "user", CLONE_NEWUSER }, { "mnt", CLONE_NEWNS }, { "pid", CLONE_NEWPID }, { "net", CLONE_NEWNET },
  { "ipc", CLONE_NEWIPC }, { "uts", CLONE_NEWUTS }, { "cgroup", CLONE_NEWCGROUP },
};

/* The namespace types in which the target is not where we are. */
static int differing_namespaces(int procfd) {
  int flags = 0;
  for (size_t i = 0; i < sizeof NAMESPACES / sizeof NAMESPACES[0]; i++) {
    char ours[64];
    struct stat a, b;
    snprintf(ours, sizeof ours, "/proc/self/ns/%s", NAMESPACES[i].name);
    char theirs[32];
    snprintf(theirs, sizeof theirs, "ns/%s", NAMESPACES[i].name);
    if (stat(ours, &a) < 0) continue; /* a namespace type this kernel lacks */
    if (fstatat(procfd, theirs, &b, 0) < 0) fail("stat /proc/<init>/%s: %s", theirs, errtext(errno));
    if (a.st_dev != b.st_dev || a.st_ino != b.st_ino) flags |= NAMESPACES[i].flag;
  }
  return flags;
}

/* ---- --dump-seccomp ---- */

static int dump_seccomp(pid_t pid, const char *start, const char *file) {
  int procfd;
  open_target(pid, start, &procfd);
  /* Between `runc start` and its execve, runc init may still be about to install the filter. */
  char comm[64], status[8192];
  for (int i = 0; i < 2000; i++) {
    read_text(procfd, "comm", comm, sizeof comm);
    if (strncmp(comm, "runc:", 5)) break;
    nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
  }
  read_text(procfd, "status", status, sizeof status);
  const char *mode = strstr(status, "\nSeccomp:");
  struct sock_filter *prog = NULL;
  long len = 0;
  if (mode && atoi(mode + 9) == SECCOMP_MODE_FILTER) {
    /* A tracer that dies releases its tracee: an alarm bounds the stop (e.g. a frozen init never stops). */
    alarm(5);
    if (ptrace(PTRACE_SEIZE, pid, 0, 0) < 0) fail("ptrace seize %d: %s", (int)pid, errtext(errno));
    if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) < 0) fail("ptrace interrupt %d: %s", (int)pid, errtext(errno));
    int st, sig = 0;
    while (waitpid(pid, &st, __WALL) < 0)
      if (errno != EINTR) fail("wait for %d to stop: %s", (int)pid, errtext(errno));
    /* A signal that arrived first stopped it instead of our interrupt: it is delivered on detach. */
    if (WIFSTOPPED(st) && st >> 16 != PTRACE_EVENT_STOP) sig = WSTOPSIG(st);
    /* Index 0 is the newest filter; the oldest is the one runc installed before the command ran. */
    long oldest = 0;
    while (ptrace(PTRACE_SECCOMP_GET_FILTER, pid, oldest + 1, NULL) >= 0) oldest++;
    len = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, oldest, NULL);
    if (len > 0) {
      prog = calloc((size_t)len, sizeof *prog);
      if (!prog) fail("out of memory");
      if (ptrace(PTRACE_SECCOMP_GET_FILTER, pid, oldest, prog) != len) len = -1;
    }
    int err = errno;
    if (ptrace(PTRACE_DETACH, pid, 0, sig) < 0) fail("ptrace detach %d: %s", (int)pid, errtext(errno));
    alarm(0);
    if (len <= 0) fail("get the seccomp filter of %d: %s", (int)pid, errtext(err));
  }
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.%d", file, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fail("open %s: %s", tmp, errtext(errno));
  size_t size = (size_t)len * sizeof *prog;
  if (size && write(fd, prog, size) != (ssize_t)size) { unlink(tmp); fail("write %s: %s", tmp, errtext(errno)); }
  if (close(fd) < 0 || rename(tmp, file) < 0) { unlink(tmp); fail("write %s: %s", file, errtext(errno)); }
  free(prog);
  return 0;
}

/* ---- exec: the child ---- */

static void write_file(const char *path, const char *text, int skip_missing) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 && skip_missing && errno == ENOENT) return;
  if (fd < 0) fail("open %s: %s", path, errtext(errno));
  if (write(fd, text, strlen(text)) < 0) fail("write %s to %s: %s", text, path, errtext(errno));
  close(fd);
}

static struct sock_fprog read_filter(const char *file) {
  struct sock_fprog prog = { 0, NULL };
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) fail("open %s: %s", file, errtext(errno));
  if (st.st_size % sizeof(struct sock_filter) || st.st_size > BPF_MAXINSNS * (off_t)sizeof(struct sock_filter))
    fail("%s is not a seccomp filter", file);
  prog.len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
  if (prog.len) {
    prog.filter = malloc((size_t)st.st_size);
    if (!prog.filter || read_all(fd, (char *)prog.filter, (size_t)st.st_size) != st.st_size) fail("read %s: %s", file, errtext(errno));
  }
  close(fd);
  return prog;
}

static void install_filter(const struct sock_fprog *prog) {
  if (prog->len && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) < 0)
    fail("error loading seccomp filter into kernel: %s", errtext(errno));
}

/* runc's fixStdioPermissions: the user must be able to reopen its stdio (/dev/stdout) after setuid. */
static void own_stdio(uid_t uid, gid_t gid) {
  struct stat null, st;
  if (stat("/dev/null", &null) < 0) fail("stat /dev/null: %s", errtext(errno));
  for (int fd = 0; fd < 3; fd++) {
    if (fstat(fd, &st) < 0) continue;
    if ((S_ISCHR(st.st_mode) && st.st_rdev == null.st_rdev) || st.st_uid == uid) continue;
    /* EINVAL: the gid is not mapped in the user namespace; EPERM: the current owner is not. */
    if (fchown(fd, uid, gid) < 0 && errno != EINVAL && errno != EPERM) fail("fchown fd %d: %s", fd, errtext(errno));
  }
}

static int supplementary_groups_allowed(void) {
  char buf[16] = "";
  int fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  return n <= 0 || strncmp(buf, "deny", 4) != 0;
}

static void set_capabilities(const struct options *o) {
  struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct data[2];
  for (int i = 0; i < 2; i++) {
    data[i].effective = (uint32_t)(o->effective >> (32 * i));
    data[i].permitted = (uint32_t)(o->permitted >> (32 * i));
    data[i].inheritable = (uint32_t)(o->inheritable >> (32 * i));
  }
  if (syscall(SYS_capset, &hdr, data) < 0) fail("unable to apply caps: %s", errtext(errno));
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) fail("unable to clear ambient caps: %s", errtext(errno));
  for (int cap = 0; cap < 64; cap++)
    if ((o->ambient >> cap) & 1 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
      fail("unable to apply caps: can't raise ambient capability %d: %s", cap, errtext(errno));
}

/* Go's exec.LookPath, as runc uses it: the words of its errors are what docker users see. */
static int executable(const char *path) {
  struct stat st;
  if (stat(path, &st) < 0) return errno;
  return !S_ISDIR(st.st_mode) && (st.st_mode & 0111) ? 0 : EACCES;
}

static const char *look_path(const char *file, char **env, char *buf, size_t size) {
  if (strchr(file, '/')) {
    int err = executable(file);
    if (err == EACCES) fail("exec: \"%s\": permission denied", file);
    if (err) fail("exec: \"%s\": stat %s: %s", file, file, errtext(err));
    return file;
  }
  const char *path = "";
  for (char **e = env; *e; e++)
    if (!strncmp(*e, "PATH=", 5)) path = *e + 5;
  for (const char *dir = path; *path;) {
    size_t len = strcspn(dir, ":");
    size_t trimmed = len > 1 && dir[len - 1] == '/' ? len - 1 : len;
    snprintf(buf, size, "%.*s/%s", trimmed ? (int)trimmed : 1, trimmed ? dir : ".", file);
    if (executable(buf) == 0) {
      if (buf[0] != '/') fail("exec: \"%s\": cannot run executable found relative to current directory", file);
      return buf;
    }
    if (!dir[len]) break;
    dir += len + 1;
  }
  fail("exec: \"%s\": executable file not found in $PATH", file);
}

static void child(const struct options *o, int pidfd, int namespaces, const sigset_t *mask) {
  /* Nothing of ours may reach the command; nobody in the container may ptrace us while we hold host fds. */
  if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) fail("close_range: %s", errtext(errno));
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) fail("prctl(PR_SET_DUMPABLE): %s", errtext(errno));

  /* As host root, in the host's mount namespace: limits only host root may raise, and the cgroups. */
  if (o->oom_score_adj) write_file("/proc/self/oom_score_adj", o->oom_score_adj, 0);
  for (int i = 0; i < o->nrlimits; i++)
    if (setrlimit(o->rlimits[i].resource, &o->rlimits[i].lim) < 0) fail("error setting rlimit type %d: %s", o->rlimits[i].resource, errtext(errno));
  for (int i = 0; i < o->ncgroups; i++) {
    if (i == o->cgroup2) continue;
    char path[4096];
    struct statfs fs;
    /* A single-threaded process moves whole with its one thread; cgroup2 has no per-thread file for it. */
    int v2 = statfs(o->cgroups[i], &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
    snprintf(path, sizeof path, "%s/%s", o->cgroups[i], v2 ? "cgroup.procs" : "tasks");
    write_file(path, "0", 1);
  }
  struct sock_fprog filter = { 0, NULL };
  if (o->seccomp) filter = read_filter(o->seccomp);

  if (namespaces && setns(pidfd, namespaces) < 0) fail("failed to join the container's namespaces: %s", errtext(errno));
  close(pidfd);

  /* From here on, runc's setns init, in its order. */
  char keyring[256];
  snprintf(keyring, sizeof keyring, "_ses.%s", o->id);
  if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, keyring) < 0 && errno != ENOSYS)
    fail("unable to join session keyring: %s", errtext(errno));
  if (o->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail("prctl(PR_SET_NO_NEW_PRIVS): %s", errtext(errno));
  /* Without no_new_privs loading a filter needs CAP_SYS_ADMIN: before the capabilities go. */
  if (!o->nnp) install_filter(&filter);

  int chdir_later = 0;
  if (o->cwd && chdir(o->cwd) < 0) {
    /* Maybe only the user may enter it (a volume chowned to it): try again as the user. */
    if (errno != EACCES && errno != EPERM) fail("chdir to cwd (\"%s\") set in config.json failed: %s", o->cwd, errtext(errno));
    chdir_later = 1;
  }
  for (int cap = 0; cap < 64; cap++) {
    if ((o->bounding >> cap) & 1) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
      if (errno == EINVAL) break; /* past the kernel's last capability */
      fail("unable to apply caps: %s", errtext(errno));
    }
  }
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) fail("prctl(PR_SET_KEEPCAPS): %s", errtext(errno));
  own_stdio(o->uid, o->gid);
  if (supplementary_groups_allowed() && setgroups((size_t)o->ngroups, o->groups) < 0) fail("setgroups: %s", errtext(errno));
  if (syscall(SYS_setresgid, o->gid, o->gid, o->gid) < 0) fail("setgid %d: %s", (int)o->gid, errtext(errno));
  if (syscall(SYS_setresuid, o->uid, o->uid, o->uid) < 0) fail("setuid %d: %s", (int)o->uid, errtext(errno));
  if (chdir_later && chdir(o->cwd) < 0) fail("chdir to cwd (\"%s\") set in config.json failed: %s", o->cwd, errtext(errno));
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) fail("prctl(PR_SET_KEEPCAPS): %s", errtext(errno));
  set_capabilities(o);
  if (o->nnp) install_filter(&filter);

  char found[4096];
  char **env = (char **)o->env;
  const char *path = look_path(o->args[0], env, found, sizeof found);
  sigprocmask(SIG_SETMASK, mask, NULL);
  execve(path, o->args, env);
  fail("exec %s: %s", path, errtext(errno));
}

/* ---- exec: the parent ---- */

/* fork(), the child born in the cgroup2 directory when there is one (o->cgroup2 = -1 if that fails). */
static pid_t spawn_child(struct options *o) {
  for (int i = 0; i < o->ncgroups && o->cgroup2 < 0; i++) {
    struct statfs fs;
    if (statfs(o->cgroups[i], &fs) < 0 || fs.f_type != CGROUP2_SUPER_MAGIC) continue;
    int dir = open(o->cgroups[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) break;
    struct clone_args args = { .flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (uint64_t)dir };
    /* Like fork (no new stack); the child uses nothing of libc that needs its thread id. */
    long pid = syscall(SYS_clone3, &args, sizeof args);
    close(dir);
    if (pid >= 0) {
      o->cgroup2 = i;
      return (pid_t)pid;
    }
    break; /* an old kernel, or a cgroup it cannot be born in: cgroup.procs */
  }
  return fork();
}

static void forward(int sig) {
  if (child_pid > 0) kill(child_pid, sig);
}

static const int FORWARDED[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

int main(int argc, char **argv) {
  if (argc == 5 && !strcmp(argv[1], "--dump-seccomp")) {
    error_fd = 2;
    error_prefix = "";
    return dump_seccomp((pid_t)number(argv[2], "pid"), argv[3], argv[4]);
  }

  struct options o;
  parse(argc, argv, &o);
  int procfd;
  int pidfd = open_target(o.pid, o.start, &procfd);
  int namespaces = differing_namespaces(procfd);
  close(procfd);

  /* Signals wait until the parent forwards them; the child restores the caller's mask right before execve. */
  sigset_t forwarded, old;
  sigemptyset(&forwarded);
  for (size_t i = 0; i < sizeof FORWARDED / sizeof FORWARDED[0]; i++) sigaddset(&forwarded, FORWARDED[i]);
  sigprocmask(SIG_BLOCK, &forwarded, &old);

  /* Our children are born in the container's pid namespace; we stay in the host's. */
  if ((namespaces & CLONE_NEWPID) && setns(pidfd, CLONE_NEWPID) < 0) fail("failed to join the container's pid namespace: %s", errtext(errno));
  int errpipe[2];
  if (pipe2(errpipe, O_CLOEXEC) < 0) fail("pipe: %s", errtext(errno));
  o.cgroup2 = -1;
  pid_t pid = spawn_child(&o);
  if (pid < 0) fail("fork: %s", errtext(errno));
  if (pid == 0) {
    close(errpipe[0]);
    close(REPORT_FD);
    error_fd = errpipe[1];
    error_prefix = "exec failed: unable to start container process: ";
    child(&o, pidfd, namespaces & ~CLONE_NEWPID, &old);
  }
  child_pid = pid;
  close(errpipe[1]);
  close(pidfd);
  struct sigaction sa = { .sa_handler = forward };
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof FORWARDED / sizeof FORWARDED[0]; i++) sigaction(FORWARDED[i], &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  sigprocmask(SIG_SETMASK, &old, NULL);
  /* The command's stdio is the child's alone: its readers see EOF when it (and what it started) is done. */
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int fd = 0; fd < 3 && devnull >= 0; fd++) dup2(devnull, fd);

  /* EOF on the close-on-exec pipe: the command runs (or the child died before it could say why). */
  char msg[4096];
  ssize_t n = read_all(errpipe[0], msg, sizeof msg - 1);
  close(errpipe[0]);
  char line[64];
  int len = snprintf(line, sizeof line, "pid %d\n", (int)pid);
  if (n > 0) {
    if (write(REPORT_FD, "error ", 6) < 0 || write(REPORT_FD, msg, (size_t)n) < 0) { /* berthd is gone */ }
  } else if (write(REPORT_FD, line, (size_t)len) < 0) { /* berthd is gone */ }
  close(REPORT_FD);

  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return 255;
  if (n > 0) return 255;
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}
