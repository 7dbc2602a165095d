// Fuzz target: configuration file text given to the configuration loader (the function
// `pgbridge check-config` and the daemon's SIGHUP reload use). A configuration that loads is
// then used as the daemon uses it: conflict rules, side and column mappings, the schedule.
// Seeds: packaging/pgbridge.toml and the configurations of tests/unit/config_test.cpp.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include <pgbridge/config/config.hpp>
#include <pgbridge/config/conflict_rules.hpp>
#include <pgbridge/pg/conninfo.hpp>

#include "fuzz_target.hpp"

namespace {

using namespace pgbridge;

void use(const Config& c) {
    fuzz::check(c.sides.size() == 2, "a loaded configuration without exactly two sides");
    for (const auto& side : c.sides) {
        fuzz::check(&c.side(side.name) == &side, "side() finds another side");
        fuzz::check(&c.other_side(side.name) != &side, "other_side() finds the side itself");
        static_cast<void>(pg::redact_conninfo(side.conninfo));
        fuzz::check(std::count(c.conflicts.source_priority.begin(),
                               c.conflicts.source_priority.end(), side.name) == 1,
                    "source_priority does not list every side once");
    }
    const ConflictRules rules(c);
    static_cast<void>(rules.for_other_columns().describe());
    for (const auto& table : c.tables) {
        fuzz::check(c.find_table(table.name) == &table, "find_table() finds another table");
        for (const auto& [column, rule] : rules.named_columns(table.name)) {
            static_cast<void>(rules.for_column(table.name, column).describe());
            static_cast<void>(rule.describe());
        }
        for (const auto& side : c.sides) {
            static_cast<void>(table.name_on(side.name));
            if (auto it = table.sides.find(side.name); it != table.sides.end()) {
                for (const auto& [canonical, on_side] : it->second.columns) {
                    fuzz::check(table.column_on(side.name, canonical) == on_side &&
                                    table.canonical_column(side.name, on_side) == canonical,
                                "column mapping is not its own inverse");
                }
            }
        }
    }
    if (c.verify.schedule) {
        // 2026-11-25T19:40:01Z
        static_cast<void>(c.verify.schedule->next_after(
            std::chrono::sys_seconds(std::chrono::seconds(1795635601))));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Config config;
    // Relative files resolve against a directory that does not exist.
    if (fuzz::returns_or_throws(ErrorKind::Config, [&] {
            config =
                parse_config(fuzz::as_text(data, size), "fuzz.toml", "/nonexistent/pgbridge-fuzz");
        })) {
        use(config);
    }
    return 0;
}
