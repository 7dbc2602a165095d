#!/usr/bin/env bash
# What the column-version trigger costs a local write: pgbench single-row UPDATEs (and
# INSERTs) on two identical tables, one with pgbridge's trigger (sql/01_metadata_schema.sql),
# one without, in the same run, alternating.
#   scripts/testenv start && bench/version-trigger.sh [SECONDS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
CLIENTS=${2:-2}
. "$(scripts/testenv env-file)"
BINDIR=$(pg_config --bindir)
admin=$PGBRIDGE_TEST_PG_A
db="$admin dbname=bench_versions"
psql "$admin" -X -q -c "DROP DATABASE IF EXISTS bench_versions" -c "CREATE DATABASE bench_versions"
psql "$db" -X -q -v ON_ERROR_STOP=1 -f sql/01_metadata_schema.sql
psql "$db" -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE plain (id int PRIMARY KEY, email text, status text, phone text);
CREATE TABLE tracked (id int PRIMARY KEY, email text, status text, phone text);
INSERT INTO plain SELECT g, 'user' || g || '@example.org', 'new', '555' FROM generate_series(1, 100000) g;
INSERT INTO tracked SELECT * FROM plain;
CREATE TRIGGER pgbridge_row_versions AFTER INSERT OR UPDATE OR DELETE ON tracked
    FOR EACH ROW EXECUTE FUNCTION pgbridge.track_row_versions('id');
SQL
work=$(mktemp -d)
for t in plain tracked; do
    cat >"$work/update_$t.sql" <<SQL
\set id random(1, 100000)
UPDATE $t SET status = 'active', phone = :id::text WHERE id = :id;
SQL
done
run() {
    "$BINDIR/pgbench" -n -c "$CLIENTS" -T "$SECONDS_PER_RUN" -f "$work/update_$1.sql" "$db" 2>&1 |
        awk -v t="$1" '/tps =/ {printf "%-8s %s tps\n", t, $3}'
}
echo "single-row UPDATE, $CLIENTS clients, $SECONDS_PER_RUN s each, ABBA:"
run plain; run tracked; run tracked; run plain
rm -rf "$work"
psql "$admin" -X -q -c "DROP DATABASE bench_versions"
