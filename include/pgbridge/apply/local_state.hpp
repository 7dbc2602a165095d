#pragma once

#include <cstddef>

#include <pgbridge/apply/row_versions.hpp>
#include <pgbridge/core/change_event.hpp>
#include <pgbridge/pg/connection.hpp>

namespace pgbridge::apply {

// The values of `columns` columns of a result row from `first_column` on: the row of a
// table as lock_rows_statement and read_key_states_statement return it.
Row row_from_result(const pg::Result& result, int row, int first_column, std::size_t columns);

// The row_versions columns (apply_statements.hpp) of a result row from `first_column` on.
// Throws Error(Protocol) on a document pgbridge did not write.
void versions_from_result(const pg::Result& result, int row, int first_column,
                          StoredRowVersions& stored, CommitTimes& commit_times);

}  // namespace pgbridge::apply
