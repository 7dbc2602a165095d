# Sourced by the benchmarks: a backlog of row changes on cluster a of scripts/testenv.
#   backlog_create SLOT...   fresh database bench_backlog, table talents, publication bench,
#                            one pgoutput slot per name (created before any write)
#   backlog_write ROWS [TXN] ROWS changes: half inserts, 30 % updates, 20 % deletes, in
#                            transactions of TXN rows (default 1,000); sets BACKLOG_END
#   backlog_drop             drops slots and database
. "$(scripts/testenv env-file)"
BACKLOG_ADMIN=$PGBRIDGE_TEST_PG_A
BACKLOG_DB="$PGBRIDGE_TEST_PG_A dbname=bench_backlog"

backlog_create() {
    psql "$BACKLOG_ADMIN" -X -q -c "DROP DATABASE IF EXISTS bench_backlog WITH (FORCE)" \
        -c "CREATE DATABASE bench_backlog" 2>/dev/null
    psql "$BACKLOG_DB" -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE TABLE talents (id bigint PRIMARY KEY, name text, email text, status text,
                      updated_at timestamptz DEFAULT now());
ALTER TABLE talents REPLICA IDENTITY FULL;
CREATE PUBLICATION bench FOR TABLE talents;
SQL
    for slot in "$@"; do
        psql "$BACKLOG_DB" -X -q -At -c "SELECT 1 FROM pg_create_logical_replication_slot('$slot', 'pgoutput')" >/dev/null
    done
}

backlog_write() {
    local rows=$1 txn=${2:-1000}
    local inserts=$((rows / 2)) updates=$((rows * 3 / 10))
    local deletes=$((rows - inserts - updates))
    echo "writing the backlog: $inserts inserts, $updates updates, $deletes deletes, $txn rows per transaction"
    psql "$BACKLOG_DB" -X -q -v ON_ERROR_STOP=1 <<SQL
DO \$\$
BEGIN
  FOR b IN 0 .. ($inserts - 1) / $txn LOOP
    INSERT INTO talents (id, name, email, status)
      SELECT g, 'name ' || g, 'user' || g || '@example.org', 'new'
        FROM generate_series(b * $txn + 1, least((b + 1) * $txn, $inserts)) g;
    COMMIT;
  END LOOP;
  FOR b IN 0 .. ($updates - 1) / $txn LOOP
    UPDATE talents SET status = 'active', email = 'changed' || id || '@example.org'
     WHERE id BETWEEN b * $txn + 1 AND least((b + 1) * $txn, $updates);
    COMMIT;
  END LOOP;
  FOR b IN 0 .. ($deletes - 1) / $txn LOOP
    DELETE FROM talents WHERE id BETWEEN $inserts - (b + 1) * $txn + 1 AND $inserts - b * $txn;
    COMMIT;
  END LOOP;
END
\$\$;
SQL
    BACKLOG_END=$(psql "$BACKLOG_DB" -X -At -c "SELECT pg_current_wal_lsn()")
    echo "backlog ends at $BACKLOG_END"
}

backlog_drop() {
    psql "$BACKLOG_DB" -X -q -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = 'bench_backlog'" >/dev/null
    psql "$BACKLOG_ADMIN" -X -q -c "DROP DATABASE bench_backlog WITH (FORCE)"
}
