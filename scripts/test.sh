#!/usr/bin/env bash
# The project's test command (npm test): installs what is missing, builds, then
# runs the unit and end-to-end tests on Node's test runner. Each end-to-end test
# starts a berthd of its own on temporary roots; none touches an installed one.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
./install.sh --no-start
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(test/unit/*.test.ts test/e2e/*.test.ts)
exec node --import tsx --test --test-concurrency=1 "${files[@]}"
