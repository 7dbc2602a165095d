#!/usr/bin/env bash
# What [history] costs the bridge: catch-up on a backlog of single-row transactions (an insert
# and an update of it each) through `pgbridge run`, history off and on, in ABBA order in the
# same run. Capture keeps the local writes' history on the source, the applier the applied
# changes' on the target: both are in the measured time.
#   scripts/testenv start && bench/history.sh [TRANSACTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
TXNS=${1:-100000}
BUILD_DIR=${BUILD_DIR:-build}
ninja -C "$BUILD_DIR" src/pgbridge >/dev/null
. bench/bridge.sh
RESULTS=$(mktemp)
trap 'bridge_cleanup; rm -f "$RESULTS"' EXIT

# One phase: a fresh bridge, the backlog written while pgbridge is stopped, then the time from
# pgbridge run's start until the target holds the last transaction's update.
phase() {
    local history=$1 name=bench_history_$1_$2
    bridge_create "$name" "CREATE TABLE public.t (id bigint PRIMARY KEY, v text, n int)"
    if [ "$history" = on ]; then
        printf '[history]\nretention = "1d"\n' >>"$BRIDGE_WORK/bridge.toml"
    fi
    psql "$A dbname=${name}_a" -X -q -v ON_ERROR_STOP=1 <<SQL
DO \$\$
BEGIN
  FOR i IN 1 .. $TXNS LOOP
    INSERT INTO public.t VALUES (i, 'v' || i, 0);
    UPDATE public.t SET n = 1 WHERE id = i;
    COMMIT;
  END LOOP;
END
\$\$;
SQL
    local start end
    start=$(date +%s.%N)
    bridge_start
    until [ "$(psql "$B dbname=${name}_b" -X -At -c "SELECT count(*) FROM public.t WHERE n = 1")" = "$TXNS" ]; do
        sleep 0.2
    done
    end=$(date +%s.%N)
    local kept
    kept=$(psql "$B dbname=${name}_b" -X -At -c "SELECT count(*) FROM pgbridge.history")
    local rate
    rate=$(echo "$TXNS / ($end - $start)" | bc -l)
    printf 'history %-3s  %8.0f transactions/s  peak RSS %s  history rows on the target %s\n' \
        "$history" "$rate" "$(bridge_rss)" "$kept"
    echo "$history $rate" >>"$RESULTS"
    bridge_cleanup
    BRIDGE_WORK=$(mktemp -d)
    chmod 755 "$BRIDGE_WORK"
    BRIDGE_NAME=""
    RUN_PID=""
}

echo "catch-up of $TXNS transactions (insert + update each), history off and on, ABBA"
phase off 1
phase on 1
phase on 2
phase off 2
awk '{sum[$1] += $2; n[$1]++} END {printf "mean: off %.0f, on %.0f transactions/s; on/off %.2f\n",
     sum["off"] / n["off"], sum["on"] / n["on"], (sum["on"] / n["on"]) / (sum["off"] / n["off"])}' \
    "$RESULTS"
