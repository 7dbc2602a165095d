#pragma once

#include <span>
#include <string_view>

namespace pgbridge {

// What the runtime role needs on one side, and nothing more: the one place setup's grants come
// from (sql/02_role.sql grants the same; a unit test compares them). Every command but setup
// and teardown connects as this role: run, status, lag, conflicts, dead-letters, verify,
// repair, tail.

struct TablePrivileges {
    std::string_view table;       // in schema pgbridge
    std::string_view privileges;  // as GRANT lists them
};

// Each table of schema pgbridge (sql/01_metadata_schema.sql). Privileges a table does not list
// here are revoked by setup: pgbridge owns that schema, and the role must not rewrite its own
// history or what it is told to do.
inline constexpr TablePrivileges kMetadataTablePrivileges[] = {
    // Read by run's readiness check; only setup writes it.
    {"schema_version", "SELECT"},
    // Written by the applier and repair; UPDATE for `conflicts resolve`. Never deleted by
    // pgbridge: the log stays whole.
    {"conflicts", "SELECT, INSERT, UPDATE"},
    // Written by the consumer; UPDATE for `dead-letters replay` and `discard`.
    {"dead_letters", "SELECT, INSERT, UPDATE"},
    // Inserted or updated with each applied batch (INSERT ... ON CONFLICT DO UPDATE).
    {"apply_progress", "SELECT, INSERT, UPDATE"},
    // The initial copy records each table; a new slot generation updates them.
    {"sync_state", "SELECT, INSERT, UPDATE"},
    // The running copy's progress: written as it goes, deleted once the table is recorded.
    {"copy_progress", "SELECT, INSERT, UPDATE, DELETE"},
    // run records the slot it streams from and the furthest position it reported.
    {"slot_state", "SELECT, INSERT, UPDATE"},
    // The parts of a large transaction are kept, replaced when sent again, and deleted once
    // the transaction is applied.
    {"transaction_parts", "SELECT, INSERT, UPDATE, DELETE"},
    // One row per large transaction applied, written once.
    {"applied_transactions", "SELECT, INSERT"},
    // Column versions: capture and the applier insert, lock (FOR UPDATE) and update them.
    {"row_versions", "SELECT, INSERT, UPDATE"},
    // How far capture has recorded local writes.
    {"local_versions", "SELECT, INSERT, UPDATE"},
    // Read by the applier; written only by the track_truncate() trigger, which runs as its
    // owner (SECURITY DEFINER) when the application truncates a synced table.
    {"truncations", "SELECT"},
    // The change history: the applier and capture insert, `history` and `rollback` read. Its
    // daily partitions are created and dropped by maintain_history(), never by the role.
    {"history", "SELECT, INSERT"},
    // Written by setup from [history] retention; maintain_history() reads it as its owner.
    {"history_retention", "SELECT"},
    // `rollback` records each run that wrote; the metrics count them.
    {"rollbacks", "SELECT, INSERT"},
};

// Each synced table: the applier, repair and `conflicts resolve` write it; the applier locks
// rows (SELECT ... FOR UPDATE, which needs UPDATE); the initial copy and verify read it. A
// source's TRUNCATE is applied as DELETEs, so TRUNCATE is not needed.
inline constexpr std::string_view kSyncedTablePrivileges = "SELECT, INSERT, UPDATE, DELETE";

// The table privileges has_table_privilege knows, to find what a role holds beyond the above.
inline constexpr std::string_view kTablePrivilegeNames[] = {
    "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER",
};

// Functions revoked from PUBLIC by PostgreSQL that the runtime role calls (grantable since
// PostgreSQL 14): the applier and repair bind their sessions to an origin and tag each
// transaction with the source's commit; run checks the origin exists.
inline constexpr std::string_view kOriginFunctions[] = {
    "pg_catalog.pg_replication_origin_oid(text)",
    "pg_catalog.pg_replication_origin_session_setup(text)",
    "pg_catalog.pg_replication_origin_xact_setup(pg_lsn, timestamp with time zone)",
};

// Origin functions and views an older setup granted that nothing calls: revoked.
inline constexpr std::string_view kUnusedOriginFunctions[] = {
    "pg_catalog.pg_replication_origin_session_reset()",
    "pg_catalog.pg_replication_origin_session_is_setup()",
    "pg_catalog.pg_replication_origin_session_progress(boolean)",
    "pg_catalog.pg_replication_origin_xact_reset()",
    "pg_catalog.pg_replication_origin_progress(text, boolean)",
};
inline constexpr std::string_view kUnusedOriginView = "pg_catalog.pg_replication_origin_status";

// pgbridge's own functions the runtime role calls, revoked from PUBLIC by the metadata schema:
// the history's partitions, as the role may not create or drop tables.
inline constexpr std::string_view kMetadataFunctions[] = {
    "pgbridge.maintain_history()",
};

// Executable by PUBLIC by default; the applier's flush and verify's fence write a message into
// the WAL with it. Setup grants it only where a DBA revoked it from PUBLIC.
inline constexpr std::string_view kEmitMessageFunction =
    "pg_catalog.pg_logical_emit_message(boolean, text, text)";

}  // namespace pgbridge
