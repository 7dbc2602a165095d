#include <algorithm>

#include <fmt/format.h>

#include <pgbridge/config/conflict_rules.hpp>

namespace pgbridge {

std::string ColumnRule::describe() const {
    if (source != Source::DefaultStrategy) {
        return fmt::format("{} wins", *fixed_winner);
    }
    switch (strategy) {
        case ConflictStrategy::LastWriteWins:
            return fmt::format("the later write to the column wins; equal times: {} wins",
                               tie_winner);
        case ConflictStrategy::SourcePriority:
            return fmt::format("{} wins", *fixed_winner);
        case ConflictStrategy::Manual:
            return "local value kept, conflict recorded as pending";
    }
    return "unknown";
}

ConflictRules::ConflictRules(const Config& config)
    : conflicts_(config.conflicts), config_file_(config.file.filename().string()) {}

ColumnRule ConflictRules::from_field_rule(const FieldRule& rule) const {
    ColumnRule result;
    result.source =
        rule.table ? ColumnRule::Source::TableFieldRule : ColumnRule::Source::ColumnFieldRule;
    result.fixed_winner = rule.winner;
    const std::string key = rule.table ? rule.table->display() + "." + rule.column : rule.column;
    result.reason =
        fmt::format("conflicts.field_priority \"{}\" ({}:{})", key, config_file_, rule.where.line);
    return result;
}

ColumnRule ConflictRules::for_column(const QualifiedName& table, std::string_view column) const {
    const FieldRule* column_rule = nullptr;
    for (const auto& rule : conflicts_.field_priority) {
        if (rule.column != column) {
            continue;
        }
        if (rule.table && *rule.table == table) {
            return from_field_rule(rule);
        }
        if (!rule.table) {
            column_rule = &rule;
        }
    }
    return column_rule != nullptr ? from_field_rule(*column_rule) : for_other_columns();
}

ColumnRule ConflictRules::for_other_columns() const {
    ColumnRule result;
    result.strategy = conflicts_.default_strategy;
    result.tie_winner =
        conflicts_.source_priority.empty() ? std::string() : conflicts_.source_priority.front();
    if (result.strategy == ConflictStrategy::SourcePriority) {
        result.fixed_winner = result.tie_winner;
    }
    result.reason = fmt::format("conflicts.default_strategy = \"{}\"", to_string(result.strategy));
    if (result.strategy != ConflictStrategy::Manual) {
        result.reason += fmt::format(
            ", source_priority [{}]{}", fmt::join(conflicts_.source_priority, ", "),
            conflicts_.source_priority_as_written.size() == conflicts_.source_priority.size()
                ? ""
                : " (completed in declaration order)");
    }
    return result;
}

std::vector<std::pair<std::string, ColumnRule>> ConflictRules::named_columns(
    const QualifiedName& table) const {
    std::vector<std::pair<std::string, ColumnRule>> result;
    for (const auto& rule : conflicts_.field_priority) {
        if (rule.table && *rule.table != table) {
            continue;
        }
        const bool listed = std::any_of(result.begin(), result.end(), [&](const auto& entry) {
            return entry.first == rule.column;
        });
        if (!listed) {
            result.emplace_back(rule.column, for_column(table, rule.column));
        }
    }
    return result;
}

std::vector<std::string> unknown_field_rule_columns(
    const Config& config, const std::map<QualifiedName, std::set<std::string>>& columns) {
    std::vector<std::string> out;
    for (const auto& rule : config.conflicts.field_priority) {
        bool known = false;
        if (rule.table) {
            const auto it = columns.find(*rule.table);
            known = it != columns.end() && it->second.contains(rule.column);
        } else {
            known = std::any_of(columns.begin(), columns.end(),
                                [&](const auto& t) { return t.second.contains(rule.column); });
        }
        if (!known) {
            out.push_back(
                fmt::format("{}:{}: conflicts.field_priority names column '{}', which {} has",
                            rule.where.file, rule.where.line, rule.column,
                            rule.table ? "table " + rule.table->display() + " never"
                                       : std::string("no synced table")));
        }
    }
    return out;
}

}  // namespace pgbridge
