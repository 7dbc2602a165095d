// pgbridge slots: every replication slot that holds WAL on either side, pgbridge's first.

#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/cli/commands.hpp>
#include <pgbridge/cli/text_table.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/config/object_names.hpp>
#include <pgbridge/config/side_connection.hpp>
#include <pgbridge/core/byte_size.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/pg/connection.hpp>

namespace pgbridge::cli {
namespace {

std::string bytes_text(const std::optional<std::string>& bytes) {
    return bytes ? format_bytes(std::stoll(*bytes)) : "-";
}

nlohmann::json text_or_null(const std::optional<std::string>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json();
}

nlohmann::json number_or_null(const std::optional<std::string>& v) {
    return v ? nlohmann::json(std::stoll(*v)) : nlohmann::json();
}

}  // namespace

int slots_command(const GlobalOptions& global) {
    const Config config = load_config(global.config_path);
    nlohmann::json sides = nlohmann::json::array();
    TextTable table({"SIDE", "SLOT", "OWNER", "ACTIVE", "PID", "RESTART LSN", "CONFIRMED LSN",
                     "LAG", "RETAINED WAL", "WAL STATUS", "SAFE WAL SIZE"});
    std::vector<std::string> unreachable;
    for (const auto& side : config.sides) {
        const auto connect = side_connect_options(side, config.engine.timeout_ms, "pgbridge slots");
        nlohmann::json slots = nlohmann::json::array();
        try {
            auto conn = pg::Connection::open(connect);
            // Lag: WAL written after what the consumer confirmed. Retained: WAL the slot keeps
            // on disk. Slots that hold no WAL (never used physical ones) are left out.
            auto r = conn.exec(
                "SELECT slot_name, slot_type, coalesce(plugin, ''), coalesce(database, ''),"
                "       active, active_pid::text, restart_lsn::text, confirmed_flush_lsn::text,"
                "       (pg_current_wal_lsn() - coalesce(confirmed_flush_lsn, restart_lsn))::text,"
                "       (pg_current_wal_lsn() - restart_lsn)::text, wal_status,"
                "       safe_wal_size::text"
                "  FROM pg_replication_slots WHERE restart_lsn IS NOT NULL"
                " ORDER BY slot_name NOT LIKE 'pgbridge\\_%', slot_name");
            for (int row = 0; row < r.rows(); ++row) {
                const std::string name(r.value(row, 0));
                const std::string owner = name == names::slot(config.bridge_name, side.name)
                                              ? "this bridge"
                                          : name.starts_with("pgbridge_") ? "pgbridge"
                                                                          : "other";
                nlohmann::json slot{{"slot", name},
                                    {"owner", owner},
                                    {"type", r.value(row, 1)},
                                    {"plugin", r.value(row, 2)},
                                    {"database", r.value(row, 3)},
                                    {"active", r.value(row, 4) == "t"},
                                    {"active_pid", number_or_null(r.optional_value(row, 5))},
                                    {"restart_lsn", text_or_null(r.optional_value(row, 6))},
                                    {"confirmed_flush_lsn", text_or_null(r.optional_value(row, 7))},
                                    {"lag_bytes", number_or_null(r.optional_value(row, 8))},
                                    {"retained_bytes", number_or_null(r.optional_value(row, 9))},
                                    {"wal_status", text_or_null(r.optional_value(row, 10))},
                                    {"safe_wal_size", number_or_null(r.optional_value(row, 11))}};
                table.add_row(
                    {side.name, name, owner, r.value(row, 4) == "t" ? "yes" : "no",
                     r.optional_value(row, 5).value_or("-"), r.optional_value(row, 6).value_or("-"),
                     r.optional_value(row, 7).value_or("-"), bytes_text(r.optional_value(row, 8)),
                     bytes_text(r.optional_value(row, 9)), r.optional_value(row, 10).value_or("-"),
                     bytes_text(r.optional_value(row, 11))});
                slots.push_back(std::move(slot));
            }
            sides.push_back({{"side", side.name}, {"reachable", true}, {"slots", slots}});
        } catch (const Error& e) {
            unreachable.push_back(fmt::format("side {}: {}", side.name, e.message()));
            sides.push_back({{"side", side.name}, {"reachable", false}, {"error", e.message()}});
        }
    }
    if (global.json) {
        std::cout << nlohmann::json{{"sides", sides}}.dump(2) << '\n';
    } else {
        table.print(std::cout);
        for (const auto& line : unreachable) {
            std::cerr << "pgbridge slots: cannot reach " << line << '\n';
        }
    }
    return unreachable.empty() ? 0 : 1;
}

}  // namespace pgbridge::cli
