#!/usr/bin/env bash
# Runs the whole test suite (unit, integration on real QEMU, end to end) inside a private network namespace,
# so no guest traffic can leave the machine. Extra arguments go to vitest (a path filters the files).
# Prints a final plain line "N passed, N failed".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/env.sh
. "$root/scripts/env.sh"

if [ "$(id -u)" != 0 ]; then
  echo "the test suite needs root (network namespaces, taps, loop devices): run it with sudo" >&2
  exit 1
fi
[ -x node_modules/.bin/vitest ] || { echo "dependencies missing: run ./scripts/setup.sh first" >&2; exit 1; }

mkdir -p test-results
report=test-results/vitest.json
rm -f "$report"
set +e
unshare --net -- bash -c 'ip link set lo up && exec "$@"' _ \
  node_modules/.bin/vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
status=$?
set -e
node scripts/summarize-tests.mjs "$report"
exit $status
