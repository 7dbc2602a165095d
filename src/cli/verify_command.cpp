// pgbridge verify and pgbridge repair: are the two sides the same, and mend them where not
// (docs/verify.md). Exit 0 identical (repair: everything mended), 1 differences (repair:
// some left), 2 could not compare.

#include <iostream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <pgbridge/cli/commands.hpp>
#include <pgbridge/cli/progress_bar.hpp>
#include <pgbridge/cli/text_table.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/verify/repair.hpp>

namespace pgbridge::cli {
namespace {

using nlohmann::json;
using verify::KeyDifference;

verify::VerifyOptions verify_options(const VerifyCommandOptions& o, ProgressBar* bar = nullptr) {
    verify::VerifyOptions options;
    if (bar != nullptr) {
        options.progress = [bar](const QualifiedName& table, std::uint64_t rows,
                                 std::uint64_t estimated) {
            bar->update("verify " + table.display(), rows, estimated);
        };
    }
    if (!o.table.empty()) {
        options.table = QualifiedName::parse(o.table);
        if (!options.table) {
            throw Error(ErrorKind::Usage, "--table takes a schema-qualified name: schema.table")
                .with("table", o.table);
        }
    }
    options.fence = !o.no_fence;
    options.differ.max_keys = static_cast<std::size_t>(o.max_keys);
    options.fence_timeout = std::chrono::seconds(o.wait_seconds);
    return options;
}

json key_json(const verify::TableReport& t, const verify::Key& key) {
    json out = json::object();
    for (std::size_t k = 0; k < t.key_columns.size() && k < key.size(); ++k) {
        out[t.key_columns[k]] = key[k];
    }
    return out;
}

std::string key_text(const verify::TableReport& t, const verify::Key& key) {
    std::vector<std::string> parts;
    for (std::size_t k = 0; k < t.key_columns.size() && k < key.size(); ++k) {
        parts.push_back(t.key_columns[k] + "=" + key[k]);
    }
    return fmt::format("{}", fmt::join(parts, ","));
}

json difference_json(const verify::VerifyReport& r, const verify::TableReport& t,
                     const KeyDifference& d) {
    json out{{"key", key_json(t, d.key)}};
    if (d.kind == KeyDifference::Kind::Values) {
        out["kind"] = "values";
        out["columns"] = d.columns;
    } else {
        const std::size_t has = d.kind == KeyDifference::Kind::OnlyOnA ? 0 : 1;
        out["kind"] = "row_missing";
        out["present_on"] = r.sides[has];
        out["missing_on"] = r.sides[1 - has];
    }
    return out;
}

std::string difference_text(const verify::VerifyReport& r, const KeyDifference& d) {
    switch (d.kind) {
        case KeyDifference::Kind::OnlyOnA:
            return "only on " + r.sides[0];
        case KeyDifference::Kind::OnlyOnB:
            return "only on " + r.sides[1];
        case KeyDifference::Kind::Values:
            break;
    }
    return fmt::format("values differ: {}", fmt::join(d.columns, ", "));
}

json report_json(const verify::VerifyReport& r) {
    json tables = json::array();
    for (const auto& t : r.tables) {
        json differences = json::array();
        for (const auto& d : t.differences) {
            differences.push_back(difference_json(r, t, d));
        }
        json pending = json::array();
        for (const auto& d : t.pending_conflicts) {
            pending.push_back(difference_json(r, t, d));
        }
        tables.push_back({{"table", t.table.display()},
                          {"key_columns", t.key_columns},
                          {"rows", {{r.sides[0], t.rows[0]}, {r.sides[1], t.rows[1]}}},
                          {"ranges", t.ranges},
                          {"mismatched_ranges", t.mismatched_ranges},
                          {"candidates", t.candidates},
                          {"differences", differences},
                          {"pending_conflicts", pending},
                          {"in_flight", t.in_flight},
                          {"truncated", t.truncated},
                          {"not_compared", t.not_compared},
                          {"seconds", t.seconds}});
    }
    return json{{"bridge", r.bridge},         {"sides", r.sides},
                {"consistent", r.consistent}, {"fence_wait_ms", r.fence_wait.count()},
                {"row_hash", r.row_hash},     {"identical", r.identical()},
                {"seconds", r.seconds},       {"tables", tables}};
}

void print_report(const verify::VerifyReport& r) {
    std::cout << fmt::format(
        "verify {}: {} <-> {}, {} ({:.2f} s)\n", r.bridge, r.sides[0], r.sides[1],
        r.consistent ? fmt::format("after a fence ({} ms)", r.fence_wait.count())
                     : "as the sides are now (no fence: changes in flight "
                       "show as differences)",
        r.seconds);
    TextTable summary({"TABLE", "ROWS " + r.sides[0], "ROWS " + r.sides[1], "RANGES", "DIFFERENCES",
                       "PENDING CONFLICTS", "IN FLIGHT", "SECONDS"});
    for (const auto& t : r.tables) {
        summary.add_row({t.table.display(), std::to_string(t.rows[0]), std::to_string(t.rows[1]),
                         std::to_string(t.ranges),
                         std::to_string(t.differences.size()) + (t.truncated ? "+" : ""),
                         std::to_string(t.pending_conflicts.size()), std::to_string(t.in_flight),
                         fmt::format("{:.2f}", t.seconds)});
    }
    summary.print(std::cout);
    for (const auto& t : r.tables) {
        if (t.differences.empty() && t.pending_conflicts.empty()) {
            continue;
        }
        std::cout << "\n" << t.table.display() << ":\n";
        TextTable keys({"KEY", "DIFFERENCE"});
        for (const auto& d : t.differences) {
            keys.add_row({key_text(t, d.key), difference_text(r, d)});
        }
        for (const auto& d : t.pending_conflicts) {
            keys.add_row(
                {key_text(t, d.key),
                 difference_text(r, d) + " (a pending conflict: conflicts list --pending)"});
        }
        keys.print(std::cout);
        if (t.truncated) {
            std::cout << "  (more keys differ than were collected)\n";
        }
        if (!t.not_compared.empty()) {
            std::cout << fmt::format("  not compared (on one side only): {}\n",
                                     fmt::join(t.not_compared, ", "));
        }
    }
    std::cout << (r.identical() ? "identical\n" : "differences found\n");
}

std::string_view op_name(verify::RepairWrite::Op op) {
    switch (op) {
        case verify::RepairWrite::Op::Insert:
            return "insert";
        case verify::RepairWrite::Op::Update:
            return "update";
        case verify::RepairWrite::Op::Delete:
            return "delete";
    }
    return "?";
}

json repair_json(const verify::RepairReport& r) {
    json tables = json::array();
    for (std::size_t t = 0; t < r.tables.size(); ++t) {
        const verify::TableReport& found = r.verify.tables[t];
        json keys = json::array();
        for (const auto& o : r.tables[t].outcomes) {
            json writes = json::array();
            for (const auto& w : o.plan.writes) {
                writes.push_back({{"side", r.verify.sides[w.side]},
                                  {"op", op_name(w.op)},
                                  {"columns", w.columns},
                                  {"reason", w.reason}});
            }
            keys.push_back({{"key", key_json(found, o.plan.key)},
                            {"writes", writes},
                            {"undecided", o.plan.undecided},
                            {"written", o.written},
                            {"skipped", o.skipped ? json(*o.skipped) : json()}});
        }
        tables.push_back({{"table", found.table.display()}, {"keys", keys}});
    }
    return json{{"dry_run", r.dry_run},
                {"written", r.written},
                {"skipped", r.skipped},
                {"undecided", r.undecided},
                {"verify", report_json(r.verify)},
                {"repairs", tables}};
}

void print_repairs(const verify::RepairReport& r) {
    print_report(r.verify);
    std::cout << "\n";
    for (std::size_t t = 0; t < r.tables.size(); ++t) {
        const verify::TableReport& found = r.verify.tables[t];
        for (const auto& o : r.tables[t].outcomes) {
            const std::string where = found.table.display() + " " + key_text(found, o.plan.key);
            for (const auto& w : o.plan.writes) {
                const std::string what = w.op == verify::RepairWrite::Op::Update
                                             ? fmt::format("{}", fmt::join(w.columns, ", "))
                                             : "the row";
                std::cout << fmt::format("{}: {}{} {} on {} ({})\n", where,
                                         r.dry_run ? "would " : "", op_name(w.op), what,
                                         r.verify.sides[w.side], w.reason);
            }
            if (!o.plan.undecided.empty()) {
                std::cout << fmt::format(
                    "{}: {} left to a person (manual): recorded as pending "
                    "conflicts\n",
                    where, fmt::join(o.plan.undecided, ", "));
            }
            if (o.skipped) {
                std::cout << fmt::format("{}: not repaired: {}\n", where, *o.skipped);
            }
        }
    }
    std::cout << fmt::format("{}: {} keys written, {} skipped, {} left to a person\n",
                             r.dry_run ? "dry run" : "repair", r.written, r.skipped, r.undecided);
}

void quiet_logs(const GlobalOptions& global) {
    log::set_level(global.verbosity > 0 ? log::Level::Info : log::Level::Warning);
}

}  // namespace

int verify_command(const GlobalOptions& global, const VerifyCommandOptions& options) {
    quiet_logs(global);
    const Config config = load_config(global.config_path);
    ProgressBar bar(ProgressBar::wanted(global.json));
    verify::Verifier verifier(config, verify_options(options, &bar));
    const verify::VerifyReport report = verifier.run();
    bar.clear();
    if (global.json) {
        std::cout << report_json(report).dump(2) << "\n";
    } else {
        print_report(report);
    }
    return report.identical() ? 0 : 1;
}

int repair_command(const GlobalOptions& global, const VerifyCommandOptions& options) {
    quiet_logs(global);
    const Config config = load_config(global.config_path);
    ProgressBar bar(ProgressBar::wanted(global.json));
    const verify::RepairReport report =
        verify::verify_and_repair(config, verify_options(options, &bar), options.dry_run);
    bar.clear();
    if (global.json) {
        std::cout << repair_json(report).dump(2) << "\n";
    } else {
        print_repairs(report);
    }
    if (options.dry_run) {
        return report.verify.identical() ? 0 : 1;
    }
    if (report.skipped == 0 && options.table.empty()) {
        // Every table repaired: copies made through an older slot count as current now.
        verify::mark_copies_current(config);
    }
    return report.skipped == 0 && report.undecided == 0 ? 0 : 1;
}

}  // namespace pgbridge::cli
