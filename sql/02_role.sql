-- The runtime role pgbridge runs as, on one side, with what it needs and nothing more (the
-- same as `pgbridge setup --admin-conninfo`: src/setup's runtime_privileges.hpp). Run as a
-- superuser (or a role with CREATEROLE that owns the synced tables) after
-- 01_metadata_schema.sql:
--   psql "dbname=looma" -v ON_ERROR_STOP=1 -v role=pgbridge \
--        -v tables='public.talents,public.customers' -f 02_role.sql
-- The role gets:
--   LOGIN REPLICATION      to stream changes from its slot (capture). REPLICATION also lets it
--                          create, drop and stream any logical slot of the databases
--                          pg_hba.conf lets it reach for replication, and so decode every
--                          table of them: limit it there (docs/setup.md);
--   SELECT, INSERT, UPDATE, DELETE on the synced tables, USAGE on their schemas
--                          to copy, apply, lock and verify rows (a source's TRUNCATE is
--                          applied as DELETEs: no TRUNCATE);
--   USAGE on schema pgbridge and per table of it only what pgbridge does with it (SELECT only
--   on schema_version and truncations); any other privilege on those tables is revoked;
--   EXECUTE on pg_replication_origin_oid, _session_setup and _xact_setup
--                          to tag applied changes with their origin (no echo, exactly once);
--                          the other origin functions and pg_replication_origin_status, which
--                          an older version granted, are revoked.
-- pg_logical_emit_message (the applier's flush, verify's fence) is executable by PUBLIC.
-- It is not a superuser and owns nothing. Give it a password afterwards: \password pgbridge
-- Idempotent: running it again changes nothing. Privileges beyond these on the synced tables
-- (TRUNCATE from an older version, say) are left as they are; `pgbridge setup` reports them.

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
    m   text;
    p   text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
        EXECUTE format('CREATE ROLE %I LOGIN REPLICATION', r);
    ELSIF NOT (SELECT rolcanlogin AND rolreplication FROM pg_roles WHERE rolname = r) THEN
        EXECUTE format('ALTER ROLE %I LOGIN REPLICATION', r);
    END IF;

    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), r);
    EXECUTE format('GRANT USAGE ON SCHEMA pgbridge TO %I', r);
    -- Per table what pgbridge does with it; whatever else the role was granted goes.
    FOR m, p IN VALUES
        ('schema_version',       'SELECT'),
        ('conflicts',            'SELECT, INSERT, UPDATE'),
        ('dead_letters',         'SELECT, INSERT, UPDATE'),
        ('apply_progress',       'SELECT, INSERT, UPDATE'),
        ('sync_state',           'SELECT, INSERT, UPDATE'),
        ('copy_progress',        'SELECT, INSERT, UPDATE, DELETE'),
        ('slot_state',           'SELECT, INSERT, UPDATE'),
        ('transaction_parts',    'SELECT, INSERT, UPDATE, DELETE'),
        ('applied_transactions', 'SELECT, INSERT'),
        ('row_versions',         'SELECT, INSERT, UPDATE'),
        ('local_versions',       'SELECT, INSERT, UPDATE'),
        ('truncations',          'SELECT'),
        ('history',              'SELECT, INSERT'),
        ('history_retention',    'SELECT'),
        ('rollbacks',            'SELECT, INSERT')
    LOOP
        IF (SELECT pg_get_userbyid(relowner) FROM pg_class
             WHERE oid = format('pgbridge.%I', m)::regclass) <> r THEN
            EXECUTE format('REVOKE ALL ON pgbridge.%I FROM %I', m, r);
        END IF;
        EXECUTE format('GRANT %s ON pgbridge.%I TO %I', p, m, r);
    END LOOP;

    FOR t IN SELECT trim(x)::regclass FROM unnest(string_to_array(current_setting('pgbridge.tables'), ',')) x
    LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I',
                       (SELECT nspname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid
                         WHERE c.oid = t), r);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO %I', t, r);
    END LOOP;

    EXECUTE format('GRANT EXECUTE ON FUNCTION pgbridge.maintain_history() TO %I', r);
    FOREACH f IN ARRAY ARRAY[
        'pg_catalog.pg_replication_origin_oid(text)',
        'pg_catalog.pg_replication_origin_session_setup(text)',
        'pg_catalog.pg_replication_origin_xact_setup(pg_lsn, timestamp with time zone)']
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, r);
    END LOOP;
    FOREACH f IN ARRAY ARRAY[
        'pg_catalog.pg_replication_origin_session_reset()',
        'pg_catalog.pg_replication_origin_session_is_setup()',
        'pg_catalog.pg_replication_origin_session_progress(boolean)',
        'pg_catalog.pg_replication_origin_xact_reset()',
        'pg_catalog.pg_replication_origin_progress(text, boolean)']
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %I', f, r);
    END LOOP;
    EXECUTE format('REVOKE SELECT ON pg_catalog.pg_replication_origin_status FROM %I', r);
    -- Only where a DBA revoked it from PUBLIC.
    IF NOT has_function_privilege(r, 'pg_catalog.pg_logical_emit_message(boolean, text, text)',
                                  'EXECUTE') THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION '
                       'pg_catalog.pg_logical_emit_message(boolean, text, text) TO %I', r);
    END IF;
END
$setup$;
