#!/usr/bin/env bash
# Capture throughput next to PostgreSQL's own pg_recvlogical, on the same backlog.
#
# A backlog of ROWS row changes (bench/backlog.sh) with four pgoutput slots created before it.
# pg_recvlogical streams two of them to /dev/null (no decoding at all); pgbridge's capture
# decodes the other two into whole transactions (bench/capture_bench). All stop at the same
# LSN; they run in ABBA order so neither always reads the WAL from a cold cache.
#   scripts/testenv start && bench/capture-backlog.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
BUILD_DIR=${BUILD_DIR:-build}
[ -x /usr/bin/time ] || apt-get install -y -q time >/dev/null
ninja -C "$BUILD_DIR" bench/capture_bench >/dev/null
. bench/backlog.sh
BINDIR=$(pg_config --bindir)

backlog_create bench_recvlogical_1 bench_recvlogical_2 bench_pgbridge_1 bench_pgbridge_2
backlog_write "$ROWS"

recvlogical() {
    /usr/bin/time -f "pg_recvlogical: %e s wall, %U s user + %S s sys CPU, peak RSS %M KB" \
        "$BINDIR/pg_recvlogical" -d "$BACKLOG_DB" --slot "bench_recvlogical_$1" --start --no-loop \
        -o proto_version=1 -o publication_names=bench -E "$BACKLOG_END" -f /dev/null 2>&1 | tail -1
}
pgbridge() {
    /usr/bin/time -f "pgbridge capture: %e s wall, %U s user + %S s sys CPU, peak RSS %M KB" \
        "$BUILD_DIR/bench/capture_bench" "$BACKLOG_DB" "bench_pgbridge_$1" bench "$BACKLOG_END" 2>&1 |
        grep -v "info capture"
}
recvlogical 1
pgbridge 1
pgbridge 2
recvlogical 2
backlog_drop
