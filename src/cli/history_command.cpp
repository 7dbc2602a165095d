// pgbridge history --table T --key K: one row's story on both sides, oldest first, from
// pgbridge.history (docs/history.md).

#include <algorithm>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/cli/commands.hpp>
#include <pgbridge/cli/history_records.hpp>
#include <pgbridge/cli/side_record.hpp>
#include <pgbridge/cli/text_table.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/core/error.hpp>

namespace pgbridge::cli {
namespace {

using nlohmann::json;

constexpr const char* kApplicationName = "pgbridge history";

// The table's primary key columns as `side` names them, in key order.
std::vector<std::string> key_columns(pg::Connection& conn, const QualifiedName& table) {
    const auto r = conn.exec(
        "SELECT a.attname FROM pg_index i"
        " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
        " WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY k.ord",
        {table.quoted()});
    std::vector<std::string> out;
    for (int row = 0; row < r.rows(); ++row) {
        out.emplace_back(r.value(row, 0));
    }
    return out;
}

// --key as the side stores it: {column as the side names it: value}. K is the value of a
// one-column key, or a JSON object of the key's columns (as [[tables]] names them) for any.
std::string side_key(const TableConfig& table, const SideConfig& side, pg::Connection& conn,
                     const std::string& text) {
    const QualifiedName local = table.name_on(side.name);
    const auto columns = key_columns(conn, local);
    if (columns.empty()) {
        throw Error(ErrorKind::Usage, "the table has no primary key on this side")
            .with("table", local.display())
            .with("side", side.name);
    }
    json key = json::object();
    if (!text.empty() && text.front() == '{') {
        const json given = json::parse(text, nullptr, false);
        if (!given.is_object()) {
            throw Error(ErrorKind::Usage,
                        "--key: expected a value, or a JSON object of the key's "
                        "columns");
        }
        for (const auto& [column, value] : given.items()) {
            key[table.column_on(side.name, column)] =
                value.is_string() ? value.get<std::string>() : value.dump();
        }
    } else {
        if (columns.size() != 1) {
            throw Error(ErrorKind::Usage,
                        fmt::format("{} has a key of {} columns: give --key as a JSON object, "
                                    "{{\"column\": \"value\", ...}}",
                                    local.display(), columns.size()));
        }
        key[columns.front()] = text;
    }
    return key.dump();
}

// The same for a decision's columns.
json canonical_decision(const TableConfig& table, const std::string& side, json decision) {
    if (decision.is_object() && decision.contains("columns") && decision["columns"].is_array()) {
        for (auto& c : decision["columns"]) {
            if (c.contains("column") && c["column"].is_string()) {
                c["column"] = table.canonical_column(side, c["column"].get<std::string>());
            }
        }
    }
    return decision;
}

std::string values_text(const json& values) {
    if (!values.is_object() || values.empty()) {
        return "-";
    }
    std::string out;
    for (const auto& [column, value] : values.items()) {
        out += fmt::format("{}{}={}", out.empty() ? "" : " ", column,
                           value.is_null()     ? "NULL"
                           : value.is_string() ? value.get<std::string>()
                                               : value.dump());
    }
    return out;
}

}  // namespace

int history_command(const GlobalOptions& global, const HistoryCommandOptions& options) {
    const Config config = load_config(global.config_path);
    const auto name = QualifiedName::parse(options.table);
    const TableConfig* table = name ? config.find_table(*name) : nullptr;
    if (table == nullptr) {
        throw Error(ErrorKind::Usage,
                    "--table: not a synced table of this bridge (name it as "
                    "[[tables]] does)")
            .with("table", options.table);
    }
    if (!config.history.enabled()) {
        std::cerr << "warning: [history] is not set in " << global.config_path
                  << ": no change is kept; what is shown was kept before\n";
    }
    json records = json::array();
    // --since and --until as one instant for both sides, read by the first side's server.
    std::optional<std::string> since;
    std::optional<std::string> until;
    for (const auto& side : config.sides) {
        auto conn = open_side(config, side, kApplicationName);
        if (&side == &config.sides.front()) {
            const auto instant = [&](const std::string& text) -> std::optional<std::string> {
                return text.empty() ? std::nullopt
                                    : std::optional(std::to_string(read_instant(conn, text)));
            };
            since = instant(options.since);
            until = instant(options.until);
        }
        const std::string key = side_key(*table, side, conn, options.key);
        // A piece of a large transaction stamped twice (a restart) is one change.
        const auto r = conn.exec(
            "SELECT DISTINCT ON (origin, lsn, seq)"
            "       to_char(changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
            "       origin, from_side, lsn::text, seq, operation, old_values::text,"
            "       new_values::text, decision::text,"
            "       (extract(epoch FROM changed_at) * 1000000)::int8"
            "  FROM pgbridge.history"
            " WHERE bridge = $1 AND table_name = $2 AND key = $3::jsonb"
            "   AND ($4::int8 IS NULL OR changed_at >= to_timestamp($4::int8 / 1000000.0))"
            "   AND ($5::int8 IS NULL OR changed_at < to_timestamp($5::int8 / 1000000.0))"
            " ORDER BY origin, lsn, seq, logged_at",
            {config.bridge_name, table->name_on(side.name).display(), key, since, until});
        for (int row = 0; row < r.rows(); ++row) {
            records.push_back(
                {{"changed_at", std::string(r.value(row, 0))},
                 {"side", side.name},
                 {"origin", std::string(r.value(row, 1))},
                 {"from", std::string(r.value(row, 2))},
                 {"lsn", std::string(r.value(row, 3))},
                 {"seq", std::stoll(std::string(r.value(row, 4)))},
                 {"operation", std::string(r.value(row, 5))},
                 {"old", canonical_values(*table, side.name, json_column(r, row, 6))},
                 {"new", canonical_values(*table, side.name, json_column(r, row, 7))},
                 {"decision", canonical_decision(*table, side.name, json_column(r, row, 8))},
                 {"micros", std::stoll(std::string(r.value(row, 9)))}});
        }
    }
    // Oldest first; a change made on one side before its arrival on the other.
    std::stable_sort(records.begin(), records.end(), [](const json& x, const json& y) {
        return std::tuple(x["micros"].get<std::int64_t>(), x["lsn"].get<std::string>(),
                          x["seq"].get<std::int64_t>(), x["origin"] != "local") <
               std::tuple(y["micros"].get<std::int64_t>(), y["lsn"].get<std::string>(),
                          y["seq"].get<std::int64_t>(), y["origin"] != "local");
    });
    for (auto& record : records) {
        record.erase("micros");
    }
    if (global.json) {
        std::cout << records.dump(2) << "\n";
        return 0;
    }
    TextTable out({"changed at", "side", "how", "op", "before", "after", "conflict"});
    for (const auto& r : records) {
        const std::string how =
            r["origin"] == "local" ? "local write" : "applied from " + r["from"].get<std::string>();
        std::string conflict = "-";
        if (r["decision"].is_object()) {
            conflict = r["decision"].value("kind", std::string("conflict"));
            for (const auto& c : r["decision"].value("columns", json::array())) {
                conflict += fmt::format(
                    " {}:{}:{}", c.value("column", ""), c.value("rule", ""),
                    c["winner"].is_string() ? c["winner"].get<std::string>() : "pending");
            }
            if (r["decision"].contains("winner")) {
                conflict += " winner " + plain(r["decision"]["winner"]);
            }
        }
        out.add_row({r["changed_at"], r["side"], how, r["operation"], values_text(r["old"]),
                     values_text(r["new"]), conflict});
    }
    if (out.empty()) {
        std::cout << "no change of this key is kept\n";
        return 0;
    }
    out.print(std::cout);
    return 0;
}

}  // namespace pgbridge::cli
