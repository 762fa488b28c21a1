#!/usr/bin/env bash
# Installs berth on this machine and starts berthd. Safe to run again: it installs
# only what is missing, rebuilds, and restarts the daemon (running containers
# keep running under their monitors and are adopted by the new daemon).
#   ./install.sh            everything, then start berthd
#   ./install.sh --no-start dependencies and build only (what the tests need)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
here=$PWD
start=1
[ "${1:-}" = "--no-start" ] && start=0

say() { printf 'install: %s\n' "$*" >&2; }

scripts/apt-install.sh runc conmon iptables iproute2 busybox-static gcc libc6-dev ca-certificates
# --init: Debian's tini (its static build is bound into the container at /sbin/docker-init).
scripts/apt-install.sh tini

# npm ci only when the lock file changed since the last install.
stamp=node_modules/.berth-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
say "build"
npm run --silent build

ln -sf "$here/bin/berth" /usr/local/bin/berth
ln -sf "$here/bin/berthd" /usr/local/bin/berthd
getent group berth >/dev/null || groupadd --system berth
mkdir -p /etc/berth
[ -f /etc/berth/daemon.json ] || echo '{}' > /etc/berth/daemon.json

[ "$start" = 1 ] || exit 0

if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
  cat > /etc/systemd/system/berthd.service <<UNIT
[Unit]
Description=berth container engine
After=network-online.target

[Service]
ExecStart=$here/bin/berthd
KillMode=process
Restart=on-failure
Delegate=yes

[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable berthd >/dev/null 2>&1
  systemctl restart berthd
else
  pidfile=/run/berth/berthd.pid
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    say "restarting berthd"
    kill -TERM "$(cat "$pidfile")"
    for _ in $(seq 50); do kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null || break; sleep 0.1; done
  fi
  mkdir -p /var/log
  nohup "$here/bin/berthd" >>/var/log/berthd.log 2>&1 </dev/null &
fi

for _ in $(seq 100); do
  berth version >/dev/null 2>&1 && break
  sleep 0.1
done
berth version >/dev/null 2>&1 || { say "berthd did not start; see /var/log/berthd.log"; tail -20 /var/log/berthd.log >&2 || true; exit 1; }

# Images without a registry: hello-world from our own C source, busybox from Debian's busybox-static.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! berth image inspect hello-world:latest >/dev/null 2>&1; then
  scripts/mkimage-hello.sh "$tmp/hello.tar" >/dev/null
  berth import -c 'CMD ["/hello"]' "$tmp/hello.tar" hello-world:latest >/dev/null
fi
if ! berth image inspect busybox:latest >/dev/null 2>&1; then
  scripts/mkimage-busybox.sh "$tmp/busybox.tar" >/dev/null
  berth import -c 'CMD ["sh"]' "$tmp/busybox.tar" busybox:latest >/dev/null
fi
say "berthd is running; try: berth run hello-world"
