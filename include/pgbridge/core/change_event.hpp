#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <pgbridge/core/lsn.hpp>

namespace pgbridge {

// A column of a replicated table as the source server describes it (pgoutput Relation).
struct ColumnInfo {
    std::string name;
    std::uint32_t type_oid = 0;
    std::int32_t type_modifier = -1;
    bool key = false;          // flagged as replica identity by pgoutput (FULL: every column)
    bool primary_key = false;  // part of the source table's primary key (from its catalog)
};

// A replicated table as the source described it when the change was decoded. Shared by every
// change of that table until the server sends a new description (after ALTER TABLE).
struct TableInfo {
    std::uint32_t relation_oid = 0;
    std::string schema;
    std::string name;
    char replica_identity = 'd';  // d default (primary key), n nothing, f full, i index
    std::vector<ColumnInfo> columns;
};

// One column value of a row image.
struct Value {
    enum class Kind : std::uint8_t {
        Null,
        UnchangedToast,  // a TOASTed value the update did not touch: the server did not send it
        Text,            // the type's text output
        Binary,          // the type's binary send format
    };
    Kind kind = Kind::Null;
    std::string data;  // bytes for Text and Binary

    bool operator==(const Value&) const = default;
};

using Row = std::vector<Value>;  // in the order of TableInfo::columns

enum class ChangeOp : std::uint8_t { Insert, Update, Delete, Truncate };

// How many times the writing side had written something, and how many of the other side's
// writes to it the writing side had processed: a two-side version vector
// (docs/apply-design.md).
struct VersionVector {
    std::uint64_t own = 0;
    std::uint64_t seen = 0;
    bool operator==(const VersionVector&) const = default;
};

// The writer's version vectors for one changed row, for the whole key and per column.
struct RowVersions {
    VersionVector row;
    std::map<std::string, VersionVector> columns;
    bool operator==(const RowVersions&) const = default;
};

std::string_view to_string(ChangeOp op) noexcept;

// One row change (or a truncate) inside a source transaction.
struct ChangeEvent {
    ChangeOp op = ChangeOp::Insert;
    std::shared_ptr<const TableInfo> table;  // for Truncate: the first table
    // Update: the old row (all columns with REPLICA IDENTITY FULL, only the key columns when
    // old_is_key_only, absent when the key did not change under a key identity).
    // Delete: the old row, as for update.
    std::optional<Row> old_row;
    bool old_is_key_only = false;
    std::optional<Row> new_row;  // Insert, Update
    // Truncate: every table of the TRUNCATE statement, and its options.
    std::vector<std::shared_ptr<const TableInfo>> truncated;
    bool truncate_cascade = false;
    bool truncate_restart_identity = false;
    // The writer's version vectors for this row: capture's keeper stamps them
    // (source/version_keeper.hpp) before the change goes out.
    std::optional<RowVersions> versions;
};

// A pg_logical_emit_message() inside the transaction.
struct LogicalMessage {
    Lsn lsn;
    std::string prefix;
    std::string content;
};

// The writer's versions of a change sent in an earlier part of a large transaction: the
// change's place in its transaction (0, 1, ...). Only a pgbridge before metadata schema 3
// sent them (its version trigger logged a bulk statement's versions after its rows); the
// applier still reads them from such a sender's messages.
struct PlacedVersions {
    std::uint32_t place = 0;
    std::optional<RowVersions> versions;
};

// A committed source transaction, whole, in commit order of its source; or one piece of a
// transaction too large to hold (in_pieces): its changes from place first_place on, in order.
// The pieces of a transaction come before the piece that commits it (end_lsn set).
struct SourceTransaction {
    std::string source_side;
    std::uint32_t xid = 0;
    Lsn commit_lsn;  // LSN of the commit record
    Lsn end_lsn;     // end of the commit record: the position to acknowledge
    UnixMicros commit_time = 0;
    std::optional<std::string> origin;  // replication origin of the writer, if any
    Lsn origin_lsn;
    bool streamed = false;  // arrived as in-progress chunks (protocol version 2)
    std::vector<ChangeEvent> changes;
    std::vector<LogicalMessage> messages;
    bool in_pieces = false;
    std::uint32_t first_place = 0;
    std::vector<PlacedVersions> late_versions;  // parts from an older sender only
};

}  // namespace pgbridge
