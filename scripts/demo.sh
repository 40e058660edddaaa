#!/usr/bin/env bash
# The main job on a fresh machine: two throwaway PostgreSQL databases, sample data in the
# source (a small parts catalogue with awkward values), a stale copy in the target, then
# `dbsync sync` and `dbsync verify`. Idempotent; `scripts/pg.sh down demo-source` etc. stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/pg.sh install
scripts/pg.sh up demo-source 55432
scripts/pg.sh up demo-target 55433
SRC=postgresql://postgres@127.0.0.1:55432/catalogue?sslmode=disable
DST=postgresql://postgres@127.0.0.1:55433/catalogue?sslmode=disable
export PGOPTIONS="-c client_min_messages=warning"
for port in 55432 55433; do
  psql -q -h 127.0.0.1 -p $port -U postgres -d postgres -c 'DROP DATABASE IF EXISTS catalogue' -c 'CREATE DATABASE catalogue' >/dev/null
  psql -q -h 127.0.0.1 -p $port -U postgres -d catalogue -v ON_ERROR_STOP=1 -f scripts/sample-schema.sql >/dev/null
done
psql -q -h 127.0.0.1 -p 55432 -U postgres -d catalogue -v ON_ERROR_STOP=1 -f scripts/sample-data.sql >/dev/null
# The target holds yesterday's data: it must be replaced, not merged.
psql -q -h 127.0.0.1 -p 55433 -U postgres -d catalogue -c "INSERT INTO shop.suppliers (name) VALUES ('stale supplier')" >/dev/null

# A debug build is plenty for the demo's data and shares its build cache with the tests;
# `cargo build --release -p dbsync` gives target/release/dbsync for real work.
cargo build -q -p dbsync
echo "+ dbsync plan";   target/debug/dbsync plan --source "$SRC" --chunk-size 1MB
echo "+ dbsync sync";   target/debug/dbsync sync --source "$SRC" --target "$DST" --chunk-size 1MB
echo "+ dbsync verify"; target/debug/dbsync verify --source "$SRC" --target "$DST"
