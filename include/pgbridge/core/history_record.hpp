#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pgbridge/core/lsn.hpp>

namespace pgbridge {

// One row of pgbridge.history (docs/history.md): a change of a synced table on one side, as
// capture saw it (a local write) or as the applier wrote it (a change from the other side).
// Capture's keeper and the applier both write them, each in the transaction that records or
// applies the change, so a row is there exactly when the change is.
struct HistoryRecord {
    enum class Origin { Local, Applied };
    Origin origin = Origin::Local;
    std::string from_side;      // where the change was made
    UnixMicros changed_at = 0;  // its commit time there
    Lsn lsn;                    // its commit LSN there
    std::uint32_t seq = 0;      // its place in that transaction
    std::string table;          // schema-qualified, as named on this side
    std::string key;            // JSON object: primary key column -> text value
    std::string operation;      // "insert", "update", "delete"
    // JSON objects of the columns written (text values, null for NULL): before and after. An
    // insert has no old values, a delete no new ones.
    std::optional<std::string> old_values;
    std::optional<std::string> new_values;
    // A conflict met applying it: JSON, how each column (or the row) was decided.
    std::optional<std::string> decision;
};

// One INSERT of many records: the statement and its parameters (bridge, side, the records as
// one JSON array), so that a batch costs one statement whatever its size.
struct HistoryInsert {
    std::string sql;
    std::vector<std::optional<std::string>> params;
};
HistoryInsert history_insert(const std::string& bridge, const std::string& side,
                             const std::vector<HistoryRecord>& records);

}  // namespace pgbridge
