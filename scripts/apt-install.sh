#!/usr/bin/env bash
# Installs the named Debian packages that are missing (apt-get update once, only then).
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || exit 0
printf 'install: apt-get install %s\n' "${missing[*]}" >&2
apt-get update -qq
# No package's service may start: docker.io's would start a system-wide dockerd with its own bridge
# and iptables rules (tests start their own daemons, on their own sockets).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
