#!/usr/bin/env bash
# The local AWS emulator for tests (moto server, loopback only).
#
#   scripts/moto.sh install      install moto[server] from PyPI if missing (idempotent)
#   scripts/moto.sh up PORT [GATEWAY_PORT LAMBDA_URL]
#                                start it on 127.0.0.1:PORT unless already answering there; with
#                                a gateway port, Step Functions Tasks invoke Lambda functions at
#                                LAMBDA_URL (cargo lambda watch) through it (see moto_server.py)
#   scripts/moto.sh down PORT    stop the one this script started
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
run=$repo/.dbsync/moto
mkdir -p "$run"
py=${PYTHON:-python3}

install() {
  "$py" -c 'import moto.server, flask' 2>/dev/null && return 0
  echo "moto.sh: installing moto[server]" >&2
  "$py" -m pip install -q 'moto[server]>=5.1,<6' >/dev/null 2>&1 || "$py" -m pip install -q 'moto[server]>=5.1,<6'
}

answering() {
  "$py" -c 'import sys, urllib.request; urllib.request.urlopen("http://127.0.0.1:%s/moto-api/" % sys.argv[1], timeout=1)' "$1" 2>/dev/null
}

# The gateway of this checkout: it fronts the API at /execute-api (an unsigned call is refused).
current_gateway() {
  "$py" -c 'import sys, urllib.request, urllib.error
try: urllib.request.urlopen("http://127.0.0.1:%s/execute-api/syncs" % sys.argv[1], timeout=1)
except urllib.error.HTTPError as e: sys.exit(0 if e.code == 403 and b"SigV4" in e.read() else 1)
sys.exit(1)' "$1" 2>/dev/null
}

up() {
  local port=$1 gw=${2:-$1}
  install
  if answering "$port"; then
    if [ "$gw" = "$port" ]; then answering "$gw" && return 0; else current_gateway "$gw" && return 0; fi
    # An emulator from an older run, without the gateway (or an older gateway): replace it.
    down "$port"
    sleep 0.5
  fi
  nohup "$py" "$repo/scripts/moto_server.py" "$@" >"$run/moto-$port.log" 2>&1 &
  echo $! >"$run/moto-$port.pid"
  for _ in $(seq 100); do answering "$port" && answering "$gw" && return 0; sleep 0.1; done
  echo "moto.sh: moto did not start on $port; see $run/moto-$port.log" >&2
  tail -n 5 "$run/moto-$port.log" >&2
  return 1
}

down() {
  local pidf=$run/moto-$1.pid
  [ -f "$pidf" ] && kill "$(cat "$pidf")" 2>/dev/null || true
  rm -f "$pidf"
}

cmd=${1:-}; shift || true
case "$cmd" in
  install) install ;;
  up) up "$@" ;;
  down) down "$@" ;;
  *) echo "usage: $0 install|up PORT|down PORT" >&2; exit 2 ;;
esac
