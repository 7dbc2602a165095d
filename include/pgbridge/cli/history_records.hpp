#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include <pgbridge/config/config.hpp>
#include <pgbridge/pg/connection.hpp>

namespace pgbridge::cli {

// What `pgbridge history` and `pgbridge rollback` share to read pgbridge.history
// (docs/history.md).

// A time given on the command line (ISO 8601 or timestamptz text) as the instant the side's
// server reads it, in microseconds since the epoch: read once, it is the same instant on
// both sides whatever their time zones.
std::int64_t read_instant(pg::Connection& conn, const std::string& text);

// A jsonb column of a result as JSON (SQL NULL as null).
nlohmann::json json_column(const pg::Result& result, int row, int column);

// A record's {column: value} with the side's column names back in the table's own names.
nlohmann::json canonical_values(const TableConfig& table, const std::string& side,
                                const nlohmann::json& values);

}  // namespace pgbridge::cli
