#!/usr/bin/env bash
# Throwaway PostgreSQL clusters for the demo, the tests and the benchmark.
#
#   scripts/pg.sh install            install the server binaries if they are missing (idempotent)
#   scripts/pg.sh up NAME PORT       start cluster NAME on 127.0.0.1:PORT (init it first if needed); idempotent
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

find_bindir() {
  local d
  for d in ${DBSYNC_PG_BINDIR:-} /usr/lib/postgresql/{18,17,16,15,14}/bin; do
    [ -n "$d" ] && [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
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
  as_pg "$(find_bindir)/pg_ctl" -D "$data" reload >/dev/null 2>&1 || true
}

up() {
  local name=$1 port=$2 bindir dir
  install
  bindir=$(find_bindir)
  dir=$root/$name
  mkdir -p "$dir"
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
    # what a user's untuned server runs with); otherwise tuned for throwaway test data.
    [ "${DBSYNC_PG_DEFAULTS:-}" = 1 ] || cat >>"$dir/data/postgresql.conf" <<CONF
shared_buffers = ${DBSYNC_PG_SHARED_BUFFERS:-256MB}
max_wal_size = 4GB
fsync = ${DBSYNC_PG_FSYNC:-off}
synchronous_commit = off
full_page_writes = ${DBSYNC_PG_FSYNC:-off}
CONF
  fi
  ensure_tls "$dir"
  if as_pg "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    return 0
  fi
  if ! as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "-p $port" start >/dev/null; then
    echo "pg.sh: cluster $name did not start on port $port; the end of $dir/server.log:" >&2
    tail -n 5 "$dir/server.log" >&2
    return 1
  fi
}

# Drops the databases whose names start with PREFIX on the cluster at PORT (what earlier test
# runs left behind: every test makes its own pair and keeps it for inspection).
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
  bindir=$(find_bindir) || return 0
  dir=$root/$name
  [ -d "$dir/data" ] || return 0
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
  *) echo "usage: $0 install|up NAME PORT|down NAME|crash NAME|url NAME PORT [DB]|bindir" >&2; exit 2 ;;
esac
