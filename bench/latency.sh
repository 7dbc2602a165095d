#!/usr/bin/env bash
# End-to-end latency of pgbridge run at a steady rate on both sides at once (source commit to
# the moment the row is written on the other side), and the rate one direction keeps up with,
# next to PostgreSQL's native logical replication on the same workload in the same run.
#   scripts/testenv start && bench/latency.sh [RATE per side] [SECONDS]
# KEEPUP_ROUNDS=N repeats the keep-up phase N times in ABBA order (pgbridge first in odd
# rounds, native first in even ones) and prints each round's ratio and their median;
# STEADY=0 leaves the latency phase out (keep-up only).
# Native replication of PostgreSQL 15 cannot run both directions on one table (no origin
# filter before 16), so its run uses two tables, one per direction: the same load per side.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-1000}
SECONDS_RUN=${2:-30}
KEEPUP_ROUNDS=${KEEPUP_ROUNDS:-1}
STEADY=${STEADY:-1}
BUILD_DIR=${BUILD_DIR:-build}
ninja -C "$BUILD_DIR" src/pgbridge >/dev/null
. "$(scripts/testenv env-file)"
BINDIR=$(pg_config --bindir)
A=$PGBRIDGE_TEST_PG_A
B=$PGBRIDGE_TEST_PG_B
work=$(mktemp -d)
chmod 755 "$work"
role=pgb_benchlat
PGBRIDGE=$BUILD_DIR/src/pgbridge
RUN_PID=""
METRICS_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cleanup() {
    [ -z "$RUN_PID" ] || kill -TERM "$RUN_PID" 2>/dev/null || true
    sleep 1
    psql "$B dbname=lat_native_b" -X -q -c "DROP SUBSCRIPTION IF EXISTS lat_ab" 2>/dev/null || true
    psql "$A dbname=lat_native_a" -X -q -c "DROP SUBSCRIPTION IF EXISTS lat_ba" 2>/dev/null || true
    "$PGBRIDGE" --config "$work/bridge.toml" teardown --yes \
        --admin-conninfo "a=$A dbname=lat_a" --admin-conninfo "b=$B dbname=lat_b" >/dev/null 2>&1 || true
    for db in lat_a lat_native_a; do psql "$A" -X -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null || true; done
    for db in lat_b lat_native_b; do psql "$B" -X -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null || true; done
    for admin in "$A" "$B"; do psql "$admin" -X -q -c "DROP ROLE IF EXISTS $role" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# A table, and a record of when each row written on the other side arrived (a trigger that
# fires for pgbridge's applier and for the native apply worker alike).
schema() {  # $1: parity of the ids this side writes itself; $2: table
    cat <<SQL
CREATE TABLE IF NOT EXISTS $2 (id bigint PRIMARY KEY, name text, email text, status text);
CREATE TABLE IF NOT EXISTS arrivals (id bigint PRIMARY KEY, at timestamptz NOT NULL);
CREATE SEQUENCE IF NOT EXISTS ids;
CREATE OR REPLACE FUNCTION note_arrival() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_catalog AS \$\$
BEGIN
    IF NEW.id % 2 <> $1 THEN INSERT INTO arrivals VALUES (NEW.id, clock_timestamp()); END IF;
    RETURN NULL;
END \$\$;
CREATE TRIGGER note_arrival_$2 AFTER INSERT ON $2 FOR EACH ROW EXECUTE FUNCTION note_arrival();
ALTER TABLE $2 ENABLE ALWAYS TRIGGER note_arrival_$2;
SQL
}
insert_script() {  # $1: parity, $2: table
    echo "INSERT INTO $2 VALUES (nextval('ids') * 2 + $1, 'name', 'user@example.org', 'new');"
}

# Latency of the rows written on $1 (conninfo, parity $3, table $4) as they arrived on $2.
latency() {
    psql "$2" -X -q -c "DROP TABLE IF EXISTS src_commits" -c "CREATE TABLE src_commits (id bigint, at timestamptz)"
    psql "$1" -X -q -c "COPY (SELECT id, pg_xact_commit_timestamp(xmin) FROM $4 WHERE id % 2 = $3) TO STDOUT" |
        psql "$2" -X -q -c "COPY src_commits FROM STDIN"
    psql "$2" -X -At -F ' ' -c "
        SELECT count(*),
               round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1),
               round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::numeric, 1),
               round(max(ms)::numeric, 1)
          FROM (SELECT extract(epoch FROM a.at - s.at) * 1000 AS ms
                  FROM src_commits s JOIN arrivals a USING (id)) l"
}
wait_arrived() {  # conninfo, expected count
    until [ "$(psql "$1" -X -At -c "SELECT count(*) FROM arrivals")" -ge "$2" ]; do sleep 0.2; done
}

echo "== setting up: pgbridge (one table, both directions) and native (one table per direction)"
psql "$A" -X -q -c "CREATE DATABASE lat_a" -c "CREATE DATABASE lat_native_a"
psql "$B" -X -q -c "CREATE DATABASE lat_b" -c "CREATE DATABASE lat_native_b"
schema 1 t | psql "$A dbname=lat_a" -X -q
schema 0 t | psql "$B dbname=lat_b" -X -q
{ schema 1 t_ab; schema 1 t_ba; } | psql "$A dbname=lat_native_a" -X -q
{ schema 0 t_ab; schema 0 t_ba; } | psql "$B dbname=lat_native_b" -X -q
psql "$A dbname=lat_native_a" -X -q -c "CREATE PUBLICATION lat_ab FOR TABLE t_ab"
psql "$B dbname=lat_native_b" -X -q -c "CREATE PUBLICATION lat_ba FOR TABLE t_ba"

echo "bench-latency" >"$work/role.pass"
echo "$PGBRIDGE_TEST_AMQP_PASSWORD" >"$work/rabbit.pass"
chmod 600 "$work/role.pass" "$work/rabbit.pass"
cat >"$work/bridge.toml" <<TOML
[bridge]
name = "benchlat"
[sides.a]
conninfo = "host=$PGBRIDGE_TEST_PG_A_HOST port=$PGBRIDGE_TEST_PG_A_PORT dbname=lat_a user=$role"
password_file = "$work/role.pass"
[sides.b]
conninfo = "host=$PGBRIDGE_TEST_PG_B_HOST port=$PGBRIDGE_TEST_PG_B_PORT dbname=lat_b user=$role"
password_file = "$work/role.pass"
[rabbitmq]
url = "$PGBRIDGE_TEST_AMQP_URL"
password_file = "$work/rabbit.pass"
[metrics]
listen = "127.0.0.1:$METRICS_PORT"
[[tables]]
name = "public.t"
TOML
"$PGBRIDGE" --config "$work/bridge.toml" setup --admin-conninfo "a=$A dbname=lat_a" \
    --admin-conninfo "b=$B dbname=lat_b" >/dev/null
"$PGBRIDGE" --config "$work/bridge.toml" run 2>"$work/run.log" &
RUN_PID=$!
until grep -q "streaming both directions" "$work/run.log"; do sleep 0.1; done

TXNS=$((RATE * SECONDS_RUN))
run_steady() {  # conninfo a, conninfo b, table on a, table on b
    insert_script 1 "$3" >"$work/a.sql"
    insert_script 0 "$4" >"$work/b.sql"
    "$BINDIR/pgbench" -n -c 2 -j 2 -R "$RATE" -t $((TXNS / 2)) -f "$work/a.sql" "$1" >"$work/pa.log" 2>&1 &
    local pa=$!
    "$BINDIR/pgbench" -n -c 2 -j 2 -R "$RATE" -t $((TXNS / 2)) -f "$work/b.sql" "$2" >"$work/pb.log" 2>&1
    wait "$pa"
    wait_arrived "$2" "$TXNS"
    wait_arrived "$1" "$TXNS"
}

if [ "$STEADY" = 1 ]; then
echo "== pgbridge: $RATE single-row INSERT transactions/s on each side for $SECONDS_RUN s"
run_steady "$A dbname=lat_a" "$B dbname=lat_b" t t
read -r n p50 p99 max <<<"$(latency "$A dbname=lat_a" "$B dbname=lat_b" 1 t)"
echo "pgbridge a->b: $n rows, latency ms p50 $p50, p99 $p99, max $max"
read -r n p50 p99 max <<<"$(latency "$B dbname=lat_b" "$A dbname=lat_a" 0 t)"
echo "pgbridge b->a: $n rows, latency ms p50 $p50, p99 $p99, max $max"
echo "pgbridge run peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$RUN_PID/status")"
fi

echo "== native logical replication: the same load, one table per direction"
psql "$B dbname=lat_native_b" -X -q -c "CREATE SUBSCRIPTION lat_ab CONNECTION '$A dbname=lat_native_a' PUBLICATION lat_ab WITH (copy_data = false)" 2>/dev/null
psql "$A dbname=lat_native_a" -X -q -c "CREATE SUBSCRIPTION lat_ba CONNECTION '$B dbname=lat_native_b' PUBLICATION lat_ba WITH (copy_data = false)" 2>/dev/null
sleep 2  # the apply workers start
if [ "$STEADY" = 1 ]; then
run_steady "$A dbname=lat_native_a" "$B dbname=lat_native_b" t_ab t_ba
read -r n p50 p99 max <<<"$(latency "$A dbname=lat_native_a" "$B dbname=lat_native_b" 1 t_ab)"
echo "native a->b: $n rows, latency ms p50 $p50, p99 $p99, max $max"
read -r n p50 p99 max <<<"$(latency "$B dbname=lat_native_b" "$A dbname=lat_native_a" 0 t_ba)"
echo "native b->a: $n rows, latency ms p50 $p50, p99 $p99, max $max"
fi

echo "== keeping up: the source's own maximum single-row write rate for 15 s, one direction"
# pgbridge's counter NAME for the a->b direction, from its metrics.
counter() {
    curl -s "http://127.0.0.1:$METRICS_PORT/metrics" |
        awk -v n="$1" '$1 ~ "^" n "\\{" && $1 ~ /"a->b"|source="a"/ {print $2; exit}'
}
catch_up() {  # conninfo source, conninfo target, table, label
    local before after start end rows changes0 messages0
    before=$(psql "$2" -X -At -c "SELECT count(*) FROM arrivals")
    changes0=$(counter pgbridge_changes_captured_total)
    messages0=$(counter pgbridge_messages_published_total)
    insert_script 1 "$3" >"$work/max.sql"
    start=$(date +%s.%N)
    "$BINDIR/pgbench" -n -c 2 -j 2 -T 15 -f "$work/max.sql" "$1" 2>&1 | awk -v l="$4" '/tps =/ {printf "%s source wrote %.0f tps", l, $3}'
    rows=$(psql "$1" -X -At -c "SELECT count(*) FROM $3 WHERE id % 2 = 1")
    wait_arrived "$2" $((rows))
    end=$(date +%s.%N)
    rate=$(echo "($rows - $before) / ($end - $start)" | bc -l)
    printf "; all applied %.1f s after the writes began (%.0f rows/s end to end)" \
        "$(echo "$end - $start" | bc)" "$rate"
    if [ "$5" = pgbridge ]; then
        printf "; %.1f changes per message" "$(echo "($(counter pgbridge_changes_captured_total) - $changes0) / ($(counter pgbridge_messages_published_total) - $messages0 + 0.000001)" | bc -l)"
    fi
    echo
    echo "$5 $rate" >>"$work/keepup.txt"
}
for round in $(seq 1 "$KEEPUP_ROUNDS"); do
    order="pgbridge native"
    [ $((round % 2)) = 1 ] || order="native pgbridge"
    for who in $order; do
        case $who in
            pgbridge) catch_up "$A dbname=lat_a" "$B dbname=lat_b" t "pgbridge a->b:" pgbridge ;;
            native) catch_up "$A dbname=lat_native_a" "$B dbname=lat_native_b" t_ab "native   a->b:" native ;;
        esac
    done
done
awk '$1 == "pgbridge" {p[++np] = $2} $1 == "native" {n[++nn] = $2}
     END {
         for (i = 1; i <= np; i++) { r[i] = p[i] / n[i]; printf "round %d: pgbridge/native %.2fx\n", i, r[i] }
         for (i = 1; i <= np; i++) for (j = i + 1; j <= np; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
         printf "keep-up ratio, median of %d rounds: %.2fx\n", np, (np % 2 ? r[(np + 1) / 2] : (r[np / 2] + r[np / 2 + 1]) / 2)
     }' "$work/keepup.txt"
echo "pgbridge run peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$RUN_PID/status")"
