#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs PostgreSQL, moto, cargo-lambda, the
# validators and Chromium with chromedriver if they are missing, starts two throwaway clusters
# (source on 55442, target on 55443) and the version matrix's (one per major, 13 to 18), the
# AWS emulator (55500) with its Lambda invoke gateway (55501, which also fronts the API at
# /execute-api) and the function binaries (55509), validates the template and state machine,
# runs every test against them. The console's browser tests leave screenshots of each page in
# target/tmp/console-screenshots/.
# Idempotent: run it as often as you like; clusters are reused between runs (CI stops them).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || { echo "test.sh: cargo (Rust toolchain) is required" >&2; exit 1; }

# A run needs about 7 GB at its peak (two build trees, the clusters, the parts): said up front,
# rather than as tests failing with "No space left on device".
free_kb=$(df --output=avail -k "$PWD" | tail -n 1)
if [ "$free_kb" -lt $((8 * 1024 * 1024)) ]; then
  echo "test.sh: only $((free_kb / 1024 / 1024)) GB free on $(df --output=target "$PWD" | tail -n 1); the suite needs about 7 GB at its peak and may fail with 'No space left on device'" >&2
fi

scripts/pg.sh install
# The tests' fixed ports (clusters 55442-55478, the emulator 55500-55509) lie in Linux's
# ephemeral range: a test's outgoing connection could take one just as a cluster starts on
# it ("could not bind ... Address already in use"). Reserved where we may (root); pg.sh also
# retries a start that met a taken port.
reserved=/proc/sys/net/ipv4/ip_local_reserved_ports
if [ -w "$reserved" ] && ! grep -q '55440-55520' "$reserved"; then
  cur=$(cat "$reserved")
  echo "${cur:+$cur,}55440-55520" >"$reserved" 2>/dev/null || true
fi
scripts/pg.sh up test-source "${DBSYNC_TEST_SOURCE_PORT:=55442}"
scripts/pg.sh up test-target "${DBSYNC_TEST_TARGET_PORT:=55443}"
# Each test makes its own database pair and drops it when it passes; a failed test keeps its pair
# for inspection (every test does under DBSYNC_TEST_KEEP_DBS=1). The previous run's go now.
scripts/pg.sh dropdbs "$DBSYNC_TEST_SOURCE_PORT" t_
scripts/pg.sh dropdbs "$DBSYNC_TEST_TARGET_PORT" t_
# The fault matrix's own clusters (it stops them; the tests start them when they need them).
for port in 55446 55447; do scripts/pg.sh dropdbs "$port" t_ 2>/dev/null || true; done
# The version matrix (tests/it/versions.rs): a cluster of each major from 13 to 18 on
# 55450 + major (15 is Debian's; the others' server binaries are fetched once and cached), a
# second 18 on 55478 for 18 -> 18, and PostgreSQL 18's pg_dump, which reads every major.
matrix=(v13:13 v14:14 v15:15 v16:16 v17:17 v18:18 v18-b:18)
for entry in "${matrix[@]}"; do
  name=${entry%%:*} major=${entry##*:} port=$((55450 + ${entry##*:}))
  [ "$name" = v18-b ] && port=55478
  if [ "$major" = 15 ]; then scripts/pg.sh up "$name" "$port"; else scripts/pg.sh up "$name" "$port" --major "$major"; fi
  scripts/pg.sh dropdbs "$port" t_
done
scripts/pg.sh tools >/dev/null
# The emulator, with the invoke gateway its Step Functions Tasks call (55501), and the real
# function binaries behind it (cargo lambda watch, 55509).
scripts/moto.sh up "${DBSYNC_TEST_MOTO_PORT:=55500}" 55501 http://127.0.0.1:55509
if [ "${CI:-}" = true ]; then
  stop_all() {
    scripts/lambda.sh down 55509
    for name in test-source test-target fault-source fault-target "${matrix[@]%%:*}"; do scripts/pg.sh down "$name"; done
    scripts/moto.sh down "$DBSYNC_TEST_MOTO_PORT"
  }
  trap stop_all EXIT
fi
scripts/lambda.sh up 55509 "http://127.0.0.1:$DBSYNC_TEST_MOTO_PORT"
export DBSYNC_TEST_LAMBDA_GATEWAY=http://127.0.0.1:55501
export DBSYNC_TEST_AWS_ENDPOINT="http://127.0.0.1:$DBSYNC_TEST_MOTO_PORT"

# The console's browser tests (cli/tests/browser.rs): Debian's Chromium and its WebDriver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "test.sh: installing chromium and chromium-driver (the console's browser tests)" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
    || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q chromium chromium-driver >/dev/null; }
fi

# Static checks of the deployment: the SAM template (cfn-lint, sam validate --lint) and the
# state machine (asl-validator). Names and substitutions are checked by the Rust tests.
scripts/validate.sh
export DBSYNC_TEST_SOURCE_URL="postgresql://postgres@127.0.0.1:$DBSYNC_TEST_SOURCE_PORT/postgres?sslmode=disable"
export DBSYNC_TEST_TARGET_URL="postgresql://postgres@127.0.0.1:$DBSYNC_TEST_TARGET_PORT/postgres?sslmode=disable"

# The disk the run has, said before and after: the clusters, the parts and two build trees
# take several GB, and a CI machine's free disk varies.
disk() { df -h --output=avail,size "$PWD" | awk -v when="$1" 'NR == 2 { print "test.sh: disk " when ": " $1 " free of " $2 }'; }
disk "before the tests"
# No doc-tests exist; leaving them out keeps an empty "0 passed" from closing the output.
# --no-fail-fast: a failing test binary does not hide what the others would have said.
log=$(mktemp)
set +e
cargo test --workspace --lib --bins --tests --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# The fault matrix's summary (cli/tests/faults.rs), then one total line for the whole run.
for summary in target/tmp/fault-matrix*.txt; do
  if [ -f "$summary" ]; then cat "$summary"; rm -f "$summary"; fi
done
disk "after the tests"
awk '/^test result:/ { for (i = 2; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "dbsync: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
