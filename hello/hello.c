/*
 * hello — the program inside berth's hello-world image.
 *
 * It only writes one fixed message to stdout and exits 0. To keep the image a
 * few kilobytes, it is built without libc on x86_64 and aarch64 (BERTH_NOLIBC:
 * our own _start and a raw write/exit syscall); elsewhere it falls back to
 * libc's write(), built with gcc -static.
 */

static const char message[] =
	"\n"
	"Hello from berth!\n"
	"If you can read this, your berth installation works end to end.\n"
	"\n"
	"What happened just now:\n"
	" 1. The berth client sent your request to the berth daemon over its API socket.\n"
	" 2. The daemon looked up the \"hello-world\" image. It was built locally from a\n"
	"    few lines of C and imported, so no registry or network was involved.\n"
	" 3. The daemon created a container from that image and started it; the\n"
	"    container ran the one program in it, which printed this text.\n"
	" 4. The daemon streamed the container's output back to the client, which\n"
	"    wrote it to your terminal.\n"
	"\n"
	"For something more interactive, open a shell in a busybox container:\n"
	" $ berth run -it busybox sh\n"
	"\n"
	"Everything berth can do: berth --help\n"
	"\n";

#define MESSAGE_LEN (sizeof(message) - 1)

#if defined(BERTH_NOLIBC) && defined(__x86_64__)

static long sys3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile ("syscall"
		: "=a"(ret)
		: "a"(nr), "D"(a), "S"(b), "d"(c)
		: "rcx", "r11", "memory");
	return ret;
}
#define SYS_WRITE 1
#define SYS_EXIT_GROUP 231

#elif defined(BERTH_NOLIBC) && defined(__aarch64__)

static long sys3(long nr, long a, long b, long c)
{
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	__asm__ volatile ("svc #0"
		: "+r"(x0)
		: "r"(x8), "r"(x1), "r"(x2)
		: "memory");
	return x0;
}
#define SYS_WRITE 64
#define SYS_EXIT_GROUP 94

#elif defined(BERTH_NOLIBC)
#error "BERTH_NOLIBC is only implemented for x86_64 and aarch64"
#endif

#ifdef BERTH_NOLIBC

/* Write everything, retrying short writes (stdout may be a pipe). -EINTR is
 * retried too; any other error ends the program with status 1. */
static int write_all(const char *p, long n)
{
	while (n > 0) {
		long w = sys3(SYS_WRITE, 1, (long)p, n);
		if (w == -4 /* EINTR */)
			continue;
		if (w <= 0)
			return 1;
		p += w;
		n -= w;
	}
	return 0;
}

void _start(void)
{
	int status = write_all(message, (long)MESSAGE_LEN);
	sys3(SYS_EXIT_GROUP, status, 0, 0);
	for (;;) {
	}
}

#else

#include <errno.h>
#include <unistd.h>

int main(void)
{
	const char *p = message;
	long n = (long)MESSAGE_LEN;
	while (n > 0) {
		ssize_t w = write(1, p, (size_t)n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return 1;
		p += w;
		n -= w;
	}
	return 0;
}

#endif
