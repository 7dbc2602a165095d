#include <pgbridge/cli/history_records.hpp>

namespace pgbridge::cli {

std::int64_t read_instant(pg::Connection& conn, const std::string& text) {
    return std::stoll(std::string(
        conn.exec("SELECT (extract(epoch FROM $1::timestamptz) * 1000000)::int8", {text})
            .value(0, 0)));
}

nlohmann::json json_column(const pg::Result& result, int row, int column) {
    return result.is_null(row, column)
               ? nlohmann::json()
               : nlohmann::json::parse(std::string(result.value(row, column)), nullptr, false);
}

nlohmann::json canonical_values(const TableConfig& table, const std::string& side,
                                const nlohmann::json& values) {
    if (!values.is_object()) {
        return values;
    }
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [column, value] : values.items()) {
        out[table.canonical_column(side, column)] = value;
    }
    return out;
}

}  // namespace pgbridge::cli
