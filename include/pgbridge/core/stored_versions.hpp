#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <pgbridge/core/lsn.hpp>

namespace pgbridge {

// The column versions of a key as pgbridge.row_versions stores them (the layout is documented
// in sql/01_metadata_schema.sql). Capture's keeper writes local writes into them, the applier
// remote ones: both read and write them through these types, so one rule keeps them.

enum class VersionWriter : std::uint8_t { Unknown, Local, Remote };

// Who wrote a column (or deleted the row) last, and the commit time of that write ("t").
// Local writes recorded by a pgbridge before metadata schema 3 name their transaction id
// instead ("x"); its commit time is looked up when needed.
struct StoredStamp {
    VersionWriter writer = VersionWriter::Unknown;
    std::string local_xid;       // "x": an older pgbridge's local writes
    UnixMicros remote_time = 0;  // "t": the commit time of the write (local or applied)
    // "l": commit LSN of the last local write (capture's own bookkeeping: a transaction
    // stamped again counts once). A tombstone's entries keep it without a writer.
    Lsn local_lsn;

    bool operator==(const StoredStamp&) const = default;
};

struct StoredColumnVersion {
    StoredStamp last_write;
    std::uint64_t local_writes = 0;        // "n"
    std::uint64_t seen_remote_writes = 0;  // "s"
    Lsn applied_remote;                    // "m"

    bool operator==(const StoredColumnVersion&) const = default;
};

// The name under which a row_versions document keeps the entry of every column not listed on
// its own. No column can have it: PostgreSQL identifiers are never empty.
inline constexpr std::string_view kDefaultColumnEntry = "";

// By column name; kDefaultColumnEntry for the columns not listed.
using ColumnVersions = std::map<std::string, StoredColumnVersion, std::less<>>;

// Parse the jsonb documents of a row_versions row (columns, deleted). Throw Error(Protocol)
// on a document pgbridge did not write.
ColumnVersions parse_column_versions(std::string_view json);
StoredStamp parse_stamp(std::string_view json);

// The documents to store back.
std::string column_versions_document(const ColumnVersions& columns);
std::string stamp_document(const StoredStamp& stamp);

// A column's entry: its own, else the default entry, else none yet (zero counters).
const StoredColumnVersion& column_entry(const ColumnVersions& columns, std::string_view name);

// Stores the most common of `entries` (one per column of `names`, in order) once, as the
// default, and only the columns that differ from it: a row written whole (an insert, initial
// sync) keeps one entry instead of one per column, which is what a write pays per row.
ColumnVersions compact_columns(const std::vector<std::string>& names,
                               std::vector<StoredColumnVersion> entries);

}  // namespace pgbridge
