#!/usr/bin/env bash
# Capture throughput next to PostgreSQL's own pg_recvlogical, on the same backlog.
#
# Writes a backlog of ROWS row changes (half inserts, 30 % updates, 20 % deletes, in
# transactions of 1,000) on cluster a of scripts/testenv, with two pgoutput slots created
# before it. pg_recvlogical streams one slot to /dev/null (no decoding at all); pgbridge's
# capture decodes the other into whole transactions (bench/capture_bench). Both stop at the
# same LSN. Prints time, changes/s, peak memory and the ratio.
#   scripts/testenv start && bench/capture-backlog.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
BUILD_DIR=${BUILD_DIR:-build}
. "$(scripts/testenv env-file)"
[ -x /usr/bin/time ] || apt-get install -y -q time >/dev/null
ninja -C "$BUILD_DIR" bench/capture_bench >/dev/null
BINDIR=$(pg_config --bindir)

admin=$PGBRIDGE_TEST_PG_A
db="$admin dbname=bench_capture"
psql "$admin" -X -q -c "DROP DATABASE IF EXISTS bench_capture" -c "CREATE DATABASE bench_capture" 2>/dev/null
psql "$db" -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE talents (id bigint PRIMARY KEY, name text, email text, status text,
                      updated_at timestamptz DEFAULT now());
ALTER TABLE talents REPLICA IDENTITY FULL;
CREATE PUBLICATION bench FOR TABLE talents;
SELECT 1 FROM pg_create_logical_replication_slot('bench_recvlogical_1', 'pgoutput');
SELECT 1 FROM pg_create_logical_replication_slot('bench_recvlogical_2', 'pgoutput');
SELECT 1 FROM pg_create_logical_replication_slot('bench_pgbridge_1', 'pgoutput');
SELECT 1 FROM pg_create_logical_replication_slot('bench_pgbridge_2', 'pgoutput');
SQL

inserts=$((ROWS / 2)); updates=$((ROWS * 3 / 10)); deletes=$((ROWS - inserts - updates))
echo "writing the backlog: $inserts inserts, $updates updates, $deletes deletes"
psql "$db" -X -q -v ON_ERROR_STOP=1 <<SQL
DO \$\$
BEGIN
  FOR b IN 0 .. ($inserts - 1) / 1000 LOOP
    INSERT INTO talents (id, name, email, status)
      SELECT g, 'name ' || g, 'user' || g || '@example.org', 'new'
        FROM generate_series(b * 1000 + 1, least((b + 1) * 1000, $inserts)) g;
    COMMIT;
  END LOOP;
  FOR b IN 0 .. ($updates - 1) / 1000 LOOP
    UPDATE talents SET status = 'active', email = 'changed' || id || '@example.org'
     WHERE id BETWEEN b * 1000 + 1 AND least((b + 1) * 1000, $updates);
    COMMIT;
  END LOOP;
  FOR b IN 0 .. ($deletes - 1) / 1000 LOOP
    DELETE FROM talents WHERE id BETWEEN $inserts - (b + 1) * 1000 + 1 AND $inserts - b * 1000;
    COMMIT;
  END LOOP;
END
\$\$;
SQL
until_lsn=$(psql "$db" -X -At -c "SELECT pg_current_wal_lsn()")
wal=$(psql "$db" -X -At -c "SELECT pg_size_pretty(pg_current_wal_lsn() - restart_lsn) FROM pg_replication_slots WHERE slot_name = 'bench_pgbridge_1'")
echo "backlog ends at $until_lsn ($wal of WAL)"

# ABBA order, so that neither side always reads the WAL from a cold cache.
recvlogical() {
    /usr/bin/time -f "pg_recvlogical: %e s wall, %U s user + %S s sys CPU, peak RSS %M KB" \
        "$BINDIR/pg_recvlogical" -d "$db" --slot "bench_recvlogical_$1" --start --no-loop \
        -o proto_version=1 -o publication_names=bench -E "$until_lsn" -f /dev/null 2>&1 | tail -1
}
pgbridge() {
    /usr/bin/time -f "pgbridge capture: %e s wall, %U s user + %S s sys CPU, peak RSS %M KB" \
        "$BUILD_DIR/bench/capture_bench" "$db" "bench_pgbridge_$1" bench "$until_lsn" 2>&1 |
        grep -v "info capture"
}
recvlogical 1
pgbridge 1
pgbridge 2
recvlogical 2

psql "$admin" -X -q -c "DROP DATABASE bench_capture WITH (FORCE)" 2>/dev/null || {
    psql "$db" -X -q -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'bench\_%'"
    psql "$admin" -X -q -c "DROP DATABASE bench_capture WITH (FORCE)"
}
