#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pgbridge/apply/target_table.hpp>
#include <pgbridge/pg/connection.hpp>

namespace pgbridge::apply {

// The conflict log: pgbridge.conflicts on each side, where every conflict the applier met and
// every row repair wrote is kept with what each side had (docs/apply-design.md). This is the
// one place that knows its columns and SQL; the applier and repair write it, verify, status
// and `pgbridge conflicts` read it.

// One conflict to record, as named on the side whose log it goes in. One with a winner was
// settled when it was recorded (status resolved, resolved_by `settled_by`); one without waits
// for a person (status pending).
struct NewConflict {
    std::string bridge;
    std::string table;                 // QualifiedName::display() on this side
    std::string key;                   // key_json(): {"key column": "value"}
    std::string kind;                  // insert_insert, update_update, ..., repair
    std::vector<std::string> columns;  // the columns in conflict; empty: the whole row
    std::string local_side;
    std::string remote_side;
    // JSON documents of the conflicting columns; nullopt is SQL NULL (no row on that side).
    std::optional<std::string> local_values;
    std::optional<std::string> remote_values;
    std::optional<std::string> local_commit_time;  // timestamptz text
    std::optional<std::string> remote_commit_time;
    std::optional<std::string> remote_lsn;  // the change's commit LSN on the other side
    std::string strategy;
    std::optional<std::string> winner;  // the side whose values were kept
    std::string settled_by;             // pgbridge, pgbridge repair
    std::optional<std::string> note;
};

// The INSERT of one conflict with its parameters. Its text is the same for every conflict (a
// constant), so the applier queues it in the pipeline of its batch next to the writes:
// recording costs no round trip of its own.
struct ConflictInsert {
    std::string_view sql;
    pg::Params params;
};
ConflictInsert record_conflict_statement(NewConflict conflict);
// Records one conflict at once (repair, inside its transaction).
void record_conflict(pg::Connection& connection, NewConflict conflict);

// One row of the log as `pgbridge conflicts` shows it: values in the server's text form, key,
// columns and values as JSON text.
struct ConflictRecord {
    std::string id;  // the row's number on its side
    std::string detected_at;
    std::string table;
    std::string key;
    std::string kind;
    std::string columns;  // a JSON array
    std::string local_side;
    std::string remote_side;
    std::optional<std::string> local_values;
    std::optional<std::string> remote_values;
    std::optional<std::string> local_commit_time;
    std::optional<std::string> remote_commit_time;
    std::optional<std::string> remote_lsn;
    std::string strategy;
    std::optional<std::string> winner;
    std::string status;
    std::optional<std::string> resolved_at;
    std::optional<std::string> resolved_by;
    std::optional<std::string> note;
};

// Which records `pgbridge conflicts list` shows: every bridge's, the newest first.
struct ConflictFilter {
    bool pending_only = false;
    std::string table;  // as named on the side; empty: every table
    int limit = 100;
};

// The query list_conflicts runs: only the conditions the filter sets.
struct ConflictQuery {
    std::string sql;
    pg::Params params;
};
ConflictQuery list_conflicts_query(const ConflictFilter& filter);
std::vector<ConflictRecord> list_conflicts(pg::Connection& connection,
                                           const ConflictFilter& filter);
// The record numbered `id` (digits), if this side has it.
std::optional<ConflictRecord> find_conflict(pg::Connection& connection, const std::string& id);

// A person's choice for the pending conflicts of one key: `winner` kept its values.
struct ManualResolution {
    std::string table;                 // as named on this side
    std::string key;                   // {"key column on this side": "value"}
    std::vector<std::string> columns;  // the records naming any of these are resolved
    std::string winner;
};

// Marks the matching pending records resolved by the current role; returns how many.
long long mark_resolved(pg::Connection& connection, const ManualResolution& resolution);

// Pending conflicts on this side, of every bridge: what status reports and alerts on.
std::uint64_t count_pending_conflicts(pg::Connection& connection);

// The keys of the table's pending conflicts of `bridge` on this side, in key column order:
// verify leaves the differences they explain to `pgbridge conflicts resolve`.
std::vector<std::vector<std::string>> pending_conflict_keys(pg::Connection& connection,
                                                            const std::string& bridge,
                                                            const TargetTable& table);
// A logged key ({"key column": "value"}) in the table's key column order; nullopt when the
// document does not name every key column of the table with a text value.
std::optional<std::vector<std::string>> parse_conflict_key(const TargetTable& table,
                                                           std::string_view key);

}  // namespace pgbridge::apply
