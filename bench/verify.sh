#!/usr/bin/env bash
# pgbridge verify of two identical tables of ROWS rows (default 1,000,000), time and peak
# memory, next to the plain way of comparing them in the same run: COPY each table out,
# sort, md5sum (both sides at once, as verify reads both at once). Then the same tables with
# a few rows changed on one side, to show what finding the keys costs.
#   scripts/testenv start && bench/verify.sh [ROWS]
# Compares with --no-fence: no bridge runs here, so there is nothing in flight to wait for
# (the fence itself costs one round trip through the bridge, milliseconds when it keeps up).
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
BUILD_DIR=${BUILD_DIR:-build}
ninja -C "$BUILD_DIR" src/pgbridge >/dev/null
. "$(scripts/testenv env-file)"
A="$PGBRIDGE_TEST_PG_A dbname=bench_verify"
B="$PGBRIDGE_TEST_PG_B dbname=bench_verify"
work=$(mktemp -d)

cleanup() {
    for admin in "$PGBRIDGE_TEST_PG_A" "$PGBRIDGE_TEST_PG_B"; do
        psql "$admin" -X -q -c "SELECT pg_replication_origin_drop('pgbridge_benchverify_repair')
                                 WHERE EXISTS (SELECT 1 FROM pg_replication_origin
                                                WHERE roname = 'pgbridge_benchverify_repair')" \
            >/dev/null 2>&1 || true
    done
    psql "$PGBRIDGE_TEST_PG_A" -X -q -c "DROP DATABASE IF EXISTS bench_verify WITH (FORCE)" || true
    psql "$PGBRIDGE_TEST_PG_B" -X -q -c "DROP DATABASE IF EXISTS bench_verify WITH (FORCE)" || true
    rm -rf "$work"
}
trap cleanup EXIT
cleanup >/dev/null 2>&1
work=$(mktemp -d)

fill="CREATE TABLE public.customers (id bigint PRIMARY KEY, name text, email text,
                                      score numeric, updated timestamptz);
      INSERT INTO public.customers
      SELECT g, 'name ' || g, 'user' || g || '@example.org', g * 1.5,
             timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second'
        FROM generate_series(1, $ROWS) g;"
for admin in "$PGBRIDGE_TEST_PG_A" "$PGBRIDGE_TEST_PG_B"; do
    psql "$admin" -X -q -c "CREATE DATABASE bench_verify"
done
# The metadata schema only (verify reads row versions and the conflict log of differing keys).
psql "$A" -X -q -c "$fill" -c "VACUUM ANALYZE public.customers" -f sql/01_metadata_schema.sql &
psql "$B" -X -q -c "$fill" -c "VACUUM ANALYZE public.customers" -f sql/01_metadata_schema.sql
wait
echo "$PGBRIDGE_TEST_AMQP_PASSWORD" >"$work/rabbit.pass"
chmod 600 "$work/rabbit.pass"
cat >"$work/bridge.toml" <<TOML
[bridge]
name = "benchverify"
[sides.a]
conninfo = "$A"
[sides.b]
conninfo = "$B"
[rabbitmq]
url = "$PGBRIDGE_TEST_AMQP_URL"
password_file = "$work/rabbit.pass"
[[tables]]
name = "public.customers"
TOML
size=$(psql "$A" -X -At -c "SELECT pg_size_pretty(pg_total_relation_size('public.customers'))")
echo "two identical tables of $ROWS rows ($size each)"

verify() {
    /usr/bin/time -f "%e %M" -o "$work/time" "$BUILD_DIR/src/pgbridge" --config "$work/bridge.toml" \
        --json verify --no-fence >"$work/report.json" 2>"$work/verify.err" || true
    [ -s "$work/report.json" ] || { cat "$work/verify.err"; exit 1; }
    read -r seconds rss < <(tail -n 1 "$work/time")
    python3 - "$work/report.json" "$seconds" "$rss" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["tables"][0]
print(f"  pgbridge verify ({r['row_hash']}): {float(sys.argv[2]):.2f} s, peak RSS {int(sys.argv[3]) / 1024:.1f} MB; "
      f"{t['ranges']} ranges hashed, {t['mismatched_ranges']} mismatched, "
      f"{len(t['differences'])} differing keys, identical={r['identical']}")
PY
}

copy_sort_md5() {
    local start end
    start=$(date +%s.%N)
    psql "$A" -X -q -c "COPY public.customers TO STDOUT" | sort | md5sum >"$work/a.md5" &
    psql "$B" -X -q -c "COPY public.customers TO STDOUT" | sort | md5sum >"$work/b.md5"
    wait
    end=$(date +%s.%N)
    printf "  COPY | sort | md5sum, both sides at once: %.2f s (%s)\n" "$(echo "$end - $start" | bc)" \
        "$(cmp -s "$work/a.md5" "$work/b.md5" && echo same || echo different)"
}

echo "identical:"
verify
copy_sort_md5
psql "$B" -X -q -c "UPDATE public.customers SET email = 'changed' WHERE id IN (7, 123456 % ($ROWS + 1), $ROWS / 2)" \
    -c "DELETE FROM public.customers WHERE id = $ROWS - 3" \
    -c "INSERT INTO public.customers VALUES ($ROWS + 10, 'extra', NULL, 0, now())"
echo "5 keys differ (3 changed, 1 missing, 1 extra):"
verify
copy_sort_md5

# Repair: the origin `pgbridge setup` would create, then 9,989 rows lost on one side (with
# the 5 keys above, within the 10,000 keys one run collects per table).
for db in "$A" "$B"; do
    psql "$db" -X -q -c "SELECT pg_replication_origin_create('pgbridge_benchverify_repair')" >/dev/null
done
psql "$B" -X -q -c "DELETE FROM public.customers WHERE id % 100 = 0 AND id < 999000"
lost=$(psql "$A" -X -At -c "SELECT count(*) FROM public.customers WHERE id % 100 = 0 AND id < 999000")
start=$(date +%s.%N)
/usr/bin/time -f "%e %M" -o "$work/time" "$BUILD_DIR/src/pgbridge" --config "$work/bridge.toml" \
    --json repair --no-fence >"$work/repair.json" || true
end=$(date +%s.%N)
read -r seconds rss < <(tail -n 1 "$work/time")
python3 - "$work/repair.json" "$seconds" "$rss" "$lost" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
seconds = float(sys.argv[2])
print(f"{sys.argv[4]} rows missing on b: pgbridge repair wrote {r['written']} keys in {seconds:.2f} s "
      f"({r['written'] / seconds:.0f} keys/s, verify included), peak RSS {int(sys.argv[3]) / 1024:.1f} MB")
PY
verify
