#!/usr/bin/env bash
# Catching up on a backlog of single-row transactions with `pgbridge run` and [engine]
# apply_workers = 1, 2 and 4, next to PostgreSQL's native logical replication catching up on
# the very same backlog, in the same run. Every consumer reads the backlog from its own slot,
# created before it was written. Each pgbridge run goes in two phases, so that the apply is
# measured apart from the capture that feeds it:
#   capture: the target table is locked (as a long migration would), so the whole backlog is
#            captured and published into the shards' queues; timed until the slot has passed it;
#   apply:   the lock goes; timed until every row is on the target.
#   scripts/testenv start && bench/apply-workers.sh [TRANSACTIONS] [WORKERS...]
# Order: native, then each worker count, then native again (the ratio uses their mean).
set -euo pipefail
cd "$(dirname "$0")/.."
TXNS=${1:-1000000}
shift || true
WORKERS=("$@")
[ ${#WORKERS[@]} -gt 0 ] || WORKERS=(1 2 4)
CLIENTS=${CLIENTS:-2}
BUILD_DIR=${BUILD_DIR:-build}
ninja -C "$BUILD_DIR" src/pgbridge >/dev/null
. "$(scripts/testenv env-file)"
BINDIR=$(pg_config --bindir)
PGBRIDGE=$BUILD_DIR/src/pgbridge
A=$PGBRIDGE_TEST_PG_A
B=$PGBRIDGE_TEST_PG_B
SRC="$A dbname=bench_aw_src"
role=pgb_benchaw
work=$(mktemp -d)
chmod 755 "$work"
RUN_PID=""

config() {  # $1: worker count
    cat <<TOML
[bridge]
name = "benchaw$1"
[sides.src]
conninfo = "host=$PGBRIDGE_TEST_PG_A_HOST port=$PGBRIDGE_TEST_PG_A_PORT dbname=bench_aw_src user=$role"
password_file = "$work/role.pass"
[sides.dst]
conninfo = "host=$PGBRIDGE_TEST_PG_B_HOST port=$PGBRIDGE_TEST_PG_B_PORT dbname=bench_aw_dst$1 user=$role"
password_file = "$work/role.pass"
[rabbitmq]
url = "$PGBRIDGE_TEST_AMQP_URL"
password_file = "$work/rabbit.pass"
[engine]
batch_size = ${BATCH_SIZE:-100}
apply_workers = $1
[[tables]]
name = "public.talents"
TOML
}

cleanup() {
    [ -z "$RUN_PID" ] || kill -TERM "$RUN_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    for n in native native2; do
        psql "$B dbname=bench_aw_$n" -X -q -c "DROP SUBSCRIPTION IF EXISTS bench_aw_$n" >/dev/null 2>&1 || true
    done
    for w in "${WORKERS[@]}"; do
        [ -f "$work/w$w.toml" ] && "$PGBRIDGE" --config "$work/w$w.toml" teardown --yes \
            --admin-conninfo "src=$SRC" --admin-conninfo "dst=$B dbname=bench_aw_dst$w" >/dev/null 2>&1 || true
        psql "$B" -X -q -c "DROP DATABASE IF EXISTS bench_aw_dst$w WITH (FORCE)" 2>/dev/null || true
    done
    psql "$A" -X -q -c "DROP DATABASE IF EXISTS bench_aw_src WITH (FORCE)" 2>/dev/null || true
    for n in native native2; do
        psql "$B" -X -q -c "DROP DATABASE IF EXISTS bench_aw_$n WITH (FORCE)" 2>/dev/null || true
    done
    for admin in "$A" "$B"; do psql "$admin" -X -q -c "DROP ROLE IF EXISTS $role" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
cleanup >/dev/null 2>&1 || true
work=$(mktemp -d)
chmod 755 "$work"

schema="CREATE TABLE public.talents (id bigint PRIMARY KEY, name text, email text,
                                     status text, score int);"
psql "$A" -X -q -c "CREATE DATABASE bench_aw_src"
psql "$SRC" -X -q -c "$schema" -c "CREATE SEQUENCE talents_id_seq" \
    -c "CREATE PUBLICATION bench_aw_native FOR TABLE public.talents"
for n in native native2; do
    psql "$B" -X -q -c "CREATE DATABASE bench_aw_$n"
    psql "$B dbname=bench_aw_$n" -X -q -c "$schema"
    # Its slot now, before the backlog, like pgbridge's.
    psql "$B dbname=bench_aw_$n" -X -q -c "CREATE SUBSCRIPTION bench_aw_$n CONNECTION '$SRC'
        PUBLICATION bench_aw_native WITH (copy_data = false, enabled = false)"
done
echo "bench-aw-password" >"$work/role.pass"
echo "$PGBRIDGE_TEST_AMQP_PASSWORD" >"$work/rabbit.pass"
chmod 600 "$work/role.pass" "$work/rabbit.pass"

start_run() {  # $1: workers; waits until both directions stream
    "$PGBRIDGE" --config "$work/w$1.toml" run 2>"$work/run$1.log" &
    RUN_PID=$!
    until grep -q "streaming both directions" "$work/run$1.log"; do
        kill -0 "$RUN_PID" 2>/dev/null || { cat "$work/run$1.log"; exit 1; }
        sleep 0.1
    done
}
stop_run() {
    kill -TERM "$RUN_PID"
    wait "$RUN_PID" || true
    RUN_PID=""
}

for w in "${WORKERS[@]}"; do
    psql "$B" -X -q -c "CREATE DATABASE bench_aw_dst$w"
    psql "$B dbname=bench_aw_dst$w" -X -q -c "$schema"
    config "$w" >"$work/w$w.toml"
    "$PGBRIDGE" --config "$work/w$w.toml" setup --admin-conninfo "src=$SRC" \
        --admin-conninfo "dst=$B dbname=bench_aw_dst$w" >/dev/null
    # The initial copy of the (empty) table, done now: the backlog is caught up from the slot.
    start_run "$w"
    stop_run
done

cat >"$work/insert.sql" <<'SQL'
INSERT INTO public.talents VALUES (nextval('talents_id_seq'), 'name', 'user@example.org', 'new', 1);
SQL
echo "writing the backlog: $TXNS single-row INSERT transactions ($CLIENTS clients)"
"$BINDIR/pgbench" -n -c "$CLIENTS" -j "$CLIENTS" -t $((TXNS / CLIENTS)) -f "$work/insert.sql" \
    "$SRC" 2>&1 | awk '/tps =/ {print "  source write rate: " $3 " tps"}'
ROWS=$(psql "$SRC" -X -At -c "SELECT count(*) FROM public.talents")
# A transaction of its own after the backlog: the slot passes it once everything is captured.
END=$(psql "$SRC" -X -At -c "SELECT pg_logical_emit_message(true, 'bench.end', '')")
echo "backlog: $ROWS rows, ends at $END"

until_rows() {  # conninfo
    until [ "$(psql "$1" -X -At -c "SELECT count(*) FROM public.talents")" = "$ROWS" ]; do
        sleep 0.2
    done
}
native() {  # $1: native or native2
    local start took
    start=$(date +%s.%N)
    psql "$B dbname=bench_aw_$1" -X -q -c "ALTER SUBSCRIPTION bench_aw_$1 ENABLE"
    until_rows "$B dbname=bench_aw_$1"
    took=$(echo "$(date +%s.%N) - $start" | bc)
    psql "$B dbname=bench_aw_$1" -X -q -c "ALTER SUBSCRIPTION bench_aw_$1 DISABLE"
    printf "native logical replication: %d transactions in %.2f s: %.0f transactions/s\n" \
        "$ROWS" "$took" "$(echo "$ROWS / $took" | bc -l)" >&2
    echo "$took"
}
rate() { echo "$ROWS / $1" | bc -l; }

native_first=$(native native)
declare -A captured applied
for w in "${WORKERS[@]}"; do
    dst="$B dbname=bench_aw_dst$w application_name=bench_aw_hold"
    psql "$dst" -X -q -c "BEGIN" -c "LOCK TABLE public.talents IN ACCESS EXCLUSIVE MODE" \
        -c "SELECT pg_sleep(100000)" >/dev/null 2>&1 &
    until [ "$(psql "$B" -X -At -c "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'bench_aw_hold' AND l.mode = 'AccessExclusiveLock'")" = 1 ]; do
        sleep 0.1
    done
    start=$(date +%s.%N)
    start_run "$w"
    until [ "$(psql "$SRC" -X -At -c "SELECT confirmed_flush_lsn > '$END' FROM pg_replication_slots WHERE slot_name = 'pgbridge_benchaw${w}_src'")" = t ]; do
        sleep 0.2
    done
    captured[$w]=$(echo "$(date +%s.%N) - $start" | bc)
    psql "$B" -X -q -At -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'bench_aw_hold'" >/dev/null
    start=$(date +%s.%N)
    until_rows "$B dbname=bench_aw_dst$w"
    applied[$w]=$(echo "$(date +%s.%N) - $start" | bc)
    rss=$(awk '/VmHWM/ {print $2 / 1024}' "/proc/$RUN_PID/status")
    stop_run
    printf "pgbridge run, apply_workers = %d: captured in %.2f s (%.0f transactions/s), applied in %.2f s (%.0f transactions/s); peak RSS %.0f MB\n" \
        "$w" "${captured[$w]}" "$(rate "${captured[$w]}")" "${applied[$w]}" \
        "$(rate "${applied[$w]}")" "$rss"
done
native_last=$(native native2)
native_mean=$(echo "($native_first + $native_last) / 2" | bc -l)
for w in "${WORKERS[@]}"; do
    printf "apply_workers = %d: apply / native %.2f; capture / native %.2f\n" "$w" \
        "$(echo "$native_mean / ${applied[$w]}" | bc -l)" \
        "$(echo "$native_mean / ${captured[$w]}" | bc -l)"
done
