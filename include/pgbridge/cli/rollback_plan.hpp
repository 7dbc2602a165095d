#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pgbridge::cli {

// Column -> text value (nullopt: SQL NULL), in the table's own ([[tables]]) names.
using ColumnValues = std::map<std::string, std::optional<std::string>>;

// One pgbridge.history record of one key, as `pgbridge rollback` reads it from either side.
struct KeyChange {
    std::string from_side;        // where the change was made
    std::int64_t changed_at = 0;  // its commit time there (microseconds)
    std::string lsn;              // its commit LSN there
    std::int64_t seq = 0;         // its place in that transaction
    std::string operation;        // insert, update, delete
    ColumnValues old_values;      // the columns written, before
    ColumnValues new_values;      // and after (an insert's every column)

    // Whether it wrote the column (an insert or a delete writes the whole row).
    bool writes(const std::string& column) const;
    bool same_change(const KeyChange& other) const {
        return from_side == other.from_side && lsn == other.lsn && seq == other.seq;
    }
};

// What rollback does to one key (docs/history.md, "Rollback"): the inverse of SOURCE's local
// changes in the window, as new writes on SOURCE, except where someone wrote after them.
struct KeyRollback {
    enum class Action {
        Nothing,   // nothing to put back (inserted and deleted in the window, or all skipped)
        Restore,   // UPDATE: `values` back, where the row still holds `expected`
        Delete,    // DELETE the row the window inserted, where it still holds `expected`
        Reinsert,  // INSERT the row the window deleted, as it was
    };
    Action action = Action::Nothing;
    ColumnValues values;
    ColumnValues expected;
    // Column ("*" for the whole row) -> why it is left as it is.
    std::vector<std::pair<std::string, std::string>> skipped;
};

// `window`: SOURCE's local changes of the key in the window, in commit order. `others`: every
// other change of the key the history of either side holds from the window's start on
// (SOURCE's window changes as the other side applied them are recognised and left out).
KeyRollback plan_key_rollback(const std::vector<KeyChange>& window,
                              const std::vector<KeyChange>& others);

}  // namespace pgbridge::cli
