-- The replication slot of one side (and its record in pgbridge.slot_state), the replication
-- origin for changes applied to it from the other side, and the origin of `pgbridge
-- repair`'s writes. Run last (a slot holds WAL from the moment it exists), as a role with
-- REPLICATION (slot) and EXECUTE on pg_replication_origin_create (a superuser by default):
--   psql "dbname=looma" -v ON_ERROR_STOP=1 -v bridge=crm -v side=looma_crm \
--        -v other_side=zervigo -f 04_slot_and_origin.sql
-- With [engine] apply_workers = N > 1, add -v apply_workers=N: one origin per apply shard
-- (pgbridge_NAME_from_SIDE_s1 .. _sN) instead of the one.
-- Idempotent: existing objects are left as they are.

\set ON_ERROR_STOP on
\if :{?bridge}
\else
\echo 'set the bridge and side names: -v bridge=NAME -v side=SIDE -v other_side=SIDE'
\quit
\endif
\if :{?apply_workers}
\else
\set apply_workers 1
\endif

SELECT pg_create_logical_replication_slot(slot, 'pgoutput')
  FROM (SELECT 'pgbridge_' || :'bridge' || '_' || :'side' AS slot) s
 WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = s.slot);

SELECT pg_replication_origin_create(origin)
  FROM (SELECT 'pgbridge_' || :'bridge' || '_from_' || :'other_side'
               || CASE WHEN :'apply_workers'::int > 1 THEN '_s' || shard ELSE '' END AS origin
          FROM generate_series(1, :'apply_workers'::int) AS shard) o
 WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = o.origin);

SELECT pg_replication_origin_create(origin)
  FROM (SELECT 'pgbridge_' || :'bridge' || '_repair' AS origin) o
 WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = o.origin);

-- The slot's record (docs/initial-sync.md, "When a slot is created again"), as pgbridge setup
-- writes it for a slot it sees the first time. A slot created again by this script while a
-- record exists is told apart by pgbridge run, which repairs what the old one never captured.
INSERT INTO pgbridge.slot_state (bridge, slot_name, generation, confirmed_lsn)
SELECT :'bridge', slot_name, 1, confirmed_flush_lsn
  FROM pg_replication_slots WHERE slot_name = 'pgbridge_' || :'bridge' || '_' || :'side'
ON CONFLICT (bridge, slot_name) DO NOTHING;
UPDATE pgbridge.sync_state s SET slot_generation = g.generation
  FROM pgbridge.slot_state g
 WHERE s.bridge = :'bridge' AND g.bridge = :'bridge'
   AND g.slot_name = 'pgbridge_' || :'bridge' || '_' || :'side' AND s.slot_generation IS NULL;
