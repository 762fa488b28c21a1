/*
 * Where the default seccomp profile's start-up cost goes inside libseccomp: bench/seccomp.ts --split
 * compiles this (gcc, libseccomp-dev) and feeds it the profile buildSpec writes.
 *
 * It asks libseccomp what runc 1.1.5 asks of it when a container starts, in the same order: one
 * filter, the extra architectures, then per name a native resolution and one rule (runc splits a
 * rule's names into one rule each), then every name resolved on every architecture (runc's ENOSYS
 * patch looks for the highest syscall of each), the BPF export, and the kernel's load of the
 * program (in a forked child, under no_new_privs so no capability is needed). Each phase is timed
 * on its own, `iterations` times; the minimum is the figure a busy machine disturbs least.
 *
 * Input on stdin, one item a line:
 *   D <action>                                       the default action
 *   A <arch>                                         an architecture of the profile (x86_64, x86, ...)
 *   R <action> <nargs> <name> [<index> <op> <a> <b>]...  one rule for one name
 * Output: one line of JSON with the minimum and median milliseconds of each phase.
 * A second argument "noload" skips the kernel's part (for counting instructions under valgrind).
 */
#include <seccomp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARCHES 8
#define MAX_RULES 4096
#define MAX_ITERATIONS 1000

struct rule {
	char name[64];
	uint32_t action;
	unsigned int nargs;
	struct scmp_arg_cmp args[6];
};

enum phase { ADD, RESOLVE_ARCHES, EXPORT, LOAD, PHASES };
static const char *phase_names[PHASES] = { "ruleAdd", "resolvePerArch", "bpfExport", "kernelLoad" };

static uint32_t default_action = SCMP_ACT_ERRNO(1);
static uint32_t arches[MAX_ARCHES];
static unsigned int narches;
static struct rule rules[MAX_RULES];
static unsigned int nrules;
static double samples[PHASES][MAX_ITERATIONS];
static unsigned char bpf[1 << 20];

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int read_profile(void)
{
	char line[4096];
	while (fgets(line, sizeof line, stdin)) {
		char *kind = strtok(line, " \n");
		if (!kind)
			continue;
		if (!strcmp(kind, "D")) {
			default_action = strtoul(strtok(NULL, " \n"), NULL, 0);
			continue;
		}
		if (!strcmp(kind, "A")) {
			if (narches == MAX_ARCHES)
				return -1;
			uint32_t arch = seccomp_arch_resolve_name(strtok(NULL, " \n"));
			if (!arch)
				return -1;
			arches[narches++] = arch;
			continue;
		}
		if (strcmp(kind, "R") || nrules == MAX_RULES)
			return -1;
		struct rule *r = &rules[nrules++];
		r->action = strtoul(strtok(NULL, " \n"), NULL, 0);
		r->nargs = strtoul(strtok(NULL, " \n"), NULL, 0);
		snprintf(r->name, sizeof r->name, "%s", strtok(NULL, " \n"));
		if (r->nargs > 6)
			return -1;
		for (unsigned int i = 0; i < r->nargs; i++) {
			r->args[i].arg = strtoul(strtok(NULL, " \n"), NULL, 0);
			r->args[i].op = strtoul(strtok(NULL, " \n"), NULL, 0);
			r->args[i].datum_a = strtoull(strtok(NULL, " \n"), NULL, 0);
			r->args[i].datum_b = strtoull(strtok(NULL, " \n"), NULL, 0);
		}
	}
	return 0;
}

/* The kernel's part: load the program in a child that exits at once (the profile allows write and exit_group). */
static double load_in_child(size_t len)
{
	int p[2];
	double took = -1;
	if (pipe(p))
		return -1;
	pid_t child = fork();
	if (child == 0) {
		struct sock_fprog prog = { .len = len / sizeof(struct sock_filter), .filter = (struct sock_filter *)bpf };
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		double t0 = now_ms();
		long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
		double t = rc ? -1 : now_ms() - t0;
		if (write(p[1], &t, sizeof t) != sizeof t)
			syscall(SYS_exit_group, 2);
		syscall(SYS_exit_group, 0);
	}
	close(p[1]);
	if (child > 0 && read(p[0], &took, sizeof took) != sizeof took)
		took = -1;
	close(p[0]);
	if (child > 0)
		waitpid(child, NULL, 0);
	return took;
}

int main(int argc, char **argv)
{
	int iterations = argc > 1 ? atoi(argv[1]) : 20;
	int load = !(argc > 2 && !strcmp(argv[2], "noload"));
	size_t insns = 0;
	if (iterations < 1 || iterations > MAX_ITERATIONS || read_profile()) {
		fprintf(stderr, "usage: seccomp-libseccomp [iterations [noload]] < profile-lines\n");
		return 2;
	}
	for (int it = 0; it < iterations; it++) {
		scmp_filter_ctx ctx = seccomp_init(default_action);
		for (unsigned int a = 0; a < narches; a++)
			if (arches[a] != seccomp_arch_native())
				seccomp_arch_add(ctx, arches[a]);
		seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);

		double t0 = now_ms();
		for (unsigned int i = 0; i < nrules; i++) {
			int nr = seccomp_syscall_resolve_name(rules[i].name);
			/* runc skips names libseccomp does not know, and rules that repeat the default action */
			if (nr == __NR_SCMP_ERROR || rules[i].action == default_action)
				continue;
			if (seccomp_rule_add_array(ctx, rules[i].action, nr, rules[i].nargs, rules[i].args)) {
				fprintf(stderr, "seccomp_rule_add %s failed\n", rules[i].name);
				return 1;
			}
		}
		double t1 = now_ms();
		for (unsigned int i = 0; i < nrules; i++)
			for (unsigned int a = 0; a < narches; a++)
				seccomp_syscall_resolve_name_arch(arches[a], rules[i].name);
		double t2 = now_ms();

		int p[2];
		if (pipe(p))
			return 1;
		if (seccomp_export_bpf(ctx, p[1])) {
			fprintf(stderr, "seccomp_export_bpf failed\n");
			return 1;
		}
		close(p[1]);
		size_t len = 0;
		ssize_t n;
		while ((n = read(p[0], bpf + len, sizeof bpf - len)) > 0)
			len += n;
		close(p[0]);
		double t3 = now_ms();
		seccomp_release(ctx);

		samples[ADD][it] = t1 - t0;
		samples[RESOLVE_ARCHES][it] = t2 - t1;
		samples[EXPORT][it] = t3 - t2;
		samples[LOAD][it] = load ? load_in_child(len) : 0;
		if (samples[LOAD][it] < 0) {
			fprintf(stderr, "loading the filter failed\n");
			return 1;
		}
		insns = len / sizeof(struct sock_filter);
	}
	printf("{\"rules\":%u,\"arches\":%u,\"bpfInstructions\":%zu", nrules, narches, insns);
	for (int ph = 0; ph < PHASES; ph++) {
		qsort(samples[ph], iterations, sizeof(double), by_value);
		printf(",\"%s\":{\"minMs\":%.3f,\"medianMs\":%.3f}", phase_names[ph], samples[ph][0], samples[ph][iterations / 2]);
	}
	printf("}\n");
	return 0;
}
