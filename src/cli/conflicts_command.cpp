// pgbridge conflicts list / show / resolve: the conflict log of both sides, and manual
// resolution of pending (manual strategy) conflicts.

#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/apply/conflict_log.hpp>
#include <pgbridge/cli/commands.hpp>
#include <pgbridge/cli/side_record.hpp>
#include <pgbridge/cli/text_table.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/pg/connection.hpp>

namespace pgbridge::cli {
namespace {

using nlohmann::json;

json parse_or_null(const std::optional<std::string>& text) {
    return text ? json::parse(*text) : json();
}

json text_or_null(const std::optional<std::string>& text) {
    return text ? json(*text) : json();
}

json record_json(const std::string& side, const apply::ConflictRecord& r) {
    return json{{"id", fmt::format("{}:{}", side, r.id)},
                {"side", side},
                {"detected_at", r.detected_at},
                {"table", r.table},
                {"key", json::parse(r.key)},
                {"kind", r.kind},
                {"columns", json::parse(r.columns)},
                {"local_side", r.local_side},
                {"remote_side", r.remote_side},
                {"local_values", parse_or_null(r.local_values)},
                {"remote_values", parse_or_null(r.remote_values)},
                {"local_commit_time", text_or_null(r.local_commit_time)},
                {"remote_commit_time", text_or_null(r.remote_commit_time)},
                {"remote_lsn", text_or_null(r.remote_lsn)},
                {"strategy", r.strategy},
                {"winner", text_or_null(r.winner)},
                {"status", r.status},
                {"resolved_at", text_or_null(r.resolved_at)},
                {"resolved_by", text_or_null(r.resolved_by)},
                {"note", text_or_null(r.note)}};
}

std::string columns_text(const json& columns) {
    std::string out;
    for (const auto& c : columns) {
        out += (out.empty() ? "" : ",") + c.get<std::string>();
    }
    return out.empty() ? "(row)" : out;
}

pg::Connection open_side(const Config& config, const SideConfig& side) {
    return cli::open_side(config, side, "pgbridge conflicts");
}

// The record an id names, read from its side.
json find_record(const Config& config, const std::string& text) {
    return find_side_record(
        config, text, "conflict", "pgbridge conflicts",
        [](pg::Connection& conn, const std::string& side, const std::string& number) {
            std::vector<json> found;
            if (const auto r = apply::find_conflict(conn, number)) {
                found.push_back(record_json(side, *r));
            }
            return found;
        });
}

const TableConfig& table_named(const Config& config, const std::string& side,
                               const std::string& display_name) {
    for (const auto& t : config.tables) {
        if (t.name_on(side).display() == display_name) {
            return t;
        }
    }
    throw Error(ErrorKind::Config, "the conflict's table is no longer synced by this bridge")
        .with("side", side)
        .with("table", display_name);
}

int list(const Config& config, const GlobalOptions& global,
         const ConflictsCommandOptions& options) {
    json all = json::array();
    int unreachable = 0;
    for (const auto& side : config.sides) {
        try {
            auto conn = open_side(config, side);
            for (const auto& r : apply::list_conflicts(conn, {.pending_only = options.pending,
                                                             .table = options.table,
                                                             .limit = options.limit})) {
                all.push_back(record_json(side.name, r));
            }
        } catch (const Error& e) {
            ++unreachable;
            std::cerr << fmt::format("pgbridge: side {} cannot be read: {}\n", side.name, e.what());
        }
    }
    if (global.json) {
        std::cout << all.dump(2) << "\n";
    } else {
        TextTable table(
            {"ID", "DETECTED", "TABLE", "KEY", "KIND", "COLUMNS", "STRATEGY", "WINNER", "STATUS"});
        for (const auto& c : all) {
            table.add_row({c["id"], plain(c["detected_at"]).substr(0, 19), plain(c["table"]),
                           plain(c["key"]), plain(c["kind"]), columns_text(c["columns"]),
                           plain(c["strategy"]), plain(c["winner"]), plain(c["status"])});
        }
        if (table.empty()) {
            std::cout << (options.pending ? "no pending conflicts\n" : "no conflicts\n");
        } else {
            table.print(std::cout);
        }
    }
    return unreachable > 0 ? 1 : 0;
}

int show(const Config& config, const GlobalOptions& global, const std::string& id) {
    const json c = find_record(config, id);
    if (global.json) {
        std::cout << c.dump(2) << "\n";
        return 0;
    }
    for (const char* field :
         {"id", "status", "detected_at", "table", "key", "kind", "columns", "strategy", "winner",
          "local_side", "local_values", "local_commit_time", "remote_side", "remote_values",
          "remote_commit_time", "remote_lsn", "resolved_at", "resolved_by", "note"}) {
        std::cout << fmt::format("{:<20}{}\n", field, plain(c[field]));
    }
    return 0;
}

// Writes the taken side's values on the other side as an ordinary local write there: the
// bridge carries it back to the taken side, where it is not a conflict (it was written after
// seeing that side's value), so both sides end with the taken values. Then marks the pending
// records of that key and those columns resolved on both sides.
int resolve(const Config& config, const GlobalOptions& global, const std::string& id,
            const std::string& take) {
    config.side(take);  // throws for an unknown side
    const json c = find_record(config, id);
    if (c["status"] != "pending") {
        throw Error(ErrorKind::Usage, "this conflict is already resolved")
            .with("id", plain(c["id"]));
    }
    const std::string record_side = c["side"];
    const TableConfig& table = table_named(config, record_side, c["table"]);
    const json& taken = take == record_side ? c["local_values"] : c["remote_values"];
    const std::string& other = config.other_side(take).name;

    // Column and key names on each side, through the mapping.
    const auto on = [&](const std::string& side, const std::string& record_column) {
        return table.column_on(side, table.canonical_column(record_side, record_column));
    };
    json result = {{"id", c["id"]}, {"take", take}, {"written_on", other}};
    for (const auto& side : config.sides) {
        auto conn = open_side(config, side);
        pg::Params params;
        std::string sets;
        if (side.name == other) {
            for (const auto& [column, value] : taken.items()) {
                params.push_back(value.is_null() ? std::nullopt : std::optional(plain(value)));
                sets += fmt::format("{}{} = ${}", sets.empty() ? "" : ", ",
                                    quote_identifier(on(side.name, column)), params.size());
            }
        }
        json key = json::object();
        std::string where;
        for (const auto& [column, value] : c["key"].items()) {
            key[on(side.name, column)] = value;
            params.push_back(value.get<std::string>());
            where += fmt::format("{}{} = ${}", where.empty() ? "" : " AND ",
                                 quote_identifier(on(side.name, column)), params.size());
        }
        std::vector<std::string> columns;
        for (const auto& column : c["columns"]) {
            columns.push_back(on(side.name, column));
        }
        conn.transaction([&] {
            if (!sets.empty()) {
                const pg::Result w = conn.exec("UPDATE " + table.name_on(side.name).quoted() +
                                                   " SET " + sets + " WHERE " + where,
                                               params);
                result["row_found"] = w.affected_rows() == 1;
            }
            result["marked_" + side.name] =
                apply::mark_resolved(conn, {.table = table.name_on(side.name).display(),
                                            .key = key.dump(),
                                            .columns = columns,
                                            .winner = take});
        });
    }
    if (global.json) {
        std::cout << result.dump(2) << "\n";
    } else {
        std::cout << fmt::format(
            "conflict {} resolved: took {}'s values; wrote them on {}{}; the bridge carries the "
            "write to {}\n",
            plain(c["id"]), take, other,
            result.value("row_found", false) ? "" : " (the row no longer exists there)", take);
    }
    return 0;
}

}  // namespace

int conflicts_command(const GlobalOptions& global, const ConflictsCommandOptions& options) {
    const Config config = load_config(global.config_path);
    if (options.action == "list") {
        return list(config, global, options);
    }
    if (options.action == "show") {
        return show(config, global, options.id);
    }
    return resolve(config, global, options.id, options.take);
}

}  // namespace pgbridge::cli
