#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pgbridge/apply/conflict_resolver.hpp>
#include <pgbridge/core/stored_versions.hpp>

namespace pgbridge::apply {

// One row of pgbridge.row_versions (sql/01_metadata_schema.sql documents the layout).
struct StoredRowVersions {
    bool found = false;  // false: no row yet (the key was never written since setup)
    // By column name on this side; kDefaultColumnEntry for the columns not listed.
    ColumnVersions columns;
    std::uint64_t local_row_writes = 0;
    std::uint64_t seen_remote_row_writes = 0;
    std::uint64_t local_delete_writes = 0;
    std::optional<StoredStamp> deleted;
    Lsn deleted_applied_remote;
    // The last local transaction capture recorded for the key (32-bit xid, as xmin shows it).
    std::optional<std::int64_t> local_xid;
};

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
