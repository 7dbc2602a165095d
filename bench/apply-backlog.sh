#!/usr/bin/env bash
# Catching up on a backlog of single-row transactions: pgbridge's capture + Postgres applier
# (bench/apply_bench: conflict resolution against locked rows and their column versions,
# origin, pipelined prepared writes, one target transaction per batch of engine.batch_size)
# next to PostgreSQL's native logical replication (a subscription) catching up on the very
# same backlog, from the same publication, in the same run.
#   scripts/testenv start && bench/apply-backlog.sh [TRANSACTIONS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
TXNS=${1:-1000000}
CLIENTS=${2:-2}
BUILD_DIR=${BUILD_DIR:-build}
ninja -C "$BUILD_DIR" bench/apply_bench src/pgbridge >/dev/null
. "$(scripts/testenv env-file)"
BINDIR=$(pg_config --bindir)
A=$PGBRIDGE_TEST_PG_A
B=$PGBRIDGE_TEST_PG_B
SRC="$A dbname=bench_apply_src"
DST="$B dbname=bench_apply_dst"
NATIVE="$B dbname=bench_native_dst"
work=$(mktemp -d)
chmod 755 "$work"
role=pgb_benchapply

cleanup() {
    psql "$NATIVE" -X -q -c "DROP SUBSCRIPTION IF EXISTS bench_native" >/dev/null 2>&1 || true
    "$BUILD_DIR/src/pgbridge" --config "$work/bridge.toml" teardown --yes \
        --admin-conninfo "src=$SRC" --admin-conninfo "dst=$DST" >/dev/null 2>&1 || true
    psql "$A" -X -q -c "DROP DATABASE IF EXISTS bench_apply_src WITH (FORCE)" 2>/dev/null || true
    psql "$B" -X -q -c "DROP DATABASE IF EXISTS bench_apply_dst WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS bench_native_dst WITH (FORCE)" 2>/dev/null || true
    for admin in "$A" "$B"; do
        psql "$admin" -X -q -c "DROP ROLE IF EXISTS $role" 2>/dev/null || true
    done
    rm -rf "$work"
}
cleanup_on_exit() { cleanup; }
trap cleanup_on_exit EXIT
cleanup >/dev/null 2>&1 || true
work=$(mktemp -d)
chmod 755 "$work"

schema="CREATE TABLE public.talents (id bigint PRIMARY KEY, name text, email text,
                                     status text, score int);"
psql "$A" -X -q -c "CREATE DATABASE bench_apply_src"
psql "$B" -X -q -c "CREATE DATABASE bench_apply_dst" -c "CREATE DATABASE bench_native_dst"
for db in "$SRC" "$DST" "$NATIVE"; do psql "$db" -X -q -c "$schema"; done
psql "$SRC" -X -q -c "CREATE SEQUENCE talents_id_seq"

echo "bench-apply-password" >"$work/role.pass"
echo "$PGBRIDGE_TEST_AMQP_PASSWORD" >"$work/rabbit.pass"
chmod 600 "$work/role.pass" "$work/rabbit.pass"
cat >"$work/bridge.toml" <<TOML
[bridge]
name = "benchapply"
[sides.src]
conninfo = "host=$PGBRIDGE_TEST_PG_A_HOST port=$PGBRIDGE_TEST_PG_A_PORT dbname=bench_apply_src user=$role"
password_file = "$work/role.pass"
[sides.dst]
conninfo = "host=$PGBRIDGE_TEST_PG_B_HOST port=$PGBRIDGE_TEST_PG_B_PORT dbname=bench_apply_dst user=$role"
password_file = "$work/role.pass"
[rabbitmq]
url = "$PGBRIDGE_TEST_AMQP_URL"
password_file = "$work/rabbit.pass"
[engine]
batch_size = ${BATCH_SIZE:-100}
[[tables]]
name = "public.talents"
TOML
"$BUILD_DIR/src/pgbridge" --config "$work/bridge.toml" setup \
    --admin-conninfo "src=$SRC" --admin-conninfo "dst=$DST" >/dev/null
# The native subscriber reads the same publication through its own slot, created now, before
# the backlog, like pgbridge's.
psql "$NATIVE" -X -q -c "CREATE SUBSCRIPTION bench_native CONNECTION '$SRC'
    PUBLICATION pgbridge_benchapply WITH (copy_data = false, enabled = false)"

cat >"$work/insert.sql" <<'SQL'
INSERT INTO public.talents VALUES (nextval('talents_id_seq'), 'name', 'user@example.org', 'new', 1);
SQL
echo "writing the backlog: $TXNS single-row INSERT transactions ($CLIENTS clients)"
"$BINDIR/pgbench" -n -c "$CLIENTS" -j "$CLIENTS" -t $((TXNS / CLIENTS)) -f "$work/insert.sql" \
    "$SRC" 2>&1 | awk '/tps =/ {print "  source write rate: " $3 " tps"}'
# The end: a transaction of its own after the backlog (a logical message, no row), so that the
# applier has a commit to reach; pg_current_wal_lsn() may lie past the last commit, where
# nothing more would ever arrive.
END=$(psql "$SRC" -X -At -c "SELECT pg_logical_emit_message(true, 'bench.end', '')")
ROWS=$(psql "$SRC" -X -At -c "SELECT count(*) FROM public.talents")
echo "backlog: $ROWS rows, ends at $END"

start=$(date +%s.%N)
psql "$NATIVE" -X -q -c "ALTER SUBSCRIPTION bench_native ENABLE"
until [ "$(psql "$NATIVE" -X -At -c "SELECT count(*) FROM public.talents")" = "$ROWS" ]; do
    sleep 0.2
done
native=$(echo "$(date +%s.%N) - $start" | bc)
printf "native logical replication: %d transactions in %.2f s: %.0f transactions/s\n" \
    "$ROWS" "$native" "$(echo "$ROWS / $native" | bc -l)"
psql "$NATIVE" -X -q -c "ALTER SUBSCRIPTION bench_native DISABLE"

out=$(${APPLY_PREFIX:-} "$BUILD_DIR/bench/apply_bench" "$work/bridge.toml" src "$END")
echo "$out"
[ "$(psql "$DST" -X -At -c "SELECT count(*) FROM public.talents")" = "$ROWS" ] ||
    { echo "pgbridge target does not hold every row"; exit 1; }
rate=$(echo "$out" | sed -n 's/.* s: \([0-9]*\) transactions\/s.*/\1/p')
printf "ratio pgbridge / native: %.2f\n" "$(echo "$rate / ($ROWS / $native)" | bc -l)"
