#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <pgbridge/core/qualified_name.hpp>
#include <pgbridge/core/setup_report.hpp>
#include <pgbridge/pg/connection.hpp>

namespace pgbridge {

// Keys written on both sides (docs/setup.md). A primary-key column that takes its default from
// a sequence on both sides gets the same keys handed out twice: the second insert to arrive
// fails as a duplicate or, resolved as an insert/insert conflict, replaces the other side's
// row. Setup finds such columns and refuses them unless the two sequences are partitioned
// (odd keys on the first side of the file, even on the second) or the table says
// keys = "disjoint".

// A sequence a primary-key column draws from (a serial or identity column, or any default
// calling nextval), as one side has it.
struct KeySequence {
    std::string column;  // the column as the side names it
    QualifiedName sequence;
    std::int64_t increment = 1;
    std::int64_t next = 1;  // what nextval() hands out next
    std::int64_t max_value = 0;
    std::int64_t cache = 1;
};

// The sequences behind the primary-key columns of a table on one side, in column order.
std::vector<KeySequence> key_sequences(pg::Connection& conn, const QualifiedName& table);

// The parity keys of the side at `index` in the file's order get: 1 (odd) for the first, 0
// (even) for the second.
constexpr int key_parity(std::size_t index) noexcept {
    return index == 0 ? 1 : 0;
}

// The smallest value >= from of the given parity (1 odd, 0 even).
std::int64_t first_with_parity(std::int64_t from, int parity) noexcept;

// Whether two sides' sequences for one key column can never hand out the same value from now
// on: both step by 2, and their next values differ in parity.
bool kept_apart(const KeySequence& first, const KeySequence& second) noexcept;

// One key column of a synced table that both sides feed from a sequence.
struct SharedKey {
    QualifiedName table;  // canonical
    std::string column;   // canonical
    struct Side {
        std::string name;     // the side's name in the config
        QualifiedName table;  // as the side names it
        KeySequence sequence;
    };
    std::array<Side, 2> sides;  // in the file's order
};

// Partitions the sequences of keys: for each side, INCREMENT BY 2 and RESTART WITH the first
// value of its parity above every key either side has used (the highest key in either table
// and the next value of either sequence). Both tables are locked against writes while this is
// read and changed, so no concurrent insert slips under the new start; a sequence already
// stepping by 2 at the right parity above that mark is left alone. conns follow the file's
// order of sides. In a dry run, reports what would change and changes nothing.
void partition_key_sequences(const std::array<pg::Connection*, 2>& conns,
                             const std::vector<SharedKey>& keys, bool dry_run, int lock_timeout_ms,
                             SetupReport& report);

}  // namespace pgbridge
