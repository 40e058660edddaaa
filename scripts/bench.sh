#!/usr/bin/env bash
# Benchmark (not a test): times, in one run and on the same data, the ways a user copies a
# database's data today against dbsync, and prints wall time, MB/s of database, peak RSS and
# ratios. Every copy is checked with `dbsync verify` (untimed).
#
#   scripts/bench.sh                      # both profiles, one run per path
#   BENCH_PROFILE=default scripts/bench.sh  # PostgreSQL's default settings, ~300 MB
#   BENCH_PROFILE=tuned scripts/bench.sh    # shared_buffers=1GB, max_wal_size=4GB, ~1 GB
#   BENCH_PROFILE=big scripts/bench.sh      # defaults, one 2 GB table (peak RSS on a big table)
#   BENCH_PROFILE=pg18 scripts/bench.sh     # as default, both servers PostgreSQL 18: statistics
#                                           # copied (dbsync's default there) vs ANALYZE vs none,
#                                           # and pg_dump/pg_restore 18 with --statistics
#   BENCH_RUNS=3 scripts/bench.sh         # median of 3 runs, paths alternating within each run
#   BENCH_PATHS="sync refresh" scripts/bench.sh  # some paths only (dump_restore dump_restore_stats
#                                         # pipe pgcopydb sync export_import refresh)
#
# Last, the changed-only refresh after four kinds of change to the source (path_refresh).
#
# Paths, each into a target holding the previous path's copy and timed with the TRUNCATE it
# needs: pg_dump -Fd -j2 -Z1 + TRUNCATE + pg_restore -j2 --data-only --disable-triggers (and
# each alone, against dbsync export and dbsync import alone); two parallel psql pipes of
# COPY (FORMAT binary) with triggers off; pgcopydb copy table-data (Debian's package, installed
# if missing; left out with the reason when it cannot be); dbsync sync. dbsync ANALYZEs what it
# loads by default and the others do not, so dump+restore, the pipe and pg_restore are also
# timed with the `vacuumdb --analyze-only -j2` that makes their target as ready to query.
# The data: pgbench plus the app dataset from $BENCH_DATASET (default ../shared/bench/dataset.sql
# beside the repository) when it exists. Source and target clusters run on this one machine.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
export PATH="$HOME/.cargo/bin:$PATH"
PROFILE=${BENCH_PROFILE:-both}
if [ "$PROFILE" = both ]; then
  BENCH_PROFILE=default "$0"
  echo
  BENCH_PROFILE=tuned "$0"
  exit
fi
RUNS=${BENCH_RUNS:-1}
# BENCH_PATHS="sync refresh": only those paths (ratios against a path left out are not printed).
PATHS=${BENCH_PATHS:-dump_restore dump_restore_stats pipe pgcopydb sync export_import refresh}
JOBS=${BENCH_JOBS:-2}
DATASET=${BENCH_DATASET:-$repo/../shared/bench/dataset.sql}
case $PROFILE in
  default)
    SCALE=${BENCH_SCALE:-9} APP_SCALE=${BENCH_APP_SCALE:-0.3} SP=55454 TP=55455
    export DBSYNC_PG_DEFAULTS=1
    settings="PostgreSQL defaults (shared_buffers 128MB, max_wal_size 1GB, fsync and synchronous_commit on)" ;;
  tuned)
    SCALE=${BENCH_SCALE:-32} APP_SCALE=${BENCH_APP_SCALE:-1} SP=55452 TP=55453
    export DBSYNC_PG_FSYNC=on DBSYNC_PG_SHARED_BUFFERS=1GB DBSYNC_PG_MAX_WAL_SIZE=4GB
    settings="shared_buffers 1GB, max_wal_size 4GB, fsync on, synchronous_commit off" ;;
  pg18)
    # Both servers and every client tool of PostgreSQL 18 (scripts/pg.sh fetches them).
    SCALE=${BENCH_SCALE:-9} APP_SCALE=${BENCH_APP_SCALE:-0.3} SP=55458 TP=55459 MAJOR=18
    export DBSYNC_PG_DEFAULTS=1
    settings="PostgreSQL 18 defaults on both sides (shared_buffers 128MB, max_wal_size 1GB, fsync on)" ;;
  big)
    # pgbench alone: pgbench_accounts is one table of about 2 GB, what dbsync's memory bound
    # is shown on (a chunk streams; no table or part is ever held whole).
    SCALE=${BENCH_SCALE:-160} APP_SCALE=0 SP=55456 TP=55457 DATASET=none
    export DBSYNC_PG_DEFAULTS=1
    settings="PostgreSQL defaults, pgbench only (pgbench_accounts about 2 GB)" ;;
  *) echo "bench.sh: BENCH_PROFILE is default, tuned, big, pg18 or both" >&2; exit 2 ;;
esac
work=$repo/.dbsync/bench/$PROFILE
mkdir -p "$work"

scripts/pg.sh install
# The e2e tests leave the emulator and the functions' watcher running; they take CPU from
# whatever is timed next (up to 2 s of a 6 s refresh here).
if pgrep -f "moto_server.py|cargo-lambda" >/dev/null 2>&1; then
  echo "bench.sh: moto or cargo lambda watch is running and competes for the CPU;" \
    "stop them first (scripts/moto.sh down 55500, scripts/lambda.sh down 55509)" >&2
fi
command -v /usr/bin/time >/dev/null 2>&1 || [ -x /usr/bin/time ] || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
bindir=$(scripts/pg.sh bindir)
major_args=()
if [ -n "${MAJOR:-}" ]; then
  major_args=(--major "$MAJOR")
  # pg_dump, pg_restore, psql, vacuumdb and pgbench of 18 (Debian's 15 refuse an 18 server).
  bindir=$(scripts/pg.sh tools)
  export PATH="$bindir:$PATH"
fi
scripts/pg.sh up "bench-$PROFILE-source" $SP "${major_args[@]}"
scripts/pg.sh up "bench-$PROFILE-target" $TP "${major_args[@]}"
export PGOPTIONS="-c client_min_messages=warning"
export DBSYNC_LOG=warn
SRC="postgresql://postgres@127.0.0.1:$SP/bench?sslmode=disable"
DST="postgresql://postgres@127.0.0.1:$TP/bench?sslmode=disable"
psqlc() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

marker="scale=$SCALE app_scale=$APP_SCALE dataset=$( [ -f "$DATASET" ] && md5sum <"$DATASET" | cut -c1-8 || echo none)"
if [ "$(psqlc "$SRC" -Atc "SELECT obj_description('public.pgbench_accounts'::regclass)" 2>/dev/null || true)" != "$marker" ]; then
  echo "building the source database ($marker) ..."
  psqlc -h 127.0.0.1 -p $SP -U postgres -d postgres -c 'DROP DATABASE IF EXISTS bench' -c 'CREATE DATABASE bench'
  "$bindir/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p $SP -U postgres bench >/dev/null 2>&1
  [ -f "$DATASET" ] && psqlc "$SRC" -v app_scale="$APP_SCALE" -f "$DATASET" >/dev/null
  psqlc "$SRC" -c 'VACUUM (ANALYZE)' -c "COMMENT ON TABLE public.pgbench_accounts IS '$marker'"
  psqlc -h 127.0.0.1 -p $TP -U postgres -d postgres -c 'DROP DATABASE IF EXISTS bench' -c 'CREATE DATABASE bench'
  "$bindir/pg_dump" --schema-only "$SRC" | psqlc "$DST" >/dev/null
fi
db_bytes=$(psqlc "$SRC" -Atc "SELECT pg_database_size('bench')")
db_mb=$(awk -v b="$db_bytes" 'BEGIN { printf "%.0f", b / 1e6 }')
user_tables="FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND schemaname NOT LIKE 'dbsync%'"
tables=$(psqlc "$DST" -Atc "SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') $user_tables")

cargo build --release -q -p dbsync
DBSYNC=$repo/target/release/dbsync

if ! command -v pgcopydb >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgcopydb >/dev/null 2>&1 || true
fi
pgcopydb_why=""
command -v pgcopydb >/dev/null || pgcopydb_why="pgcopydb is not installed and apt-get could not install it"

# timed CMD...: wall seconds into $wall, peak RSS (KiB) into $rss
timed() {
  local out=$work/time.out
  /usr/bin/time -f '%e %M' -o "$out" "$@" >/dev/null
  read -r wall rss <"$out"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
truncate_target() { psqlc "$DST" -c "TRUNCATE $tables" >/dev/null; }
# timed_after_truncate CMD...: the target's tables emptied, then CMD, timed together - what a
# user of these tools runs on a target that holds yesterday's copy (dbsync's own TRUNCATE is
# inside its time too; with shared_buffers=1GB it alone takes about a second).
timed_after_truncate() {
  timed env DST="$DST" TABLES="$tables" bash -c \
    'psql -X -q -v ON_ERROR_STOP=1 "$DST" -c "TRUNCATE $TABLES" >/dev/null && exec "$@"' _ "$@"
}
# settle: checkpoints both servers and flushes the OS's dirty pages, then waits (untimed, up
# to 60 s) until no autovacuum worker runs on either server, so a path is not timed against
# the ANALYZE/VACUUM that the previous path's load set off (a TRUNCATE waits a
# deadlock_timeout for an autovacuum worker to be cancelled).
settle() {
  local i db
  # What the previous path wrote (a sync's 2 GB of table and WAL) is flushed first, so its
  # writeback does not run during the next timed path: a nightly run meets a quiet server.
  psqlc "$SRC" -c CHECKPOINT >/dev/null; psqlc "$DST" -c CHECKPOINT >/dev/null; sync
  for i in $(seq 120); do
    busy=0
    for db in "$SRC" "$DST"; do
      [ "$(psqlc "$db" -Atc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")" = 0 ] || busy=1
    done
    [ $busy = 0 ] && return 0
    sleep 0.5
  done
}
verify() { "$DBSYNC" verify -q --jobs "$JOBS" --source "$SRC" --target "$DST" >/dev/null || { echo "bench.sh: $1 did not copy identically" >&2; exit 1; }; }
add() { awk -v a="$1" -v b="$2" 'BEGIN { print a + b }'; }

declare -A WALLS RSSS IO
record() { WALLS[$1]+="$2 "; RSSS[$1]+="$3 "; }

# What a path read and wrote on each side: the bytes of the pages its sessions read into
# shared buffers (pg_stat_database's blks_read: from the OS, its page cache or the disk; a
# sequential scan of a table larger than shared_buffers reads each page once) and the WAL the
# server wrote (what changed in its tables and indexes, with full-page images; hint bits and
# pruning after a mass UPDATE count too). io_mark before the path, io_record KEY after it.
io_now() {
  psqlc "$1" -Atc "SELECT (SELECT sum(blks_read) * 8192 FROM pg_stat_database
                            WHERE datname = current_database()) || ' ' || pg_current_wal_lsn()"
}
io_mark() { io_src=$(io_now "$SRC"); io_dst=$(io_now "$DST"); }
io_side() { # DB "bytes lsn" before: "read_MiB wal_MiB" since then
  local bytes lsn
  read -r bytes lsn <<<"$2"
  psqlc "$1" -Atc "SELECT round(((SELECT sum(blks_read) * 8192 FROM pg_stat_database
                                   WHERE datname = current_database()) - $bytes) / 1048576.0)
                          || ' ' || round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn') / 1048576.0)"
}
io_record() {
  # Sessions report their counters when they end (and at most a second later).
  sleep 1.5
  local s d
  s=$(io_side "$SRC" "$io_src"); d=$(io_side "$DST" "$io_dst")
  IO[$1]="${s% *} | ${s#* } | ${d% *} | ${d#* }"
}

path_dump_restore() {
  truncate_target
  settle
  rm -rf "$work/dump"
  timed "$bindir/pg_dump" -Fd -j "$JOBS" -Z 1 -f "$work/dump" "$SRC"; local w1=$wall r1=$rss
  timed_after_truncate "$bindir/pg_restore" -j "$JOBS" --data-only --disable-triggers -d "$DST" "$work/dump"
  record pg_dump "$w1" "$r1"; record pg_restore "$wall" "$rss"
  record dump_restore "$(add "$w1" "$wall")" $(( r1 > rss ? r1 : rss ))
  local w2=$wall r2=$rss
  then_analyze pg_restore "$w2"
  record dump_restore_analyze "$(add "$w1" "$w2_analyzed")" $(( r1 > r2 ? r1 : r2 ))
  verify "pg_dump + pg_restore"
  echo "  pg_dump ${w1}s + pg_restore ${w2}s + vacuumdb --analyze-only ${analyze_wall}s"
}

# PostgreSQL 18's pg_dump and pg_restore carry the planner statistics with the data
# (--statistics): the bare tools' way to a target ready to query without ANALYZE.
path_dump_restore_stats() {
  [ -n "${MAJOR:-}" ] || return 0
  truncate_target
  settle
  rm -rf "$work/dump"
  # --data-only excludes statistics; the data section with --statistics is the tables' data
  # and their statistics.
  timed "$bindir/pg_dump" -Fd -j "$JOBS" -Z 1 --section=data --statistics -f "$work/dump" "$SRC"; local w1=$wall r1=$rss
  timed_after_truncate "$bindir/pg_restore" -j "$JOBS" --section=data --statistics --disable-triggers -d "$DST" "$work/dump"
  record dump_restore_stats "$(add "$w1" "$wall")" $(( r1 > rss ? r1 : rss ))
  verify "pg_dump + pg_restore --statistics"
  echo "  pg_dump --statistics ${w1}s + pg_restore --statistics ${wall}s"
}

# then_analyze KEY WALL: what a user who wants the target ready to query runs after KEY's load
# (dbsync's default does it), timed; KEY_analyze gets WALL plus it, $w2_analyzed the sum.
then_analyze() {
  local r=$rss
  timed "$bindir/vacuumdb" -q --analyze-only -j "$JOBS" -d "$DST"
  analyze_wall=$wall w2_analyzed=$(add "$2" "$wall")
  record "$1_analyze" "$w2_analyzed" "$r"
}

# One lane of the psql pipe: its tables one after the other, binary COPY, triggers off.
pipe_lane() {
  local t
  for t in "$@"; do
    psql -X -q -v ON_ERROR_STOP=1 "$SRC" -c "COPY $t TO STDOUT (FORMAT binary)" |
      psql -X -q -v ON_ERROR_STOP=1 "$DST" -c "SET session_replication_role = replica" -c "COPY $t FROM STDIN (FORMAT binary)"
  done
}
export -f pipe_lane
path_pipe() {
  settle
  # Largest tables first, dealt to the lanes in turn.
  local lanes=() i=0 t
  for _ in $(seq "$JOBS"); do lanes+=(""); done
  while read -r t; do lanes[i % JOBS]+="$t "; i=$((i + 1)); done < <(psqlc "$SRC" -Atc \
    "SELECT format('%I.%I', schemaname, tablename) $user_tables ORDER BY pg_table_size(format('%I.%I', schemaname, tablename)) DESC")
  local script="" lane
  for lane in "${lanes[@]}"; do script+="pipe_lane $lane & "; done
  timed_after_truncate env SRC="$SRC" bash -c "$script wait"
  record pipe "$wall" "$rss"
  local w=$wall
  then_analyze pipe "$w"
  verify "the psql pipe"
  echo "  psql binary pipe ${w}s + vacuumdb --analyze-only ${analyze_wall}s"
}

path_pgcopydb() {
  [ -n "$pgcopydb_why" ] && return 0
  settle
  rm -rf "$work/pgcopydb"
  # Triggers off as for the other paths (pgcopydb's table-data copy would trip the foreign keys).
  timed_after_truncate pgcopydb copy table-data --source "$SRC" --table-jobs "$JOBS" --dir "$work/pgcopydb" \
    --target "$DST&options=-csession_replication_role%3Dreplica" 2>"$work/pgcopydb.log"
  record pgcopydb "$wall" "$rss"
  verify "pgcopydb"
  echo "  pgcopydb copy table-data ${wall}s"
}

# dbsync ANALYZEs what it loads by default (pg_restore --data-only and the pipe do not):
# timed both ways.
path_sync() {
  local analyze modes=(on off)
  # On 18 the default copies the source's statistics instead of running ANALYZE.
  [ -n "${MAJOR:-}" ] && modes=(copy on off)
  for analyze in "${modes[@]}"; do
    settle
    io_mark
    timed "$DBSYNC" sync -q --jobs "$JOBS" --analyze "$analyze" --source "$SRC" --target "$DST"
    record "sync_$analyze" "$wall" "$rss"
    io_record "sync_$analyze"
    verify "dbsync sync --analyze $analyze"
    echo "  dbsync sync --analyze $analyze ${wall}s"
  done
}

# The nightly refresh (dbsync sync --changed-only) on a target that holds an identical copy,
# after each change to the source (untimed): (c) nothing changed; (a) 1% of pgbench_accounts
# updated in its newest keys plus 0.5% new rows; (b) 1% updated scattered uniformly; (d) 30%
# updated. Against the full `dbsync sync` of the same run (sync_on) and dump+restore+analyze.
path_refresh() {
  local n case sql
  n=$(psqlc "$SRC" -Atc "SELECT max(aid) FROM pgbench_accounts")
  for case in c a b d; do
    case $case in
      c) sql="SELECT 1" ;;
      a) sql="UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid > $n - $n / 200;
              INSERT INTO pgbench_accounts SELECT g, 1, 0, '' FROM generate_series($n + 1, $n + $n / 200) g" ;;
      b) sql="UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 100 = 7" ;;
      d) sql="UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 10 < 3" ;;
    esac
    psqlc "$SRC" -c "$sql" >/dev/null
    n=$(psqlc "$SRC" -Atc "SELECT max(aid) FROM pgbench_accounts")
    # The night before's copy has been vacuumed by the time a nightly refresh runs
    # (autovacuum takes a freshly loaded table within a minute); untimed here, else that
    # autovacuum of the 2 GB the sync just loaded runs during the timed refresh.
    psqlc "$DST" -c "VACUUM" >/dev/null
    settle
    io_mark
    timed "$DBSYNC" sync -q --jobs "$JOBS" --changed-only --source "$SRC" --target "$DST"
    record "refresh_$case" "$wall" "$rss"
    io_record "refresh_$case"
    verify "dbsync sync --changed-only (case $case)"
    echo "  dbsync sync --changed-only, case $case: ${wall}s"
  done
  # The cases' updates leave dead rows and their inserts add 0.5 % a run: without this the
  # next run's tables are larger (the 2 GB source grew to 3.7 GB over two runs; a plain
  # VACUUM frees the space but keeps the file, which every scan still reads). Untimed.
  psqlc "$SRC" -c "VACUUM FULL pgbench_accounts" >/dev/null
  psqlc "$DST" -c "VACUUM pgbench_accounts" >/dev/null
}

path_export_import() {
  rm -rf "$work/export"
  settle
  timed "$DBSYNC" export -q --jobs "$JOBS" --source "$SRC" --to "$work/export"; local w1=$wall r1=$rss
  timed "$DBSYNC" import -q --jobs "$JOBS" --from "$work/export" --target "$DST"; local w2=$wall
  record export "$w1" "$r1"; record import_on "$wall" "$rss"
  verify "dbsync export + import"
  settle
  timed "$DBSYNC" import -q --jobs "$JOBS" --analyze off --restart --from "$work/export" --target "$DST"
  record import_off "$wall" "$rss"
  verify "dbsync import --analyze off"
  echo "  dbsync export ${w1}s + import ${w2}s (--analyze off: ${wall}s)"
}

echo "profile $PROFILE: $settings"
echo "database: $db_mb MB; $JOBS jobs; $RUNS run(s), paths alternating"
for run in $(seq "$RUNS"); do
  echo "run $run"
  for path in $PATHS; do "path_$path"; done
done

W() { printf '%s\n' ${WALLS[$1]} | median; }
R() { printf '%s\n' ${RSSS[$1]} | median; }
row() { # label key baseline-key
  [ -n "${WALLS[$2]:-}" ] && [ -n "${WALLS[$3]:-}" ] || return 0
  awk -v l="$1" -v w="$(W "$2")" -v r="$(R "$2")" -v mb="$db_mb" -v b="$(W "$3")" -v bn="$3" \
    'BEGIN { printf "| %-52s | %7.1f s | %5.0f | %7.1f MiB | %5.2fx vs %s |\n", l, w, mb / w, r / 1024, b / w, bn }'
}
echo
echo "profile $PROFILE, $db_mb MB, median of $RUNS"
echo "| path | wall | MB/s | peak RSS | ratio |"
echo "|---|---:|---:|---:|---:|"
row "pg_dump -Fd -j$JOBS -Z1 + pg_restore -j$JOBS --data-only" dump_restore dump_restore
row "psql COPY binary pipe, $JOBS at a time, triggers off" pipe dump_restore
row "pgcopydb copy table-data --table-jobs $JOBS" pgcopydb dump_restore
on_label="dbsync sync --jobs $JOBS"
[ -n "${MAJOR:-}" ] && on_label="dbsync sync --jobs $JOBS --analyze on"
row "$on_label" sync_on dump_restore
row "$on_label" sync_on pipe
row "pg_dump + pg_restore + vacuumdb --analyze-only -j$JOBS" dump_restore_analyze dump_restore_analyze
row "dbsync sync --jobs $JOBS (both ANALYZE)" sync_on dump_restore_analyze
row "psql binary pipe + vacuumdb --analyze-only -j$JOBS" pipe_analyze pipe_analyze
row "dbsync sync --jobs $JOBS (both ANALYZE)" sync_on pipe_analyze
if [ -n "${MAJOR:-}" ]; then
  row "pg_dump + pg_restore --section=data --statistics" dump_restore_stats dump_restore_stats
  row "dbsync sync --jobs $JOBS (default: statistics copied)" sync_copy dump_restore_stats
  row "dbsync sync --jobs $JOBS (default: statistics copied)" sync_copy dump_restore
  row "dbsync sync --jobs $JOBS (default: statistics copied)" sync_copy dump_restore_analyze
  row "dbsync sync --jobs $JOBS (default: statistics copied)" sync_copy pipe
  row "dbsync sync --jobs $JOBS (default: statistics copied)" sync_copy sync_on
fi
row "dbsync sync --jobs $JOBS --analyze off" sync_off dump_restore
row "dbsync sync --jobs $JOBS --analyze off" sync_off pipe
row "pg_dump -Fd -j$JOBS -Z1 alone" pg_dump pg_dump
row "dbsync export --jobs $JOBS" export pg_dump
row "pg_restore -j$JOBS --data-only alone" pg_restore pg_restore
row "dbsync import --jobs $JOBS" import_on pg_restore
row "pg_restore -j$JOBS --data-only + vacuumdb --analyze-only" pg_restore_analyze pg_restore_analyze
row "dbsync import --jobs $JOBS (both ANALYZE)" import_on pg_restore_analyze
row "dbsync import --jobs $JOBS --analyze off" import_off pg_restore
row "refresh (c) nothing changed" refresh_c sync_on
row "refresh (a) 1% newest keys + 0.5% inserts" refresh_a sync_on
row "refresh (a) 1% newest keys + 0.5% inserts" refresh_a dump_restore_analyze
row "refresh (b) 1% scattered" refresh_b sync_on
row "refresh (d) 30% changed" refresh_d sync_on
if [ -n "${IO[refresh_c]:-}" ]; then
  echo
  echo "pages read into shared buffers and WAL written per side, MiB, last run"
  echo "| path | source read | source WAL | target read | target WAL |"
  echo "|---|---:|---:|---:|---:|"
  for key in sync_on refresh_c refresh_a refresh_b refresh_d; do
    [ -n "${IO[$key]:-}" ] && echo "| $key | ${IO[$key]} |"
  done
fi
[ -z "$pgcopydb_why" ] || echo "(pgcopydb left out: $pgcopydb_why)"
