#!/usr/bin/env bash
# The real function binaries behind a local Lambda Invoke API, for the end-to-end tests:
# `cargo lambda watch` (PyPI wheel cargo-lambda; building it from source takes ~24 min).
#
#   scripts/lambda.sh install            install cargo-lambda if missing (idempotent)
#   scripts/lambda.sh up PORT AWS_URL    serve every function on 127.0.0.1:PORT unless already
#                                        answering; the functions talk to AWS at AWS_URL
#   scripts/lambda.sh down PORT          stop it
#
# The functions get the settings the SAM template gives them, pointed at the emulator:
# bucket dbsync-e2e, job table dbsync-e2e-jobs, state machine dbsync-e2e-sync.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
run=$repo/.dbsync/lambda
mkdir -p "$run"
py=${PYTHON:-python3}

install() {
  command -v cargo-lambda >/dev/null && return 0
  echo "lambda.sh: installing cargo-lambda" >&2
  "$py" -m pip install -q 'cargo-lambda>=1.8,<2' >/dev/null 2>&1 || "$py" -m pip install -q 'cargo-lambda>=1.8,<2'
}

answering() {
  "$py" -c 'import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass' "$1" 2>/dev/null
}

up() {
  local port=$1 aws=$2
  install
  # A target directory of its own: `cargo lambda watch` starts each function instance with
  # `cargo run`, which would otherwise queue behind the lock of a running `cargo test`. Built
  # here, before the server starts, so the first invocations do not wait on the compiler.
  # Not incremental (saves GBs); the watch's `cargo run` inherits both settings.
  export CARGO_TARGET_DIR=$run/target CARGO_INCREMENTAL=0
  (cd "$repo" && cargo build -q --workspace --bins)
  # A server already answering is kept only if it serves these very binaries.
  local stamp
  # ... and with these settings (this script's text holds them).
  stamp=$(cd "$CARGO_TARGET_DIR/debug" && sha256sum api hold-snapshot plan export-chunk assemble prepare \
    import-part finalize fail write-dump "$repo/scripts/lambda.sh" | sha256sum | cut -c1-16)
  if answering "$port"; then
    [ "$(cat "$run/watch-$port.stamp" 2>/dev/null)" = "$stamp" ] && return 0
    down "$port"
    sleep 1
  fi
  echo "$stamp" >"$run/watch-$port.stamp"
  local envs=(
    "AWS_ENDPOINT_URL=$aws" "AWS_REGION=us-east-1" "AWS_ACCESS_KEY_ID=test" "AWS_SECRET_ACCESS_KEY=test"
    "DBSYNC_BUCKET=dbsync-e2e" "DBSYNC_JOB_TABLE=dbsync-e2e-jobs"
    # cargo lambda reports no real deadline: the functions take the template's 900 s
    # timeout themselves; a short margin keeps tests quick.
    "DBSYNC_TIME_MARGIN_SECONDS=5" "DBSYNC_LOCAL_TIMEOUT_SECONDS=900"
    "DBSYNC_STATE_MACHINE_ARN=arn:aws:states:us-east-1:123456789012:stateMachine:dbsync-e2e-sync"
    "DBSYNC_PROTECTED_TARGETS=e2e/protected*" "DBSYNC_MAX_CONCURRENCY=8"
    "DBSYNC_SECRETS_PREFIX=e2e/"
    "RUST_LOG=${RUST_LOG:-info}"
  )
  local args=()
  for e in "${envs[@]}"; do args+=(--env-var "$e"); done
  # Its own session, so `down` stops it with every function process it started.
  cd "$repo"
  setsid nohup cargo lambda watch -A 127.0.0.1 -P "$port" --ignore-changes --timeout 900 \
    --concurrency 16 "${args[@]}" >"$run/watch-$port.log" 2>&1 </dev/null &
  echo $! >"$run/watch-$port.pid"
  for _ in $(seq 300); do answering "$port" && { warm "$port"; return 0; }; sleep 0.2; done
  echo "lambda.sh: cargo lambda watch did not start on $port; see $run/watch-$port.log" >&2
  tail -n 5 "$run/watch-$port.log" >&2
  return 1
}

# One invocation of every function at once (an empty event, refused), so that cold starts
# happen here and not inside the first test's time limits.
warm() {
  "$py" - "$1" <<'PY'
import json, sys, threading, urllib.error, urllib.request
port = sys.argv[1]
names = ["api", "hold-snapshot", "plan", "export-chunk", "assemble", "prepare", "import-part", "finalize", "fail", "write-dump"]
def call(name):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/2015-03-31/functions/{name}/invocations", data=b"{}", method="POST")
    try:
        urllib.request.urlopen(req, timeout=300).read()
    except urllib.error.HTTPError:
        pass
threads = [threading.Thread(target=call, args=(n,)) for n in names]
[t.start() for t in threads]
[t.join() for t in threads]
PY
}

down() {
  local pidf=$run/watch-$1.pid
  [ -f "$pidf" ] && kill -- "-$(cat "$pidf")" 2>/dev/null || true
  rm -f "$pidf"
}

cmd=${1:-}; shift || true
case "$cmd" in
  install) install ;;
  up) up "$@" ;;
  down) down "$@" ;;
  *) echo "usage: $0 install|up PORT AWS_URL|down PORT" >&2; exit 2 ;;
esac
