-- pgbridge metadata schema, version 7 (6 with pgbridge.history, the change history kept with
-- [history] retention; 6 was 5 with the apply shard in apply_progress,
-- transaction_parts and applied_transactions; 5 was 4 with the progress of a running initial
-- copy; 4 was 3
-- with every local write named by its commit time;
-- 3 was 2 plus local versions kept by capture instead of a trigger; 2 was 1 plus slot_state,
-- sync_state.slot_generation and apply_progress.waiting_for: every statement below also
-- upgrades an older schema).
--
-- Run on each side of a bridge, as a role that may create schemas in the database:
--   psql "dbname=looma" -v ON_ERROR_STOP=1 -f 01_metadata_schema.sql
-- Idempotent: running it again changes nothing. `pgbridge setup` runs this same file.

CREATE SCHEMA IF NOT EXISTS pgbridge;
COMMENT ON SCHEMA pgbridge IS 'pgbridge: conflict log, dead letters and bookkeeping of the sync';

CREATE TABLE IF NOT EXISTS pgbridge.schema_version (
    version      integer PRIMARY KEY,
    installed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO pgbridge.schema_version (version) VALUES (1), (2), (3), (4), (5), (6), (7) ON CONFLICT (version) DO NOTHING;

-- Every conflict the apply side met, resolved or pending. Row values are kept here (and only
-- here, never in logs) so that a DBA can see what each side had and act on it.
CREATE TABLE IF NOT EXISTS pgbridge.conflicts (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    detected_at        timestamptz NOT NULL DEFAULT now(),
    bridge             text        NOT NULL,
    table_name         text        NOT NULL,  -- schema-qualified, as named on this side
    key                jsonb       NOT NULL,  -- primary key columns and values
    kind               text        NOT NULL,  -- insert_insert, update_update, update_missing,
                                              -- insert_deleted, delete_changed, repair
    columns            text[]      NOT NULL DEFAULT '{}',  -- the columns in conflict
    local_side         text        NOT NULL,
    remote_side        text        NOT NULL,
    local_values       jsonb,                 -- the conflicting columns as this side had them
    remote_values      jsonb,                 -- ... and as the other side sent them
    local_commit_time  timestamptz,
    remote_commit_time timestamptz,
    remote_lsn         pg_lsn,                -- commit LSN of the change on the other side
    strategy           text        NOT NULL,  -- field_priority, source_priority,
                                              -- last_write_wins, manual, delete_wins, repair
    winner             text,                  -- side whose values were kept; NULL while pending
    status             text        NOT NULL CHECK (status IN ('resolved', 'pending')),
    resolved_at        timestamptz,
    resolved_by        text,                  -- pgbridge, or the role that resolved by hand
    note               text
);
CREATE INDEX IF NOT EXISTS conflicts_pending_idx
    ON pgbridge.conflicts (table_name, detected_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS conflicts_detected_at_idx ON pgbridge.conflicts (detected_at);

-- Messages that could not be applied after engine.max_retries attempts. The message itself
-- also sits in the dead-letter queue; payload keeps a copy so it can be replayed from SQL.
CREATE TABLE IF NOT EXISTS pgbridge.dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    bridge      text        NOT NULL,
    source_side text        NOT NULL,
    table_name  text,                      -- NULL when the message could not be parsed at all
    key         jsonb,
    first_lsn   pg_lsn,
    last_lsn    pg_lsn,
    commit_time timestamptz,
    attempts    integer     NOT NULL,
    error_kind  text        NOT NULL,      -- unparseable, missing_table, constraint, type, ...
    sqlstate    text,
    reason      text        NOT NULL,
    message_id  text,
    payload     bytea,
    status      text        NOT NULL DEFAULT 'new'
                            CHECK (status IN ('new', 'replayed', 'discarded')),
    handled_at  timestamptz
);
CREATE INDEX IF NOT EXISTS dead_letters_new_idx
    ON pgbridge.dead_letters (recorded_at) WHERE status = 'new';

-- Where each direction's apply stands on this side: the newest source transaction committed
-- here, written in the same transaction as each applied batch. `pgbridge lag` and `status`
-- read it (seconds behind = now - last_commit_time while changes are waiting). One row per
-- apply shard ([engine] apply_workers; shard 1 when the direction is not sharded).
CREATE TABLE IF NOT EXISTS pgbridge.apply_progress (
    bridge           text        NOT NULL,
    source_side      text        NOT NULL,
    shard            integer     NOT NULL DEFAULT 1,
    last_end_lsn     pg_lsn      NOT NULL,  -- on the source side
    last_commit_time timestamptz,           -- commit time on the source side
    applied_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bridge, source_side, shard)
);
-- Set while the apply of this direction waits for this side's schema (a column the source
-- sends that this side does not have yet: docs/schema-changes.md); cleared by the next apply.
ALTER TABLE pgbridge.apply_progress ADD COLUMN IF NOT EXISTS waiting_for text;
ALTER TABLE pgbridge.apply_progress ADD COLUMN IF NOT EXISTS waiting_since timestamptz;

-- The initial copy of each synced table of this side (pgbridge run copies a table once, from
-- a snapshot, the first time it runs with it; docs/initial-sync.md). Delete a row to have
-- that table copied again on the next start.
CREATE TABLE IF NOT EXISTS pgbridge.sync_state (
    bridge       text        NOT NULL,
    table_name   text        NOT NULL,  -- schema-qualified, as named on this side
    snapshot_lsn pg_lsn      NOT NULL,  -- the copy holds what committed before this position
    rows_copied  bigint      NOT NULL,
    copied_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bridge, table_name)
);
-- The generation of this side's slot the copy was made through (pgbridge.slot_state). A copy
-- of an older generation misses the changes between the old slot and the new one.
ALTER TABLE pgbridge.sync_state ADD COLUMN IF NOT EXISTS slot_generation bigint;

-- The initial copy of a table of this side while it runs (or since it was cut short), for
-- `pgbridge status` and `lag`: rows read so far of the planner's estimate. pgbridge run writes
-- it every few seconds from its own session (the copy's snapshot is read-only) and deletes a
-- table's row once the copy is recorded in sync_state.
CREATE TABLE IF NOT EXISTS pgbridge.copy_progress (
    bridge         text        NOT NULL,
    table_name     text        NOT NULL,  -- schema-qualified, as named on this side
    rows_copied    bigint      NOT NULL,
    rows_estimated bigint      NOT NULL,  -- pg_class.reltuples when the copy began
    started_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bridge, table_name)
);

-- This side's slot as pgbridge knows it (docs/initial-sync.md, "When a slot is created
-- again"). pgbridge writes confirmed_lsn before it reports a position to the server, so the
-- server's confirmed_flush_lsn is never past it, unless the slot was dropped and created
-- again, or moved by hand: then changes in between were never captured, and the slot starts
-- a new generation, whose copies are repaired before status says healthy again.
CREATE TABLE IF NOT EXISTS pgbridge.slot_state (
    bridge        text        NOT NULL,
    slot_name     text        NOT NULL,
    generation    bigint      NOT NULL,  -- 1, 2, ...: each new slot (or moved one) the next
    confirmed_lsn pg_lsn      NOT NULL,  -- the furthest position pgbridge reported
    -- This generation began with changes never captured (not the first slot): every synced
    -- table is to be repaired; cleared once a repair of all of them finished.
    repair_pending boolean    NOT NULL DEFAULT false,
    since         timestamptz NOT NULL DEFAULT now(),  -- when this generation began
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bridge, slot_name)
);

-- The parts of source transactions too large for one message (docs/message-format.md, "Large
-- transactions"), kept here as they arrive, in any order, until every part of a transaction
-- is here; then the transaction is applied whole, in one target transaction that also
-- deletes its parts. Rows that stay here belong to a transaction still arriving (or one whose
-- part was dead-lettered: pgbridge.dead_letters says which).
CREATE TABLE IF NOT EXISTS pgbridge.transaction_parts (
    bridge       text        NOT NULL,
    source_side  text        NOT NULL,
    shard        integer     NOT NULL DEFAULT 1,  -- the apply shard whose share this is
    commit_lsn   pg_lsn      NOT NULL,  -- of the transaction, on the source side
    part         integer     NOT NULL,  -- 0, 1, ...
    first_change integer     NOT NULL,  -- place of the part's first change in the transaction
    changes      integer     NOT NULL,
    versions_min integer,               -- places of the changes whose versions it carries late
    versions_max integer,
    last         boolean     NOT NULL,
    end_lsn      pg_lsn,                -- on the last part
    commit_time  timestamptz,
    body         bytea       NOT NULL,  -- the message, as published
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bridge, source_side, shard, commit_lsn, part)
);

-- Source transactions applied from parts: a part that comes again afterwards (a replay, a
-- redelivery) is recognised and dropped. One small row per large transaction.
CREATE TABLE IF NOT EXISTS pgbridge.applied_transactions (
    bridge      text        NOT NULL,
    source_side text        NOT NULL,
    shard       integer     NOT NULL DEFAULT 1,
    commit_lsn  pg_lsn      NOT NULL,
    end_lsn     pg_lsn      NOT NULL,
    parts       integer     NOT NULL,
    changes     bigint      NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bridge, source_side, shard, commit_lsn)
);

-- Up to schema 5 these three tables had one row (set) per direction: the apply shard joins
-- their keys (existing rows are shard 1's).
ALTER TABLE pgbridge.apply_progress ADD COLUMN IF NOT EXISTS shard integer NOT NULL DEFAULT 1;
ALTER TABLE pgbridge.transaction_parts ADD COLUMN IF NOT EXISTS shard integer NOT NULL DEFAULT 1;
ALTER TABLE pgbridge.applied_transactions
    ADD COLUMN IF NOT EXISTS shard integer NOT NULL DEFAULT 1;
DO $upgrade$
DECLARE
    t text;
    columns text;
BEGIN
    FOR t, columns IN VALUES
        ('apply_progress', 'bridge, source_side, shard'),
        ('transaction_parts', 'bridge, source_side, shard, commit_lsn, part'),
        ('applied_transactions', 'bridge, source_side, shard, commit_lsn')
    LOOP
        IF NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_index i
              JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid
                                            AND a.attnum = ANY (i.indkey)
             WHERE i.indrelid = pg_catalog.format('pgbridge.%I', t)::regclass
               AND i.indisprimary AND a.attname = 'shard') THEN
            EXECUTE pg_catalog.format(
                'ALTER TABLE pgbridge.%I DROP CONSTRAINT %I, ADD PRIMARY KEY (%s)',
                t, t || '_pkey', columns);
        END IF;
    END LOOP;
END
$upgrade$;

-- Column versions of every synced row, for the conflict rules (docs/apply-design.md).
-- One row per key of a synced table. `columns` maps a column name (or '' for every column
-- not listed: no column can be named '') to
--   {"w": "l" | "r", "t": commit time of the last write (µs), "n": local writes, "s": remote
--    writes processed, "m": highest remote commit LSN applied, "l": commit LSN of the last
--    local write}
-- ("x", the xid of a local write, in rows written by pgbridge before version 3) and the
-- row-level counters do the same for the key as a whole. Local writes are recorded by this
-- side's capture once the change that carries them is in the broker (never inside the
-- application's transaction); applied ones by the applier, in the transaction that writes
-- them. Neither an application role nor the runtime role's SQL sessions have a say in it.
CREATE TABLE IF NOT EXISTS pgbridge.row_versions (
    table_name             text   NOT NULL,  -- schema-qualified, as named on this side
    key                    jsonb  NOT NULL,  -- primary key values, in key column order
    columns                jsonb  NOT NULL DEFAULT '{}',
    local_row_writes       bigint NOT NULL DEFAULT 0,
    seen_remote_row_writes bigint NOT NULL DEFAULT 0,
    local_delete_writes    bigint NOT NULL DEFAULT 0,
    deleted                jsonb,            -- the tombstone's stamp while the key is absent
                                             -- (columns then keep only "n", "s" and "l")
    deleted_applied_remote pg_lsn,
    PRIMARY KEY (table_name, key)
);
-- The last local transaction capture recorded for the key: its xid (32 bits, as a row's xmin
-- shows it) and commit LSN. The applier compares a locked row's xmin with local_xid to know
-- whether capture has seen the write it is about to decide against.
ALTER TABLE pgbridge.row_versions ADD COLUMN IF NOT EXISTS local_xid bigint;
ALTER TABLE pgbridge.row_versions ADD COLUMN IF NOT EXISTS local_lsn pg_lsn;

-- How far this side's capture has recorded local writes in row_versions: every local
-- transaction that ends at or before recorded_lsn was recorded, after the broker had
-- confirmed the message carrying it. A capture that starts again skips those (they are in the
-- broker already) instead of counting them twice.
CREATE TABLE IF NOT EXISTS pgbridge.local_versions (
    bridge       text        NOT NULL,
    side         text        NOT NULL,
    recorded_lsn pg_lsn      NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bridge, side)
);

-- Version 1 and 2 kept local versions with a trigger inside the application's transaction; it
-- goes from every table that has it (CASCADE drops the triggers with their function).
DROP FUNCTION IF EXISTS pgbridge.track_row_versions() CASCADE;

-- Version 1 and 2 named a local write by its transaction id ("x") and looked its commit time
-- up when needed: an entry left untouched for about two billion transactions would name a
-- reused id. Version 4 gives each such entry its commit time ("t") while the id still names
-- the transaction (0, unknown, where the server no longer has it, as a lookup gave before).
-- Nothing writes "x" any more. Without track_commit_timestamp (which pgbridge's rules need)
-- nothing can be looked up: the entries are left as they are, and setup converts them once
-- it is on.
CREATE OR REPLACE FUNCTION pgbridge.stamp_with_time(entry jsonb) RETURNS jsonb
    LANGUAGE sql AS $$
    SELECT CASE WHEN entry ? 'x'
        THEN (entry - 'x') || jsonb_build_object('t', coalesce((extract(epoch FROM
                 pg_xact_commit_timestamp((entry ->> 'x')::xid8::xid)) * 1000000)::bigint, 0))
        ELSE entry END
$$;
DO $$
BEGIN
    IF current_setting('track_commit_timestamp') = 'on' THEN
        UPDATE pgbridge.row_versions
           SET columns = (SELECT jsonb_object_agg(e.key, pgbridge.stamp_with_time(e.value))
                            FROM jsonb_each(columns) AS e)
         WHERE jsonb_path_exists(columns, '$.*.x');
        UPDATE pgbridge.row_versions SET deleted = pgbridge.stamp_with_time(deleted)
         WHERE deleted ? 'x';
    END IF;
END
$$;
DROP FUNCTION pgbridge.stamp_with_time(jsonb);

-- The last local TRUNCATE of each synced table on this side (docs/apply-design.md,
-- "Truncate"): a change from the other side that committed before it was truncated away here
-- too, and is not applied; the other side deletes, when the truncate reaches it, only the
-- rows it did not write after it. `xid` gives the truncate's commit time
-- (pg_xact_commit_timestamp), the one pgoutput ships with it.
CREATE TABLE IF NOT EXISTS pgbridge.truncations (
    table_name   text        PRIMARY KEY,  -- schema-qualified, as named on this side
    xid          xid8        NOT NULL,
    truncated_at timestamptz NOT NULL DEFAULT now()
);

-- The statement trigger that fills pgbridge.truncations (AFTER TRUNCATE on every synced
-- table; not on what the applier writes: it deletes, never truncates).
CREATE OR REPLACE FUNCTION pgbridge.track_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $function$
BEGIN
    INSERT INTO pgbridge.truncations AS t (table_name, xid)
    SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), pg_current_xact_id()
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = TG_RELID
    ON CONFLICT (table_name) DO UPDATE SET xid = EXCLUDED.xid, truncated_at = now();
    RETURN NULL;
END
$function$;

-- The change history ([history] retention; docs/history.md): every change of a synced table
-- on this side that pgbridge captured (a local write, written by capture once the broker has
-- it, with the column versions) or applied (written by the applier in the transaction that
-- applies it, with the conflict decision). Never by a trigger: the application's
-- transactions carry nothing of it. One partition per day of logged_at (UTC), created ahead
-- and dropped past the retention by maintain_history(), which pgbridge run calls.
CREATE TABLE IF NOT EXISTS pgbridge.history (
    logged_at   timestamptz NOT NULL DEFAULT now(),  -- when pgbridge wrote it (partition key)
    bridge      text        NOT NULL,
    side        text        NOT NULL,  -- this side, whose table changed
    origin      text        NOT NULL CHECK (origin IN ('local', 'applied')),
    from_side   text        NOT NULL,  -- local: this side; applied: the side it came from
    changed_at  timestamptz NOT NULL,  -- commit time where the change was made
    lsn         pg_lsn      NOT NULL,  -- commit LSN where the change was made
    seq         integer     NOT NULL,  -- its place in that transaction
    table_name  text        NOT NULL,  -- schema-qualified, as named on this side
    key         jsonb       NOT NULL,  -- primary key {column: value}, as named on this side
    operation   text        NOT NULL CHECK (operation IN ('insert', 'update', 'delete')),
    old_values  jsonb,                 -- the columns written, before (text values)
    new_values  jsonb,                 -- the columns written, after
    decision    jsonb                  -- applied with a conflict: per column, rule and winner
) PARTITION BY RANGE (logged_at);
CREATE INDEX IF NOT EXISTS history_key ON pgbridge.history (table_name, key, changed_at);

-- Rows of a day with no partition yet (maintenance late, a side away) land here rather than
-- fail the transaction that applies or records the change.
DO $$
BEGIN
    EXECUTE format('CREATE TABLE IF NOT EXISTS pgbridge.%I PARTITION OF pgbridge.history DEFAULT',
                   'history_default');
END
$$;

-- How long each bridge keeps its history on this side, as `pgbridge setup` last wrote it from
-- [history] retention. maintain_history() drops nothing younger than the longest of them,
-- whoever calls it: the runtime role may keep the history, not shorten it.
CREATE TABLE IF NOT EXISTS pgbridge.history_retention (
    bridge    text     PRIMARY KEY,
    retention interval NOT NULL CHECK (retention >= interval '1 minute')
);

-- Creates the partitions of today and the next two days (UTC) and drops those wholly older
-- than the retention (one shorter than a day also deletes the older rows of the oldest one;
-- the default partition's old rows go too). SECURITY DEFINER: the runtime role gets EXECUTE
-- on this and no DDL or DELETE of its own. Returns the partitions dropped.
DROP FUNCTION IF EXISTS pgbridge.maintain_history(interval);
CREATE OR REPLACE FUNCTION pgbridge.maintain_history() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO'
SET lock_timeout = '5s' AS $function$
DECLARE
    keep    interval := (SELECT max(retention) FROM pgbridge.history_retention);
    day     date;
    part    record;
    dropped integer := 0;
BEGIN
    FOR i IN 0..2 LOOP
        day := (now() AT TIME ZONE 'UTC')::date + i;
        CONTINUE WHEN to_regclass(format('pgbridge.%I', 'history_' || to_char(day, 'YYYYMMDD')))
                      IS NOT NULL;
        -- A day whose rows went to the default partition keeps them there (a partition of it
        -- cannot be created while they are).
        CONTINUE WHEN EXISTS (SELECT 1 FROM pgbridge.history_default
                               WHERE logged_at >= day::timestamp AT TIME ZONE 'UTC'
                                 AND logged_at < (day + 1)::timestamp AT TIME ZONE 'UTC');
        EXECUTE format('CREATE TABLE pgbridge.%I PARTITION OF pgbridge.history '
                       'FOR VALUES FROM (%L) TO (%L)', 'history_' || to_char(day, 'YYYYMMDD'),
                       day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
    END LOOP;
    IF keep IS NULL THEN
        RETURN 0;  -- no retention recorded by setup: nothing is dropped
    END IF;
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'pgbridge.history'::regclass AND c.relname ~ '^history_[0-9]{8}$'
           AND (to_date(substr(c.relname, 9), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC'
               <= now() - keep
    LOOP
        EXECUTE format('DROP TABLE pgbridge.%I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    DELETE FROM pgbridge.history_default WHERE logged_at < now() - keep;
    IF keep < interval '1 day' THEN
        DELETE FROM pgbridge.history WHERE logged_at < now() - keep;
    END IF;
    RETURN dropped;
END
$function$;
REVOKE ALL ON FUNCTION pgbridge.maintain_history() FROM PUBLIC;

-- Every `pgbridge rollback` that wrote (docs/history.md, "Rollback"), on the side it undid:
-- who ran it, over what window, and what it did. Never deleted by pgbridge.
CREATE TABLE IF NOT EXISTS pgbridge.rollbacks (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_at          timestamptz NOT NULL DEFAULT now(),
    run_by          text        NOT NULL DEFAULT session_user,
    bridge          text        NOT NULL,
    source_side     text        NOT NULL,
    since           timestamptz NOT NULL,
    until           timestamptz NOT NULL,
    table_name      text,                -- --table, if given
    keys_restored   integer     NOT NULL,
    columns_skipped integer     NOT NULL,
    report          jsonb       NOT NULL -- what --json printed
);
