#!/usr/bin/env bash
# A direction's queue holding a gigabyte of messages: side a is written while side b's apply
# is held (a transaction on b holds the synced table's lock, as a long migration would), so
# pgbridge run captures and publishes into a growing queue; then the lock goes and the queue
# drains. Prints pgbridge run's peak RSS (VmHWM) after the fill and after the drain, and the
# drain time.
#   scripts/testenv start && bench/queue-backlog.sh [MEGABYTES]
set -euo pipefail
cd "$(dirname "$0")/.."
MEGABYTES=${1:-1024}
BUILD_DIR=${BUILD_DIR:-build}
ninja -C "$BUILD_DIR" src/pgbridge >/dev/null
. bench/bridge.sh
trap bridge_cleanup EXIT

bridge_create benchqueue "CREATE TABLE t (id bigint PRIMARY KEY, body text, n int)"
bridge_start
queue=pgbridge.benchqueue.to.b
# "BYTES MESSAGES" of the queue b applies from, as the broker counts them.
queue_state() {
    rabbitmqctl -n "$PGBRIDGE_TEST_RABBITMQ_NODE" -q list_queues name message_bytes messages |
        awk -v q="$queue" '$1 == q {print $2, $3}'
}

psql "$B dbname=benchqueue_b application_name=bench_hold" -X -q \
    -c "BEGIN" -c "LOCK TABLE t IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(100000)" \
    >/dev/null 2>&1 &
until [ "$(psql "$B" -X -At -c "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'bench_hold' AND l.mode = 'AccessExclusiveLock'")" = 1 ]; do
    sleep 0.2
done

echo "== filling the queue to $MEGABYTES MB (10,000-row transactions of ~0.5 kB rows)"
rows=0
start=$(date +%s)
while :; do
    read -r bytes messages <<<"$(queue_state)"
    [ "${bytes:-0}" -lt $((MEGABYTES * 1024 * 1024)) ] || break
    psql "$A dbname=benchqueue_a" -X -q -c "INSERT INTO t SELECT g, repeat(md5(g::text), 14), 0 FROM generate_series($rows + 1, $rows + 10000) g"
    rows=$((rows + 10000))
done
echo "queued: $((bytes / 1024 / 1024)) MB in $messages messages ($rows rows) after $(($(date +%s) - start)) s; peak RSS $(bridge_rss)"

psql "$B" -X -q -At -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'bench_hold'" >/dev/null
start=$(date +%s)
until [ "$(psql "$B dbname=benchqueue_b" -X -At -c "SELECT count(*) FROM t")" = "$rows" ]; do sleep 1; done
echo "drained: $rows rows on b $(($(date +%s) - start)) s after the lock went; peak RSS $(bridge_rss)"
