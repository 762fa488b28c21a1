#!/usr/bin/env bash
# The project's test command (npm test): installs what is missing, builds, then
# runs the unit and end-to-end tests on Node's test runner. Each end-to-end test
# starts a berthd of its own on temporary roots; none touches an installed one.
# Every test gets --test-timeout (5 min by default, BERTH_TEST_TIMEOUT_MS to
# change it), so a hang fails the run instead of blocking CI.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
./install.sh --no-start

# Tools only the tests spawn: skopeo and Debian's docker-registry (registry
# tests), zstd (zstd layers), openssl (TLS registry), curl (published ports).
packages=(skopeo docker-registry zstd openssl curl)
# Storage drivers' tests: mkfs.btrfs/btrfs for the btrfs loop file, fuse-overlayfs, mkfs.xfs for the overlay2 quota case.
packages+=(btrfs-progs fuse-overlayfs xfsprogs)
# The multi-stage build test makes a Debian stage with gcc from the machine's apt sources.
packages+=(mmdebstrap)
# dockerd 20.10 (Debian's docker.io) as a peer: save-load.test.ts starts one on its own socket and
# data root to load berth's saves and give berth its own. The e2e tests drive the docker CLI 28 in
# /usr/local/bin; on a machine without one, docker.io's CLI serves.
packages+=(docker.io)
# docker-compose 1.29 (Python, docker-py): compose.test.ts runs a project against berthd.
packages+=(docker-compose)
scripts/apt-install.sh "${packages[@]}"

files=("$@")
[ ${#files[@]} -gt 0 ] || files=(test/unit/*.test.ts test/e2e/*.test.ts)
exec node --import tsx --test --test-concurrency=1 --test-timeout="${BERTH_TEST_TIMEOUT_MS:-300000}" "${files[@]}"
