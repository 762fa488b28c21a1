#!/bin/sh
# mkimage-hello.sh OUT.tar — build berth's hello-world rootfs tar without any registry.
#
# Compiles hello/hello.c into a few-kilobyte static binary (in a temp dir, never
# in the repo) and writes a tar holding only /hello (mode 0755, owner 0:0). The
# tar is deterministic, so the same source gives the same layer diffID.
# Make the image with:  berth import -c 'CMD ["/hello"]' OUT.tar hello-world:latest
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUT.tar" >&2
	exit 2
fi
out=$1
here=$(cd "$(dirname "$0")" && pwd)
src=$here/../hello/hello.c
CC=${CC:-gcc}
umask 022

work=$(mktemp -d "${TMPDIR:-/tmp}/mkimage-hello.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

mkdir "$work/root"
# Without libc where hello.c has its own _start (x86_64, aarch64): ~1.4 KB
# instead of ~700 KB with glibc. Elsewhere fall back to a glibc static build.
case $(uname -m) in
x86_64 | aarch64)
	"$CC" -static -Os -s -nostdlib -fno-stack-protector -fno-asynchronous-unwind-tables \
		-fno-pie -no-pie -Wl,--build-id=none -Wl,-z,noseparate-code \
		-DBERTH_NOLIBC -Wall -Wextra -Werror -o "$work/root/hello" "$src"
	;;
*)
	"$CC" -static -Os -s -Wall -Wextra -Werror -o "$work/root/hello" "$src"
	;;
esac
chmod 0755 "$work/root/hello"

# A rootfs without the program's output would make a useless image: check it runs.
"$work/root/hello" | grep -q '^Hello from berth!$' || {
	echo "$0: built hello does not print the greeting" >&2
	exit 1
}

tmp=$out.tmp.$$
tar -C "$work/root" --format=ustar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
	-cf "$tmp" hello
sync "$tmp" 2>/dev/null || sync
mv -f "$tmp" "$out"
echo "$out: /hello is $(stat -c %s "$work/root/hello") bytes" >&2
