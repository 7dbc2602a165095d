# Sourced by the benchmarks that run `pgbridge run` on scripts/testenv's clusters:
#   bridge_create NAME TABLE_SQL  databases NAME_a (cluster a) and NAME_b (cluster b) with the
#                                 table public.t made by TABLE_SQL, a runtime role, a config
#                                 syncing public.t, pgbridge setup
#   bridge_start                  pgbridge run in the background (RUN_PID), once streaming
#   bridge_rss                    the run's peak RSS (VmHWM) in MB
#   bridge_cleanup                stops it and drops everything (set as the EXIT trap)
# A, B: the clusters' superuser conninfos; PGBRIDGE: the binary; BRIDGE_WORK: its files.
. "$(scripts/testenv env-file)"
A=$PGBRIDGE_TEST_PG_A
B=$PGBRIDGE_TEST_PG_B
PGBRIDGE=${BUILD_DIR:-build}/src/pgbridge
BRIDGE_WORK=$(mktemp -d)
chmod 755 "$BRIDGE_WORK"
BRIDGE_NAME=""
RUN_PID=""

bridge_cleanup() {
    [ -z "$RUN_PID" ] || kill -TERM "$RUN_PID" 2>/dev/null || true
    [ -z "$RUN_PID" ] || wait "$RUN_PID" 2>/dev/null || true
    if [ -n "$BRIDGE_NAME" ]; then
        "$PGBRIDGE" --config "$BRIDGE_WORK/bridge.toml" teardown --yes \
            --admin-conninfo "a=$A dbname=${BRIDGE_NAME}_a" \
            --admin-conninfo "b=$B dbname=${BRIDGE_NAME}_b" >/dev/null 2>&1 || true
        psql "$A" -X -q -c "DROP DATABASE IF EXISTS ${BRIDGE_NAME}_a WITH (FORCE)" 2>/dev/null || true
        psql "$B" -X -q -c "DROP DATABASE IF EXISTS ${BRIDGE_NAME}_b WITH (FORCE)" 2>/dev/null || true
        for admin in "$A" "$B"; do
            psql "$admin" -X -q -c "DROP ROLE IF EXISTS pgb_${BRIDGE_NAME}" 2>/dev/null || true
        done
    fi
    rm -rf "$BRIDGE_WORK"
}

bridge_create() {
    BRIDGE_NAME=$1
    local role=pgb_$1
    psql "$A" -X -q -c "CREATE DATABASE ${BRIDGE_NAME}_a"
    psql "$B" -X -q -c "CREATE DATABASE ${BRIDGE_NAME}_b"
    psql "$A dbname=${BRIDGE_NAME}_a" -X -q -c "$2"
    psql "$B dbname=${BRIDGE_NAME}_b" -X -q -c "$2"
    echo "bench-$role" >"$BRIDGE_WORK/role.pass"
    echo "$PGBRIDGE_TEST_AMQP_PASSWORD" >"$BRIDGE_WORK/rabbit.pass"
    chmod 600 "$BRIDGE_WORK/role.pass" "$BRIDGE_WORK/rabbit.pass"
    cat >"$BRIDGE_WORK/bridge.toml" <<TOML
[bridge]
name = "$BRIDGE_NAME"
[sides.a]
conninfo = "host=$PGBRIDGE_TEST_PG_A_HOST port=$PGBRIDGE_TEST_PG_A_PORT dbname=${BRIDGE_NAME}_a user=$role"
password_file = "$BRIDGE_WORK/role.pass"
[sides.b]
conninfo = "host=$PGBRIDGE_TEST_PG_B_HOST port=$PGBRIDGE_TEST_PG_B_PORT dbname=${BRIDGE_NAME}_b user=$role"
password_file = "$BRIDGE_WORK/role.pass"
[rabbitmq]
url = "$PGBRIDGE_TEST_AMQP_URL"
password_file = "$BRIDGE_WORK/rabbit.pass"
[[tables]]
name = "public.t"
TOML
    "$PGBRIDGE" --config "$BRIDGE_WORK/bridge.toml" setup \
        --admin-conninfo "a=$A dbname=${BRIDGE_NAME}_a" \
        --admin-conninfo "b=$B dbname=${BRIDGE_NAME}_b" >/dev/null
}

bridge_start() {
    "$PGBRIDGE" --config "$BRIDGE_WORK/bridge.toml" run 2>"$BRIDGE_WORK/run.log" &
    RUN_PID=$!
    until grep -q "streaming both directions" "$BRIDGE_WORK/run.log"; do sleep 0.1; done
}

bridge_rss() {
    awk '/VmHWM/ {printf "%.0f MB", $2 / 1024}' "/proc/$RUN_PID/status"
}
