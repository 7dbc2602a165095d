-- pgbridge metadata schema, version 1.
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
INSERT INTO pgbridge.schema_version (version) VALUES (1) ON CONFLICT (version) DO NOTHING;

-- Every conflict the apply side met, resolved or pending. Row values are kept here (and only
-- here, never in logs) so that a DBA can see what each side had and act on it.
CREATE TABLE IF NOT EXISTS pgbridge.conflicts (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    detected_at        timestamptz NOT NULL DEFAULT now(),
    bridge             text        NOT NULL,
    table_name         text        NOT NULL,  -- schema-qualified, as named on this side
    key                jsonb       NOT NULL,  -- primary key columns and values
    kind               text        NOT NULL,  -- insert_insert, update_update, update_missing,
                                              -- delete_update, delete_missing, repair
    columns            text[]      NOT NULL DEFAULT '{}',  -- the columns in conflict
    local_side         text        NOT NULL,
    remote_side        text        NOT NULL,
    local_values       jsonb,                 -- the conflicting columns as this side had them
    remote_values      jsonb,                 -- ... and as the other side sent them
    local_commit_time  timestamptz,
    remote_commit_time timestamptz,
    remote_lsn         pg_lsn,                -- commit LSN of the change on the other side
    strategy           text        NOT NULL,  -- field_priority, source_priority,
                                              -- last_write_wins, manual, repair
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
