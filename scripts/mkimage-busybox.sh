#!/bin/sh
# mkimage-busybox.sh OUT.tar — a busybox rootfs tar from Debian's busybox-static.
#
# /bin/busybox plus one relative symlink per applet in /bin, a minimal /etc
# (root, nobody and a user "berth" uid 1000), /tmp (1777), /root, /home, /var and
# empty /proc /sys /dev mount points. Deterministic (sorted entries, mtime 0,
# numeric owner 0:0 except /home/berth, owned by berth), so the same busybox
# gives the same layer diffID. Make the image with:
#   berth import -c 'CMD ["sh"]' OUT.tar busybox:latest
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUT.tar" >&2
	exit 2
fi
out=$1
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
BUSYBOX=${BUSYBOX:-/bin/busybox}
umask 022

[ -x "$BUSYBOX" ] || { echo "$0: $BUSYBOX not found (apt-get install busybox-static)" >&2; exit 1; }
# A dynamically linked busybox would not run in an image without libc.
if "$BUSYBOX" ldd "$BUSYBOX" >/dev/null 2>&1 || ldd "$BUSYBOX" 2>/dev/null | grep -q '=>'; then
	echo "$0: $BUSYBOX is not statically linked (need busybox-static)" >&2
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mkimage-busybox.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
r=$work/root
mkdir "$r"

mkdir -p "$r/bin" "$r/etc" "$r/home/berth" "$r/var" "$r/proc" "$r/sys" "$r/dev" "$r/tmp" "$r/root"
chmod 1777 "$r/tmp"
chmod 0700 "$r/root"
cp "$BUSYBOX" "$r/bin/busybox"
chmod 0755 "$r/bin/busybox"
for applet in $("$BUSYBOX" --list); do
	case $applet in
	busybox | */*) continue ;;
	esac
	ln -s busybox "$r/bin/$applet"
done

cat >"$r/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
berth:x:1000:1000:berth:/home/berth:/bin/sh
PASSWD
cat >"$r/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
berth:x:1000:
GROUP
chmod 0644 "$r/etc/passwd" "$r/etc/group"

tmp=$out.tmp.$$
opts="--format=ustar --mtime=@0 --numeric-owner"
# Everything but /home/berth is root's; the user's home is appended with its owner.
# shellcheck disable=SC2086
(cd "$r" && tar $opts --sort=name --owner=0 --group=0 --exclude=home/berth -cf "$tmp" \
	bin dev etc home proc root sys tmp var)
# shellcheck disable=SC2086
(cd "$r" && tar $opts --owner=1000 --group=1000 --no-recursion -rf "$tmp" home/berth)
sync "$tmp" 2>/dev/null || sync
mv -f "$tmp" "$out"
