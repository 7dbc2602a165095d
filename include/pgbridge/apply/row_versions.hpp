#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pgbridge/apply/conflict_resolver.hpp>

namespace pgbridge::apply {

// Who wrote a column (or deleted the row) last, as pgbridge.row_versions stores it, and the
// commit time of that write ("t"). Local writes recorded by a pgbridge before metadata schema
// 3 name their transaction id instead ("x"); its commit time is looked up when needed.
struct StoredStamp {
    WriteStamp::Writer writer = WriteStamp::Writer::Unknown;
    std::string local_xid;       // "x": an older pgbridge's local writes
    UnixMicros remote_time = 0;  // "t": the commit time of the write (local or applied)
    std::string local_lsn;       // "l": commit LSN of a local write (capture's own bookkeeping)
};

struct StoredColumnVersion {
    StoredStamp last_write;
    std::uint64_t local_writes = 0;        // "n"
    std::uint64_t seen_remote_writes = 0;  // "s"
    Lsn applied_remote;                    // "m"
};

// The name under which a row_versions document keeps the entry of every column not listed on
// its own. No column can have it: PostgreSQL identifiers are never empty.
inline constexpr std::string_view kDefaultColumnEntry = "";

// One row of pgbridge.row_versions (sql/01_metadata_schema.sql documents the layout).
struct StoredRowVersions {
    bool found = false;  // false: no row yet (the key was never written since setup)
    // By column name on this side; kDefaultColumnEntry for the columns not listed.
    std::map<std::string, StoredColumnVersion> columns;
    std::uint64_t local_row_writes = 0;
    std::uint64_t seen_remote_row_writes = 0;
    std::uint64_t local_delete_writes = 0;
    std::optional<StoredStamp> deleted;
    Lsn deleted_applied_remote;
    // The last local transaction capture recorded for the key (32-bit xid, as xmin shows it).
    std::optional<std::int64_t> local_xid;
};

// Parses the jsonb documents of a row_versions row (columns, deleted). Throws
// Error(Protocol) on a document pgbridge did not write.
std::map<std::string, StoredColumnVersion> parse_column_versions(std::string_view json);
StoredStamp parse_stamp(std::string_view json);

// The documents to store back.
std::string column_versions_document(const std::map<std::string, StoredColumnVersion>& columns);
std::string stamp_document(const StoredStamp& stamp);

// Commit times of local transactions by xid, as pg_xact_commit_timestamp() gave them.
using CommitTimes = std::map<std::string, UnixMicros>;

// The resolver's view of a key: values (if the row exists) in the order of `columns`, with the
// stored versions.
LocalRow to_local_row(const StoredRowVersions& stored, const std::optional<Row>& values,
                      const std::vector<std::string>& columns, const CommitTimes& commit_times);

// What to store after the applier wrote `after`: the stored versions with the counters and
// stamps the resolution changed. A column still written locally keeps its transaction id.
StoredRowVersions to_stored(const LocalRow& after, const StoredRowVersions& before,
                            const std::vector<std::string>& columns);

}  // namespace pgbridge::apply
