#!/usr/bin/env bash
# What pgbridge costs an application's writes: pgbench single-row UPDATEs and INSERTs on two
# identical tables of one database, one synced by pgbridge (in its publication, REPLICA
# IDENTITY FULL, set up by `pgbridge setup`), one not, alternating in the same run (ABBA), with
# synchronous_commit = off so that CPU cost shows rather than the disk.
#   1. while `pgbridge run` syncs the synced table both ways: what the machine pays, the
#      daemon's capture, column versions and apply included (on a small machine they share its
#      cores with pgbench, and a backlog of the synced runs is still being worked off during
#      the unsynced ones: read it as an order of magnitude);
#   2. the write path alone (the daemon stopped, nothing consumes the slot): what the
#      application's own transaction pays.
#   scripts/testenv start && bench/write-path.sh [SECONDS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
CLIENTS=${2:-2}
BUILD_DIR=${BUILD_DIR:-build}
ninja -C "$BUILD_DIR" src/pgbridge >/dev/null
. "$(scripts/testenv env-file)"
BINDIR=$(pg_config --bindir)
A=$PGBRIDGE_TEST_PG_A
B=$PGBRIDGE_TEST_PG_B
PGBRIDGE=$BUILD_DIR/src/pgbridge
role=pgb_benchwp
work=$(mktemp -d)
chmod 755 "$work"
RUN_PID=""

cleanup() {
    [ -z "$RUN_PID" ] || { kill -TERM "$RUN_PID" 2>/dev/null || true; wait "$RUN_PID" 2>/dev/null || true; }
    "$PGBRIDGE" --config "$work/bridge.toml" teardown --yes \
        --admin-conninfo "a=$A dbname=wp_a" --admin-conninfo "b=$B dbname=wp_b" >/dev/null 2>&1 || true
    psql "$A" -X -q -c "DROP DATABASE IF EXISTS wp_a WITH (FORCE)" 2>/dev/null || true
    psql "$B" -X -q -c "DROP DATABASE IF EXISTS wp_b WITH (FORCE)" 2>/dev/null || true
    for admin in "$A" "$B"; do psql "$admin" -X -q -c "DROP ROLE IF EXISTS $role" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

psql "$A" -X -q -c "CREATE DATABASE wp_a"
psql "$B" -X -q -c "CREATE DATABASE wp_b"
for db in "$A dbname=wp_a" "$B dbname=wp_b"; do
    psql "$db" -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE plain (id bigint PRIMARY KEY, email text, status text, phone text);
CREATE TABLE synced (id bigint PRIMARY KEY, email text, status text, phone text);
CREATE SEQUENCE plain_ids START 1000001;
CREATE SEQUENCE synced_ids START 1000001;
INSERT INTO plain SELECT g, 'user' || g || '@example.org', 'new', '555' FROM generate_series(1, 100000) g;
INSERT INTO synced SELECT * FROM plain;
SQL
done

echo "bench-write-path" >"$work/role.pass"
echo "$PGBRIDGE_TEST_AMQP_PASSWORD" >"$work/rabbit.pass"
chmod 600 "$work/role.pass" "$work/rabbit.pass"
cat >"$work/bridge.toml" <<TOML
[bridge]
name = "benchwp"
[sides.a]
conninfo = "host=$PGBRIDGE_TEST_PG_A_HOST port=$PGBRIDGE_TEST_PG_A_PORT dbname=wp_a user=$role"
password_file = "$work/role.pass"
[sides.b]
conninfo = "host=$PGBRIDGE_TEST_PG_B_HOST port=$PGBRIDGE_TEST_PG_B_PORT dbname=wp_b user=$role"
password_file = "$work/role.pass"
[rabbitmq]
url = "$PGBRIDGE_TEST_AMQP_URL"
password_file = "$work/rabbit.pass"
[[tables]]
name = "public.synced"
TOML
"$PGBRIDGE" --config "$work/bridge.toml" setup --admin-conninfo "a=$A dbname=wp_a" \
    --admin-conninfo "b=$B dbname=wp_b" >/dev/null

for t in plain synced; do
    cat >"$work/update_$t.sql" <<SQL
\set id random(1, 100000)
UPDATE $t SET status = 'active', phone = :id::text WHERE id = :id;
SQL
    cat >"$work/insert_$t.sql" <<SQL
INSERT INTO $t VALUES (nextval('${t}_ids'), 'someone@example.org', 'new', '555');
SQL
done
tps() {  # operation, table
    PGOPTIONS="-c synchronous_commit=off" "$BINDIR/pgbench" -n -c "$CLIENTS" -j "$CLIENTS" \
        -T "$SECONDS_PER_RUN" -f "$work/$1_$2.sql" "$A dbname=wp_a" 2>&1 |
        awk '/tps =/ {printf "%.0f", $3}'
}
compare() {  # label
    for op in update insert; do
        local p1 s1 s2 p2
        p1=$(tps "$op" plain); s1=$(tps "$op" synced); s2=$(tps "$op" synced); p2=$(tps "$op" plain)
        printf "%-28s %-6s unsynced %6s %6s tps, synced %6s %6s tps: %.2fx\n" "$1" "$op" \
            "$p1" "$p2" "$s1" "$s2" "$(echo "($s1 + $s2) / ($p1 + $p2)" | bc -l)"
    done
}
echo "single-row writes, $CLIENTS clients, $SECONDS_PER_RUN s each, ABBA, synchronous_commit = off"
"$PGBRIDGE" --config "$work/bridge.toml" run 2>"$work/run.log" &
RUN_PID=$!
until grep -q "streaming both directions" "$work/run.log"; do sleep 0.1; done
compare "with pgbridge run syncing:"
kill -TERM "$RUN_PID"
wait "$RUN_PID" || true
RUN_PID=""
compare "write path (no daemon):"
