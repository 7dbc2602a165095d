-- The least-privileged role pgbridge runs as, on one side. Run as a superuser (or a role with
-- CREATEROLE that owns the synced tables) after 01_metadata_schema.sql:
--   psql "dbname=looma" -v ON_ERROR_STOP=1 -v role=pgbridge \
--        -v tables='public.talents,public.customers' -f 02_role.sql
-- The role gets:
--   REPLICATION            to stream changes from its slot (capture);
--   DML on the synced tables, USAGE on their schemas, and SELECT/INSERT/UPDATE on the
--   pgbridge schema (and DELETE on pgbridge.transaction_parts)
--                          to apply changes and record conflicts and dead letters;
--   EXECUTE on the replication-origin session functions and SELECT on
--   pg_replication_origin_status
--                          to tag applied changes with their origin (no echo, exactly once).
-- It is not a superuser and owns nothing. Give it a password afterwards: \password pgbridge
-- Idempotent: running it again changes nothing.

\set ON_ERROR_STOP on
\if :{?role}
\else
\set role pgbridge
\endif
\if :{?tables}
\else
\echo 'set the synced tables: -v tables=schema.table,schema.table'
\quit
\endif

SELECT set_config('pgbridge.role', :'role', false),
       set_config('pgbridge.tables', :'tables', false);

DO $setup$
DECLARE
    r   text := current_setting('pgbridge.role');
    t   regclass;
    f   text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
        EXECUTE format('CREATE ROLE %I LOGIN REPLICATION', r);
    ELSIF NOT (SELECT rolcanlogin AND rolreplication FROM pg_roles WHERE rolname = r) THEN
        EXECUTE format('ALTER ROLE %I LOGIN REPLICATION', r);
    END IF;

    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), r);
    EXECUTE format('GRANT USAGE ON SCHEMA pgbridge TO %I', r);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA pgbridge TO %I', r);
    -- The parts of a large transaction are deleted once it is applied.
    EXECUTE format('GRANT DELETE ON pgbridge.transaction_parts TO %I', r);

    FOR t IN SELECT trim(x)::regclass FROM unnest(string_to_array(current_setting('pgbridge.tables'), ',')) x
    LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I',
                       (SELECT nspname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid
                         WHERE c.oid = t), r);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLE %s TO %I', t, r);
    END LOOP;

    FOREACH f IN ARRAY ARRAY[
        'pg_catalog.pg_replication_origin_oid(text)',
        'pg_catalog.pg_replication_origin_session_setup(text)',
        'pg_catalog.pg_replication_origin_session_reset()',
        'pg_catalog.pg_replication_origin_session_is_setup()',
        'pg_catalog.pg_replication_origin_session_progress(boolean)',
        'pg_catalog.pg_replication_origin_xact_setup(pg_lsn, timestamp with time zone)',
        'pg_catalog.pg_replication_origin_xact_reset()',
        'pg_catalog.pg_replication_origin_progress(text, boolean)']
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, r);
    END LOOP;
    EXECUTE format('GRANT SELECT ON pg_catalog.pg_replication_origin_status TO %I', r);
END
$setup$;
