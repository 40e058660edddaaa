#!/usr/bin/env bash
# Benchmark (not a test): builds a ~1 GB database in a throwaway source cluster, then times,
# in one run and on the same data, pg_dump -Fd -j2 -Z1 + pg_restore -j2 --data-only against
# `dbsync sync` and `dbsync export` + `dbsync import`, printing wall time, MB/s of database,
# peak RSS and ratios. Every copy is checked with `dbsync verify` (untimed).
#
#   scripts/bench.sh                 # dataset: pgbench -s 32 + the app dataset (if found), ~1 GB
#   BENCH_SCALE=8 scripts/bench.sh   # smaller pgbench part, for a quick look
#   BENCH_RUNS=3 scripts/bench.sh    # median of 3 runs per path
#
# The app dataset is read from $BENCH_DATASET (default: ../shared/bench/dataset.sql beside the
# repository) when it exists; without it the data is pgbench's alone.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
export PATH="$HOME/.cargo/bin:$PATH"
SCALE=${BENCH_SCALE:-32}
RUNS=${BENCH_RUNS:-1}
JOBS=${BENCH_JOBS:-2}
DATASET=${BENCH_DATASET:-$repo/../shared/bench/dataset.sql}
SP=55452 TP=55453
work=$repo/.dbsync/bench
mkdir -p "$work"

scripts/pg.sh install
bindir=$(scripts/pg.sh bindir)
export DBSYNC_PG_FSYNC=on DBSYNC_PG_SHARED_BUFFERS=1GB
scripts/pg.sh up bench-source $SP
scripts/pg.sh up bench-target $TP
export PGOPTIONS="-c client_min_messages=warning"
export DBSYNC_LOG=warn
SRC="postgresql://postgres@127.0.0.1:$SP/bench?sslmode=disable"
DST="postgresql://postgres@127.0.0.1:$TP/bench?sslmode=disable"
psqlc() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

marker="scale=$SCALE dataset=$( [ -f "$DATASET" ] && md5sum <"$DATASET" | cut -c1-8 || echo none)"
if [ "$(psqlc "$SRC" -Atc "SELECT obj_description('public.pgbench_accounts'::regclass)" 2>/dev/null || true)" != "$marker" ]; then
  echo "building the source database ($marker) ..."
  psqlc -h 127.0.0.1 -p $SP -U postgres -d postgres -c 'DROP DATABASE IF EXISTS bench' -c 'CREATE DATABASE bench'
  "$bindir/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p $SP -U postgres bench >/dev/null 2>&1
  [ -f "$DATASET" ] && psqlc "$SRC" -v app_scale=1 -f "$DATASET" >/dev/null
  psqlc "$SRC" -c 'VACUUM (ANALYZE)' -c "COMMENT ON TABLE public.pgbench_accounts IS '$marker'"
  psqlc -h 127.0.0.1 -p $TP -U postgres -d postgres -c 'DROP DATABASE IF EXISTS bench' -c 'CREATE DATABASE bench'
  "$bindir/pg_dump" --schema-only "$SRC" | psqlc "$DST" >/dev/null
fi
db_bytes=$(psqlc "$SRC" -Atc "SELECT pg_database_size('bench')")
db_mb=$(awk -v b="$db_bytes" 'BEGIN { printf "%.0f", b / 1e6 }')
tables=$(psqlc "$DST" -Atc "SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') FROM pg_tables WHERE schemaname IN ('public', 'app')")

cargo build --release -q -p dbsync
DBSYNC=$repo/target/release/dbsync

# timed NAME CMD...: wall seconds into $wall, peak RSS (KiB) into $rss
timed() {
  local out=$work/time.out
  /usr/bin/time -f '%e %M' -o "$out" "$@" >/dev/null
  read -r wall rss <"$out"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
truncate_target() { psqlc "$DST" -c "TRUNCATE $tables" >/dev/null; }

declare -A W R
run_path() {
  local name=$1; shift
  local walls=() rsss=()
  for _ in $(seq "$RUNS"); do
    "$@"
    walls+=("$wall"); rsss+=("$rss")
  done
  W[$name]=$(printf '%s\n' "${walls[@]}" | median)
  R[$name]=$(printf '%s\n' "${rsss[@]}" | median)
}

dump_restore() {
  truncate_target
  rm -rf "$work/dump"
  timed "$bindir/pg_dump" -Fd -j "$JOBS" -Z 1 -f "$work/dump" "$SRC"; local w1=$wall r1=$rss
  timed "$bindir/pg_restore" -j "$JOBS" --data-only --disable-triggers -d "$DST" "$work/dump"; local w2=$wall r2=$rss
  wall=$(awk -v a="$w1" -v b="$w2" 'BEGIN { print a + b }'); rss=$(( r1 > r2 ? r1 : r2 ))
  echo "  pg_dump ${w1}s + pg_restore ${w2}s"
}
dbsync_sync() {
  timed "$DBSYNC" sync -q --jobs "$JOBS" --source "$SRC" --target "$DST"
  "$DBSYNC" verify -q --source "$SRC" --target "$DST" >/dev/null
  echo "  dbsync sync ${wall}s (verified)"
}
dbsync_export_import() {
  rm -rf "$work/export"
  timed "$DBSYNC" export -q --jobs "$JOBS" --source "$SRC" --to "$work/export"; local w1=$wall r1=$rss
  timed "$DBSYNC" import -q --jobs "$JOBS" --from "$work/export" --target "$DST"; local w2=$wall r2=$rss
  wall=$(awk -v a="$w1" -v b="$w2" 'BEGIN { print a + b }'); rss=$(( r1 > r2 ? r1 : r2 ))
  "$DBSYNC" verify -q --source "$SRC" --target "$DST" >/dev/null
  echo "  dbsync export ${w1}s + import ${w2}s (verified)"
}

echo "database: $db_mb MB; $JOBS jobs; $RUNS run(s) per path"
run_path dump dump_restore
run_path sync dbsync_sync
run_path expimp dbsync_export_import

base=${W[dump]}
printf '\n%-38s %9s %9s %12s %10s\n' path wall MB/s "peak RSS" "vs dump"
for k in dump sync expimp; do
  case $k in
    dump) label="pg_dump -Fd -j$JOBS -Z1 + pg_restore -j$JOBS" ;;
    sync) label="dbsync sync --jobs $JOBS" ;;
    expimp) label="dbsync export + import --jobs $JOBS" ;;
  esac
  awk -v l="$label" -v w="${W[$k]}" -v r="${R[$k]}" -v mb="$db_mb" -v b="$base" \
    'BEGIN { printf "%-38s %8.1fs %9.0f %9.1f MiB %9.2fx\n", l, w, mb / w, r / 1024, b / w }'
done
