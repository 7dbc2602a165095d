#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <pgbridge/config/config.hpp>

namespace pgbridge {

// How a conflict on one column of one table is decided, with the reason in words, after
// applying the precedence of docs/configuration.md, "Conflict rules": a field_priority rule
// for "schema.table.column", else one for the bare column, else conflicts.default_strategy.
struct ColumnRule {
    enum class Source { TableFieldRule, ColumnFieldRule, DefaultStrategy };

    Source source = Source::DefaultStrategy;
    // The side that always wins: set for field rules and for the source_priority strategy.
    std::optional<std::string> fixed_winner;
    // The strategy when no field rule applies.
    ConflictStrategy strategy = ConflictStrategy::LastWriteWins;
    // For last_write_wins: who wins equal commit times (first in source_priority).
    std::string tie_winner;
    // "conflicts.field_priority.\"email\" (pgbridge.toml:31)" or "conflicts.default_strategy".
    std::string reason;

    // One line for people: "zervigo wins", "the later write wins; ties: looma_crm", ...
    std::string describe() const;
};

class ConflictRules {
  public:
    explicit ConflictRules(const Config& config);

    ColumnRule for_column(const QualifiedName& table, std::string_view column) const;
    // What applies to the columns no field rule names.
    ColumnRule for_other_columns() const;
    // The columns of this table that a field rule names, each with its resolved rule, in the
    // order the rules were written.
    std::vector<std::pair<std::string, ColumnRule>> named_columns(const QualifiedName& table) const;

  private:
    ColumnRule from_field_rule(const FieldRule& rule) const;

    ConflictsConfig conflicts_;
    std::string config_file_;
};

// The field_priority rules that name a column no synced table has (a typo: the rule would do
// nothing), each said as "FILE:LINE: conflicts.field_priority names column 'x', which ...".
// `columns`: the canonical column names of every synced table.
std::vector<std::string> unknown_field_rule_columns(
    const Config& config, const std::map<QualifiedName, std::set<std::string>>& columns);

}  // namespace pgbridge
