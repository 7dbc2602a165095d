#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/verify/compared_table.hpp>

namespace pgbridge::verify {
namespace {

std::vector<std::string> key_names(const apply::TargetTable& t) {
    std::vector<std::string> out;
    for (const std::size_t k : t.key) {
        out.push_back(t.columns[k].canonical);
    }
    return out;
}

}  // namespace

std::size_t ComparedTable::column_index(const std::string& canonical) const {
    const auto it = std::find(columns.begin(), columns.end(), canonical);
    if (it == columns.end()) {
        throw Error(ErrorKind::Internal, "not a compared column")
            .with("table", name().display())
            .with("column", canonical);
    }
    return static_cast<std::size_t>(it - columns.begin());
}

ComparedTable describe_compared_table(const TableConfig& table, pg::Connection& a,
                                      const std::string& side_a, pg::Connection& b,
                                      const std::string& side_b) {
    ComparedTable out;
    out.config = &table;
    out.sides[0] = apply::load_target_table(a, table, side_a);
    out.sides[1] = apply::load_target_table(b, table, side_b);
    const apply::TargetTable& ta = out.sides[0];
    const apply::TargetTable& tb = out.sides[1];
    if (key_names(ta) != key_names(tb)) {
        throw Error(ErrorKind::Setup,
                    fmt::format("the sides' primary keys differ ({} on {}, {} on {}): rows "
                                "cannot be matched",
                                fmt::join(key_names(ta), ", "), side_a,
                                fmt::join(key_names(tb), ", "), side_b))
            .with("table", table.name.display());
    }
    for (std::size_t i = 0; i < ta.columns.size(); ++i) {
        const auto& canonical = ta.columns[i].canonical;
        if (table.excluded_columns.contains(canonical)) {
            continue;  // not synced: neither compared nor repaired
        }
        const auto on_b =
            std::find(tb.canonical_names.begin(), tb.canonical_names.end(), canonical);
        if (on_b == tb.canonical_names.end()) {
            out.one_sided.push_back(canonical);
            continue;
        }
        out.columns.push_back(canonical);
        out.positions[0].push_back(i);
        out.positions[1].push_back(static_cast<std::size_t>(on_b - tb.canonical_names.begin()));
    }
    for (const auto& canonical : tb.canonical_names) {
        if (std::find(out.columns.begin(), out.columns.end(), canonical) == out.columns.end() &&
            !table.excluded_columns.contains(canonical)) {
            out.one_sided.push_back(canonical);
        }
    }
    for (const auto& k : key_names(ta)) {
        out.key.push_back(static_cast<std::size_t>(
            std::find(out.columns.begin(), out.columns.end(), k) - out.columns.begin()));
    }
    return out;
}

}  // namespace pgbridge::verify
