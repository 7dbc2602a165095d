// pgbridge rollback --source SIDE --since TS: puts back what SIDE's local changes of a window
// overwrote, as new writes on SIDE that sync like any (docs/history.md, "Rollback"), from
// pgbridge.history of both sides.

#include <chrono>
#include <iostream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/cli/commands.hpp>
#include <pgbridge/cli/history_records.hpp>
#include <pgbridge/cli/rollback_plan.hpp>
#include <pgbridge/cli/side_record.hpp>
#include <pgbridge/cli/text_table.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/log.hpp>

namespace pgbridge::cli {
namespace {

using nlohmann::json;

constexpr const char* kApplicationName = "pgbridge rollback";

ColumnValues canonical(const TableConfig& table, const std::string& side, const json& values) {
    ColumnValues out;
    const json named = canonical_values(table, side, values);  // outlives the loop's proxy
    for (const auto& [column, value] : named.items()) {
        out[column] = value.is_null()
                          ? std::nullopt
                          : std::optional<std::string>(value.is_string() ? value.get<std::string>()
                                                                         : value.dump());
    }
    return out;
}

// A side's records of the table from `since` on (one per change), keyed by the key in the
// table's own column names.
std::map<std::string, std::vector<KeyChange>> read_changes(
    const Config& config, const TableConfig& table, const SideConfig& side, pg::Connection& conn,
    std::int64_t since, bool local_window_only, std::optional<std::int64_t> until) {
    // Times as one instant for both sides (microseconds), whatever their time zones. A record
    // is logged after its change was made (up to the clocks' skew): the margin lets the
    // partitions older than the window go unread.
    const auto r = conn.exec(
        "SELECT DISTINCT ON (origin, from_side, lsn, seq, key) key::text, from_side, lsn::text,"
        "       seq, (extract(epoch FROM changed_at) * 1000000)::int8, operation,"
        "       old_values::text, new_values::text"
        "  FROM pgbridge.history"
        " WHERE bridge = $1 AND table_name = $2"
        "   AND changed_at >= to_timestamp($3::int8 / 1000000.0)"
        "   AND logged_at >= to_timestamp($3::int8 / 1000000.0) - interval '1 day'"
        "   AND (NOT $4 OR (origin = 'local' AND ($5::int8 IS NULL"
        "                   OR changed_at < to_timestamp($5::int8 / 1000000.0))))"
        " ORDER BY origin, from_side, lsn, seq, key, logged_at",
        {config.bridge_name, table.name_on(side.name).display(), std::to_string(since),
         local_window_only ? "true" : "false",
         until ? std::optional<std::string>(std::to_string(*until)) : std::nullopt});
    std::map<std::string, std::vector<KeyChange>> out;
    for (int row = 0; row < r.rows(); ++row) {
        KeyChange c;
        c.from_side = std::string(r.value(row, 1));
        c.lsn = std::string(r.value(row, 2));
        c.seq = std::stoll(std::string(r.value(row, 3)));
        c.changed_at = std::stoll(std::string(r.value(row, 4)));
        c.operation = std::string(r.value(row, 5));
        c.old_values = canonical(table, side.name, json_column(r, row, 6));
        c.new_values = canonical(table, side.name, json_column(r, row, 7));
        out[canonical_values(table, side.name, json_column(r, row, 0)).dump()].push_back(
            std::move(c));
    }
    for (auto& [key, changes] : out) {
        std::sort(changes.begin(), changes.end(), [](const KeyChange& x, const KeyChange& y) {
            return std::tie(x.changed_at, x.lsn, x.seq) < std::tie(y.changed_at, y.lsn, y.seq);
        });
    }
    return out;
}

// A column's value as history holds it (its output text), NULL as NULL: compared as text,
// which every type has, where equality is not (json, point, ...).
std::string as_text(const std::string& column) {
    return fmt::format("(CASE WHEN {0} IS NULL THEN NULL ELSE pg_catalog.format('%s', {0}) END)",
                       column);
}

// Writes one key's plan on the source side, in a transaction of its own; false when the row
// is not as the history left it (written meanwhile): nothing is written then.
bool carry_out(pg::Connection& conn, const TableConfig& table, const std::string& side,
               const json& key, const KeyRollback& plan) {
    const QualifiedName name = table.name_on(side);
    pg::Params params;
    const auto param = [&](const std::optional<std::string>& value) {
        params.push_back(value);
        return fmt::format("${}", params.size());
    };
    // Delete and restore: the key, and the row as the window left it.
    const auto condition = [&] {
        std::string where;
        for (const auto& [column, value] : key.items()) {
            where += fmt::format("{}{} = {}", where.empty() ? "" : " AND ",
                                 quote_identifier(table.column_on(side, column)),
                                 param(value.get<std::string>()));
        }
        for (const auto& [column, value] : plan.expected) {
            where +=
                fmt::format(" AND {} IS NOT DISTINCT FROM {}::text",
                            as_text(quote_identifier(table.column_on(side, column))), param(value));
        }
        return where;
    };
    std::string sql;
    switch (plan.action) {
        case KeyRollback::Action::Nothing:
            return true;
        case KeyRollback::Action::Delete:
            sql = fmt::format("DELETE FROM {} WHERE {}", name.quoted(), condition());
            break;
        case KeyRollback::Action::Restore: {
            std::string set;
            for (const auto& [column, value] : plan.values) {
                set += fmt::format("{}{} = {}", set.empty() ? "" : ", ",
                                   quote_identifier(table.column_on(side, column)), param(value));
            }
            sql = fmt::format("UPDATE {} SET {} WHERE {}", name.quoted(), set, condition());
            break;
        }
        case KeyRollback::Action::Reinsert: {
            std::string key_columns;
            for (const auto& [column, value] : key.items()) {
                key_columns += (key_columns.empty() ? "" : ", ") +
                               quote_identifier(table.column_on(side, column));
            }
            std::string columns;
            std::string values;
            for (const auto& [column, value] : plan.values) {
                columns +=
                    (columns.empty() ? "" : ", ") + quote_identifier(table.column_on(side, column));
                values += (values.empty() ? "" : ", ") + param(value);
            }
            // As it was, identity columns included; only a row of the same key stops it (a
            // clash on another unique column is an error, reported).
            sql = fmt::format(
                "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES ({}) ON CONFLICT ({}) DO "
                "NOTHING",
                name.quoted(), columns, values, key_columns);
            break;
        }
    }
    return conn.exec(sql, params).affected_rows() == 1;
}

std::string values_text(const ColumnValues& values) {
    std::string out;
    for (const auto& [column, value] : values) {
        out += fmt::format("{}{}={}", out.empty() ? "" : " ", column, value.value_or("NULL"));
    }
    return out;
}

// Whether the side's capture has recorded, and so written the history of, everything the
// side committed before now: its slot confirmed past the WAL position of this moment, within
// a few seconds.
bool history_caught_up(const Config& config, const SideConfig& side, pg::Connection& conn) {
    const std::string now(conn.exec("SELECT pg_current_wal_lsn()::text").value(0, 0));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
        const auto r = conn.exec(
            "SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots"
            " WHERE slot_name = $1",
            {names::slot(config.bridge_name, side.name), now});
        if (r.rows() == 1 && r.value(0, 0) == "t") {
            return true;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
}

}  // namespace

int rollback_command(const GlobalOptions& global, const RollbackCommandOptions& options) {
    const Config config = load_config(global.config_path);
    const SideConfig& source = config.side(options.source);
    if (!options.yes && !options.dry_run) {
        throw Error(ErrorKind::Usage,
                    "rollback writes on both sides: run it with --dry-run to see what it would "
                    "do, then with --yes");
    }
    std::vector<const TableConfig*> tables;
    for (const auto& table : config.tables) {
        if (options.table.empty() || table.name.display() == options.table ||
            table.name_on(source.name).display() == options.table) {
            tables.push_back(&table);
        }
    }
    if (tables.empty()) {
        throw Error(ErrorKind::Usage, "--table: not a synced table of this bridge")
            .with("table", options.table);
    }
    auto at_source = open_side(config, source, kApplicationName);
    const SideConfig& other = config.other_side(source.name);
    auto at_other = open_side(config, other, kApplicationName);
    // The window as SOURCE's server reads the text, once, for both sides.
    const std::int64_t since = read_instant(at_source, options.since);
    const std::int64_t until =
        read_instant(at_source, options.until.empty() ? "now" : options.until);
    const bool complete =
        history_caught_up(config, source, at_source) && history_caught_up(config, other, at_other);
    if (!complete) {
        log::warning("rollback",
                     "a side's capture has not recorded everything up to now (pgbridge run "
                     "stopped or behind): its latest changes may be missing from the history, "
                     "and are then neither undone nor counted as later writes");
    }

    json report = json::array();
    int restored = 0;
    int skipped = 0;
    int failed = 0;
    for (const TableConfig* table : tables) {
        const auto window = read_changes(config, *table, source, at_source, since, true, until);
        if (window.empty()) {
            continue;
        }
        auto others = read_changes(config, *table, source, at_source, since, false, std::nullopt);
        for (auto& [key, changes] :
             read_changes(config, *table, other, at_other, since, false, std::nullopt)) {
            auto& all = others[key];
            all.insert(all.end(), changes.begin(), changes.end());
        }
        // Deletes first, inserts last: a key changed in the window (the delete of the old key,
        // the insert of the new) frees the new key before the old comes back.
        std::vector<std::pair<json, KeyRollback>> plans;
        for (const auto& [key_text, changes] : window) {
            plans.emplace_back(json::parse(key_text), plan_key_rollback(changes, others[key_text]));
        }
        const auto rank = [](KeyRollback::Action a) {
            return a == KeyRollback::Action::Delete     ? 0
                   : a == KeyRollback::Action::Reinsert ? 2
                                                        : 1;
        };
        std::stable_sort(plans.begin(), plans.end(), [&](const auto& x, const auto& y) {
            return rank(x.second.action) < rank(y.second.action);
        });
        for (const auto& [key, plan] : plans) {
            std::string outcome;
            switch (plan.action) {
                case KeyRollback::Action::Nothing:
                    outcome = plan.skipped.empty() ? "nothing to put back" : "left as it is";
                    break;
                case KeyRollback::Action::Restore:
                    outcome = "restore " + values_text(plan.values);
                    break;
                case KeyRollback::Action::Delete:
                    outcome = "delete (inserted in the window)";
                    break;
                case KeyRollback::Action::Reinsert:
                    outcome = "insert again (deleted in the window)";
                    break;
            }
            bool written = false;
            if (!options.dry_run && plan.action != KeyRollback::Action::Nothing) {
                try {
                    written = carry_out(at_source, *table, source.name, key, plan);
                    if (!written) {
                        outcome = "left as it is: changed since the history recorded it";
                    }
                } catch (const Error& e) {
                    // One key that cannot be written (a constraint, say) does not stop the rest.
                    outcome = "failed: " + e.message();
                    ++failed;
                }
            }
            if (plan.action != KeyRollback::Action::Nothing && (written || options.dry_run)) {
                ++restored;
            }
            json skips = json::array();
            for (const auto& [column, why] : plan.skipped) {
                skips.push_back({{"column", column == "*" ? json() : json(column)}, {"why", why}});
                ++skipped;
            }
            report.push_back({{"table", table->name.display()},
                              {"key", key},
                              {"outcome", outcome},
                              {"written", written},
                              {"skipped", skips}});
        }
    }
    const json document{{"dry_run", options.dry_run},  {"source", source.name}, {"keys", report},
                        {"restored", restored},        {"skipped", skipped},    {"failed", failed},
                        {"history_complete", complete}};
    if (!options.dry_run) {
        // Who undid what, where it was undone (and counted by the metrics).
        at_source.exec(
            "INSERT INTO pgbridge.rollbacks (bridge, source_side, since, until, table_name,"
            " keys_restored, columns_skipped, report)"
            " VALUES ($1, $2, to_timestamp($3::int8 / 1000000.0),"
            " to_timestamp($4::int8 / 1000000.0), $5, $6, $7, $8::jsonb)",
            {config.bridge_name, source.name, std::to_string(since), std::to_string(until),
             options.table.empty() ? std::nullopt : std::optional<std::string>(options.table),
             std::to_string(restored), std::to_string(skipped), document.dump()});
    }
    log::info("rollback", options.dry_run ? "dry run: nothing written" : "done",
              {{"source", source.name},
               {"keys_restored", std::to_string(restored)},
               {"columns_skipped", std::to_string(skipped)}});
    if (global.json) {
        std::cout << document.dump(2) << "\n";
        return failed > 0 ? 1 : 0;
    }
    TextTable out({"table", "key", "what", "left as it is"});
    for (const auto& r : report) {
        std::string skips;
        for (const auto& s : r["skipped"]) {
            skips += fmt::format("{}{}: {}", skips.empty() ? "" : "; ",
                                 s["column"].is_null() ? "row" : s["column"].get<std::string>(),
                                 s["why"].get<std::string>());
        }
        out.add_row({r["table"], r["key"].dump(), r["outcome"], skips.empty() ? "-" : skips});
    }
    out.print(std::cout);
    std::cout << fmt::format(
        "{}{} keys put back, {} columns left as they are (written again "
        "after the window)\n",
        options.dry_run ? "dry run, nothing written: " : "", restored, skipped);
    return 0;
}

}  // namespace pgbridge::cli
