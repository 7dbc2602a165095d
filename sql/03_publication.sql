-- The publication of one side: the synced tables, with REPLICA IDENTITY FULL so that every
-- update and delete carries the old row (the conflict rules compare old values column by
-- column), and the statement trigger that records their truncates. Run as the owner of the
-- tables (or a superuser):
--   psql "dbname=looma" -v ON_ERROR_STOP=1 -v bridge=crm \
--        -v tables='public.talents,public.customers' -f 03_publication.sql
-- Refuses a table without a primary key. Idempotent; a changed table list is applied with
-- ALTER PUBLICATION ... SET TABLE.

\set ON_ERROR_STOP on
\if :{?bridge}
\else
\echo 'set the bridge name: -v bridge=NAME'
\quit
\endif
\if :{?tables}
\else
\echo 'set the synced tables: -v tables=schema.table,schema.table'
\quit
\endif

SELECT set_config('pgbridge.bridge', :'bridge', false),
       set_config('pgbridge.tables', :'tables', false);

DO $setup$
DECLARE
    pub    text := 'pgbridge_' || current_setting('pgbridge.bridge');
    wanted oid[];
    t      regclass;
    part   regclass;
    list   text;
BEGIN
    SELECT array_agg(trim(x)::regclass::oid ORDER BY trim(x)::regclass::oid) INTO wanted
      FROM unnest(string_to_array(current_setting('pgbridge.tables'), ',')) x;

    FOREACH t IN ARRAY wanted::regclass[] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = t AND indisprimary) THEN
            RAISE EXCEPTION 'table % has no primary key; pgbridge needs one to match rows', t;
        END IF;
        -- A partitioned table's changes are decoded from its partitions, with each partition's
        -- replica identity: every partition needs FULL too (one attached later gets it when
        -- setup runs again).
        FOR part IN SELECT relid FROM pg_partition_tree(t)
                    UNION SELECT t LOOP
            IF (SELECT relreplident FROM pg_class WHERE oid = part) <> 'f' THEN
                EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', part);
            END IF;
        END LOOP;
        -- Local truncates, so that the other side's older changes are not applied after one.
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = t AND tgname = 'pgbridge_truncations') THEN
            EXECUTE format('CREATE TRIGGER pgbridge_truncations AFTER TRUNCATE ON %s '
                           'FOR EACH STATEMENT EXECUTE FUNCTION pgbridge.track_truncate()', t);
        END IF;
    END LOOP;

    SELECT string_agg(x::regclass::text, ', ') INTO list FROM unnest(wanted) x;
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = pub) THEN
        -- publish_via_partition_root: a partitioned table's changes are published under its
        -- own name (the one the config gives), not under the partition that holds the row.
        EXECUTE format('CREATE PUBLICATION %I FOR TABLE %s WITH (publish = %L, '
                       'publish_via_partition_root = true)',
                       pub, list, 'insert, update, delete, truncate');
    ELSIF wanted IS DISTINCT FROM (SELECT array_agg(pr.prrelid ORDER BY pr.prrelid)
                                     FROM pg_publication_rel pr
                                     JOIN pg_publication p ON p.oid = pr.prpubid
                                    WHERE p.pubname = pub) THEN
        EXECUTE format('ALTER PUBLICATION %I SET TABLE %s', pub, list);
    END IF;
    IF NOT (SELECT pubviaroot FROM pg_publication WHERE pubname = pub) THEN
        EXECUTE format('ALTER PUBLICATION %I SET (publish_via_partition_root = true)', pub);
    END IF;
END
$setup$;
