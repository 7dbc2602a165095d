#pragma once

#include <cstdint>
#include <string>

#include <pgbridge/pg/connection.hpp>

namespace pgbridge::pg {

// The planner's estimate of a table's rows (pg_class.reltuples; a table never analysed, -1,
// counts as 0): what progress is measured against, where a count(*) would cost as much as the
// work itself. `quoted_name` as QualifiedName::quoted() gives it.
std::uint64_t estimated_rows(Connection& conn, const std::string& quoted_name);

}  // namespace pgbridge::pg
