#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <pgbridge/config/config.hpp>
#include <pgbridge/pg/connection.hpp>

namespace pgbridge::cli {

// The id of a row in one side's pgbridge log (conflicts, dead letters), as `list` shows it:
// "SIDE:NUMBER", or a bare NUMBER when only one side's log holds it.
struct SideRecordId {
    std::string side;  // empty for a bare number
    std::string number;
};

// `what` names the log in errors ("conflict", "dead letter").
SideRecordId parse_side_record_id(const Config& config, const std::string& text,
                                  std::string_view what);

// The one record an id names: `select` (a query with $1 = the number) on the side named, or
// on every side for a bare number, each row turned into JSON by `to_json`. Throws
// Error(Usage) when no side, or more than one, has it.
nlohmann::json find_side_record(
    const Config& config, const std::string& text, std::string_view what,
    std::string_view application_name, const std::string& select,
    const std::function<nlohmann::json(const std::string& side, const pg::Result&, int row)>&
        to_json);

// The same for a log whose owner reads it: `read` returns the records numbered `number` on
// one side's connection, as JSON.
using SideRecordReader = std::function<std::vector<nlohmann::json>(
    pg::Connection&, const std::string& side, const std::string& number)>;
nlohmann::json find_side_record(const Config& config, const std::string& text,
                                std::string_view what, std::string_view application_name,
                                const SideRecordReader& read);

// A field of such a record as a text-table cell: "-" for null, strings as they are, the
// rest as JSON.
std::string plain(const nlohmann::json& value);

pg::Connection open_side(const Config& config, const SideConfig& side,
                         std::string_view application_name);

}  // namespace pgbridge::cli
