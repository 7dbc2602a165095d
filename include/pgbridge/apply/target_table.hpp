#pragma once

#include <optional>
#include <string>
#include <vector>

#include <pgbridge/config/config.hpp>
#include <pgbridge/pg/connection.hpp>

namespace pgbridge::apply {

struct TargetColumn {
    std::string name;       // on this side
    std::string canonical;  // as the config names it (the conflict rules use this name)
    std::string type;       // format_type(): usable in CAST(... AS type)
    bool primary_key = false;
};

// A synced table as the target side has it: what the applier writes, in the target's column
// order (the canonical order of the resolver's rows). Generated and dropped columns are left
// out: the server computes the first, the second no longer exist.
struct TargetTable {
    std::string side;
    QualifiedName canonical;
    QualifiedName name;         // on this side
    std::string versions_name;  // quote_ident(schema).quote_ident(table): the row_versions key
    std::vector<TargetColumn> columns;
    std::vector<std::size_t> key;  // indexes into columns, in primary key order
    // The rows synced ([[tables]] where), in this side's names; verify compares only those.
    std::optional<std::string> row_filter;

    // The columns' canonical names and names on this side, in the same order (filled with
    // `columns`: the applier asks for them for every change).
    std::vector<std::string> canonical_names;
    std::vector<std::string> names;
    // Index of a column by its name on this side, or npos.
    std::size_t find(const std::string& name) const;
};

// Reads the table's description from the target's catalog. Throws Error(Setup) naming the
// table when it is missing or has no primary key.
TargetTable load_target_table(pg::Connection& connection, const TableConfig& table,
                              const std::string& side);

}  // namespace pgbridge::apply
