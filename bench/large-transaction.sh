#!/usr/bin/env bash
# One very large source transaction through pgbridge run, next to PostgreSQL's native logical
# replication (a subscription) on the same transaction in the same run: time from COMMIT on
# the source until every row is on the target, and pgbridge run's peak RSS (VmHWM).
#   scripts/testenv start && bench/large-transaction.sh [INSERT_ROWS] [UPDATE_ROWS]
# Defaults: 1,000,000-row INSERT, then an UPDATE of 1,000,000 rows, each one transaction.
set -euo pipefail
cd "$(dirname "$0")/.."
INSERT_ROWS=${1:-1000000}
UPDATE_ROWS=${2:-1000000}
BUILD_DIR=${BUILD_DIR:-build}
ninja -C "$BUILD_DIR" src/pgbridge >/dev/null
. bench/bridge.sh
trap 'psql "$B dbname=large_native_b" -X -q -c "DROP SUBSCRIPTION IF EXISTS large_ab" 2>/dev/null || true
      psql "$A" -X -q -c "DROP DATABASE IF EXISTS large_native_a WITH (FORCE)" 2>/dev/null || true
      psql "$B" -X -q -c "DROP DATABASE IF EXISTS large_native_b WITH (FORCE)" 2>/dev/null || true
      bridge_cleanup' EXIT

now() { date +%s.%N; }
# Seconds from $1 until `query` on conninfo $2 returns $3.
wait_for() {  # start, conninfo, query, expected
    until [ "$(psql "$2" -X -At -c "$3")" = "$4" ]; do sleep 0.2; done
    printf "%.1f" "$(echo "$(now) - $1" | bc)"
}

TABLE="CREATE TABLE t (id bigint PRIMARY KEY, body text, flag boolean, n int)"
psql "$A" -X -q -c "CREATE DATABASE large_native_a"
psql "$B" -X -q -c "CREATE DATABASE large_native_b"
psql "$A dbname=large_native_a" -X -q -c "$TABLE" -c "CREATE PUBLICATION large_ab FOR TABLE t" \
    -c "ALTER TABLE t REPLICA IDENTITY FULL"
psql "$B dbname=large_native_b" -X -q -c "$TABLE"
bridge_create large "$TABLE"
bridge_start
psql "$B dbname=large_native_b" -X -q -c "CREATE SUBSCRIPTION large_ab CONNECTION '$A dbname=large_native_a' PUBLICATION large_ab WITH (copy_data = false)" 2>/dev/null
sleep 2  # the apply worker starts

INSERT="INSERT INTO t SELECT g, md5(g::text) || md5((g + 1)::text), g % 2 = 0, 0 FROM generate_series(1, $INSERT_ROWS) g"
UPDATE="UPDATE t SET n = n + 1, flag = NOT flag WHERE id <= $UPDATE_ROWS"

echo "== $INSERT_ROWS-row INSERT in one transaction"
start=$(now); psql "$A dbname=large_native_a" -X -q -c "$INSERT"; written=$(printf "%.1f" "$(echo "$(now) - $start" | bc)")
native=$(wait_for "$start" "$B dbname=large_native_b" "SELECT count(*) FROM t" "$INSERT_ROWS")
echo "native:   written in $written s, on the target $native s after BEGIN"
start=$(now); psql "$A dbname=large_a" -X -q -c "$INSERT"; written=$(printf "%.1f" "$(echo "$(now) - $start" | bc)")
bridge=$(wait_for "$start" "$B dbname=large_b" "SELECT count(*) FROM t" "$INSERT_ROWS")
echo "pgbridge: written in $written s, on the target $bridge s after BEGIN; peak RSS $(bridge_rss)"

echo "== $UPDATE_ROWS-row UPDATE in one transaction"
start=$(now); psql "$A dbname=large_native_a" -X -q -c "$UPDATE"
native=$(wait_for "$start" "$B dbname=large_native_b" "SELECT count(*) FROM t WHERE n = 1" "$UPDATE_ROWS")
echo "native:   on the target $native s after BEGIN"
start=$(now); psql "$A dbname=large_a" -X -q -c "$UPDATE"
bridge=$(wait_for "$start" "$B dbname=large_b" "SELECT count(*) FROM t WHERE n = 1" "$UPDATE_ROWS")
echo "pgbridge: on the target $bridge s after BEGIN; peak RSS $(bridge_rss)"
psql "$B dbname=large_b" -X -At -c "SELECT 'parts per transaction: ' || string_agg(parts::text, ', ') FROM pgbridge.applied_transactions"
