-- Drops what 01-04 created on one side, the slot first so that no WAL stays held.
-- Refuses while the slot is in use: stop `pgbridge run` first.
--   psql "dbname=looma" -v ON_ERROR_STOP=1 -v bridge=crm -v side=looma_crm \
--        -v other_side=zervigo -f 99_teardown.sql
-- The role of 02_role.sql and REPLICA IDENTITY FULL are left as they are: other things may
-- depend on them. The metadata schema (conflict log, dead letters) is dropped too, unless
-- another bridge still uses this database; dump it first if you want to keep the history.

\set ON_ERROR_STOP on
\if :{?bridge}
\else
\echo 'set the bridge and side names: -v bridge=NAME -v side=SIDE -v other_side=SIDE'
\quit
\endif

SELECT pg_drop_replication_slot(slot_name)
  FROM pg_replication_slots
 WHERE slot_name = 'pgbridge_' || :'bridge' || '_' || :'side';

-- The applier's origin (and those of its apply shards, pgbridge_NAME_from_SIDE_sK) and repair's.
SELECT pg_replication_origin_drop(roname)
  FROM pg_replication_origin
 WHERE roname IN ('pgbridge_' || :'bridge' || '_from_' || :'other_side',
                 'pgbridge_' || :'bridge' || '_repair')
    OR (left(roname, length('pgbridge_' || :'bridge' || '_from_' || :'other_side') + 2)
            = 'pgbridge_' || :'bridge' || '_from_' || :'other_side' || '_s'
        AND substr(roname, length('pgbridge_' || :'bridge' || '_from_' || :'other_side') + 3)
            ~ '^[0-9]+$');

SELECT set_config('pgbridge.bridge', :'bridge', false);
DO $teardown$
DECLARE
    t regclass;
BEGIN
    -- The version triggers of the published tables, before the publication goes.
    FOR t IN SELECT pr.prrelid::regclass FROM pg_publication_rel pr
               JOIN pg_publication p ON p.oid = pr.prpubid
              WHERE p.pubname = 'pgbridge_' || current_setting('pgbridge.bridge')
    LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS pgbridge_row_versions ON %s', t);
        EXECUTE format('DROP TRIGGER IF EXISTS pgbridge_truncations ON %s', t);
    END LOOP;
    EXECUTE format('DROP PUBLICATION IF EXISTS %I', 'pgbridge_' || current_setting('pgbridge.bridge'));
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname LIKE 'pgbridge\_%') THEN
        DROP SCHEMA IF EXISTS pgbridge CASCADE;
    END IF;
END
$teardown$;
