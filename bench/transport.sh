#!/usr/bin/env bash
# Changes/s from a real slot through RabbitMQ to a no-op consumer (bench/transport_bench),
# and in the same run the broker's ceiling: a minimal publisher and consumer moving as many
# messages of the same size through the same kind of priority queue.
# The backlog is made of small transactions (TXN rows, default 5) as an OLTP application
# writes them, so many transactions share one message (engine.batch_size = 100 changes).
#   scripts/testenv start && bench/transport.sh [ROWS] [TXN]
# PGBRIDGE_BENCH_QUEUE_TYPE=quorum measures quorum queues in priority bands instead.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-500000}
TXN=${2:-5}
BUILD_DIR=${BUILD_DIR:-build}
[ -x /usr/bin/time ] || apt-get install -y -q time >/dev/null
ninja -C "$BUILD_DIR" bench/transport_bench >/dev/null
. bench/backlog.sh

backlog_create bench_transport
backlog_write "$ROWS" "$TXN"
/usr/bin/time -f "transport_bench process: %e s wall, %U s user + %S s sys CPU, peak RSS %M KB" \
    "$BUILD_DIR/bench/transport_bench" "$BACKLOG_DB" bench_transport bench "$BACKLOG_END" "$ROWS" \
    "$PGBRIDGE_TEST_AMQP_URL" "$PGBRIDGE_TEST_AMQP_PASSWORD"
backlog_drop
