// pgbridge rollback --source SIDE --since TS: puts back what SIDE's local changes of a window
// overwrote, as new writes on SIDE that sync like any (docs/history.md, "Rollback"), from
// pgbridge.history of both sides.

#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/cli/commands.hpp>
#include <pgbridge/cli/rollback_plan.hpp>
#include <pgbridge/cli/side_record.hpp>
#include <pgbridge/cli/text_table.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/log.hpp>

namespace pgbridge::cli {
namespace {

using nlohmann::json;

constexpr const char* kApplicationName = "pgbridge rollback";

ColumnValues canonical(const TableConfig& table, const std::string& side, const json& values) {
    ColumnValues out;
    if (!values.is_object()) {
        return out;
    }
    for (const auto& [column, value] : values.items()) {
        out[table.canonical_column(side, column)] =
            value.is_null() ? std::nullopt
                            : std::optional<std::string>(
                                  value.is_string() ? value.get<std::string>() : value.dump());
    }
    return out;
}

// A side's records of the table from `since` on (one per change), keyed by the key in the
// table's own column names.
std::map<std::string, std::vector<KeyChange>> read_changes(
    const Config& config, const TableConfig& table, const SideConfig& side, pg::Connection& conn,
    const std::string& since, bool local_window_only, const std::optional<std::string>& until) {
    const auto r = conn.exec(
        "SELECT DISTINCT ON (origin, lsn, seq) key::text, from_side, lsn::text, seq,"
        "       (extract(epoch FROM changed_at) * 1000000)::int8, operation,"
        "       old_values::text, new_values::text"
        "  FROM pgbridge.history"
        " WHERE bridge = $1 AND table_name = $2 AND changed_at >= $3::timestamptz"
        "   AND (NOT $4 OR (origin = 'local' AND ($5::timestamptz IS NULL"
        "                                          OR changed_at < $5::timestamptz)))"
        " ORDER BY origin, lsn, seq, logged_at",
        {config.bridge_name, table.name_on(side.name).display(), since,
         local_window_only ? "true" : "false", until});
    std::map<std::string, std::vector<KeyChange>> out;
    const auto document = [&](int row, int column) {
        return r.is_null(row, column)
                   ? json()
                   : json::parse(std::string(r.value(row, column)), nullptr, false);
    };
    for (int row = 0; row < r.rows(); ++row) {
        KeyChange c;
        c.from_side = std::string(r.value(row, 1));
        c.lsn = std::string(r.value(row, 2));
        c.seq = std::stoll(std::string(r.value(row, 3)));
        c.changed_at = std::stoll(std::string(r.value(row, 4)));
        c.operation = std::string(r.value(row, 5));
        c.old_values = canonical(table, side.name, document(row, 6));
        c.new_values = canonical(table, side.name, document(row, 7));
        json key = json::object();
        for (const auto& [column, value] : canonical(table, side.name, document(row, 0))) {
            key[column] = value ? json(*value) : json();
        }
        out[key.dump()].push_back(std::move(c));
    }
    for (auto& [key, changes] : out) {
        std::sort(changes.begin(), changes.end(), [](const KeyChange& x, const KeyChange& y) {
            return std::tie(x.changed_at, x.lsn, x.seq) < std::tie(y.changed_at, y.lsn, y.seq);
        });
    }
    return out;
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
    std::string where;
    for (const auto& [column, value] : key.items()) {
        where += fmt::format("{}{} = {}", where.empty() ? "" : " AND ",
                             quote_identifier(table.column_on(side, column)),
                             param(value.get<std::string>()));
    }
    std::string sql;
    switch (plan.action) {
        case KeyRollback::Action::Nothing:
            return true;
        case KeyRollback::Action::Delete:
            sql = fmt::format("DELETE FROM {} WHERE {}", name.quoted(), where);
            break;
        case KeyRollback::Action::Restore: {
            std::string set;
            for (const auto& [column, value] : plan.values) {
                set += fmt::format("{}{} = {}", set.empty() ? "" : ", ",
                                   quote_identifier(table.column_on(side, column)), param(value));
            }
            for (const auto& [column, value] : plan.expected) {
                where += fmt::format(" AND {} IS NOT DISTINCT FROM {}",
                                     quote_identifier(table.column_on(side, column)), param(value));
            }
            sql = fmt::format("UPDATE {} SET {} WHERE {}", name.quoted(), set, where);
            break;
        }
        case KeyRollback::Action::Reinsert: {
            params.clear();
            std::string columns;
            std::string values;
            for (const auto& [column, value] : plan.values) {
                columns +=
                    (columns.empty() ? "" : ", ") + quote_identifier(table.column_on(side, column));
                values += (values.empty() ? "" : ", ") + param(value);
            }
            sql = fmt::format("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING",
                              name.quoted(), columns, values);
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
    auto at_other = open_side(config, config.other_side(source.name), kApplicationName);
    const std::optional<std::string> until =
        options.until.empty() ? std::nullopt : std::optional<std::string>(options.until);

    json report = json::array();
    int restored = 0;
    int skipped = 0;
    for (const TableConfig* table : tables) {
        const auto window =
            read_changes(config, *table, source, at_source, options.since, true, until);
        if (window.empty()) {
            continue;
        }
        auto others =
            read_changes(config, *table, source, at_source, options.since, false, std::nullopt);
        for (auto& [key, changes] : read_changes(config, *table, config.other_side(source.name),
                                                 at_other, options.since, false, std::nullopt)) {
            auto& all = others[key];
            all.insert(all.end(), changes.begin(), changes.end());
        }
        for (const auto& [key_text, changes] : window) {
            // The window's changes, as from SOURCE: the other records of the key at SOURCE
            // include them (local), and the other side's (applied) too.
            const KeyRollback plan = plan_key_rollback(changes, others[key_text]);
            const json key = json::parse(key_text);
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
                written = carry_out(at_source, *table, source.name, key, plan);
                if (!written) {
                    outcome = "left as it is: changed since the history recorded it";
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
    const json document{{"dry_run", options.dry_run},
                        {"source", source.name},
                        {"keys", report},
                        {"restored", restored},
                        {"skipped", skipped}};
    if (!options.dry_run) {
        // Who undid what, where it was undone (and counted by the metrics).
        at_source.exec(
            "INSERT INTO pgbridge.rollbacks (bridge, source_side, since, until, table_name,"
            " keys_restored, columns_skipped, report)"
            " VALUES ($1, $2, $3::timestamptz, coalesce($4::timestamptz, now()), $5, $6, $7,"
            " $8::jsonb)",
            {config.bridge_name, source.name, options.since, until,
             options.table.empty() ? std::nullopt : std::optional<std::string>(options.table),
             std::to_string(restored), std::to_string(skipped), document.dump()});
    }
    log::info("rollback", options.dry_run ? "dry run: nothing written" : "done",
              {{"source", source.name},
               {"keys_restored", std::to_string(restored)},
               {"columns_skipped", std::to_string(skipped)}});
    if (global.json) {
        std::cout << document.dump(2) << "\n";
        return 0;
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
