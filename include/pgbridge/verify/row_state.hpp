#pragma once

#include <string>
#include <vector>

#include <pgbridge/apply/row_versions.hpp>
#include <pgbridge/pg/connection.hpp>
#include <pgbridge/verify/compared_table.hpp>
#include <pgbridge/verify/row_source.hpp>

namespace pgbridge::verify {

// One key of a compared table as one side has it at one moment: the row (if any) and its
// column versions (pgbridge.row_versions).
struct RowState {
    bool exists = false;
    Row row;  // every column of the side's table, in its order; empty when !exists
    apply::StoredRowVersions stored;
    apply::CommitTimes commit_times;
    // Everything read, as text: two reads of a key with equal fingerprints saw no write in
    // between (every write, applied or local, changes the row or its versions).
    std::string fingerprint;
};

// The keys as the apply statements take them (apply_statements.hpp): an int4[] of ordinals
// 0..n-1, then one text[] per key column.
pg::Params key_array_params(const std::vector<Key>& keys);

// Reads the keys' states on one side, without locking (verify never makes a writer wait).
std::vector<RowState> read_row_states(pg::Connection& connection, const ComparedTable& table,
                                      std::size_t side_index, const std::vector<Key>& keys);

// The compared columns (canonical names) whose values differ between two existing rows.
std::vector<std::string> differing_columns(const ComparedTable& table, const RowState& a,
                                           const RowState& b);

// Whether the two sides hold different data for the key (presence or compared values).
bool states_differ(const ComparedTable& table, const RowState& a, const RowState& b);

}  // namespace pgbridge::verify
