#pragma once

#include <array>
#include <string>
#include <vector>

#include <pgbridge/apply/target_table.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/pg/connection.hpp>

namespace pgbridge::verify {

// One synced table as both sides have it, and what verify compares: the columns both sides
// carry (by canonical name, through the config's mapping), in side A's column order.
struct ComparedTable {
    const TableConfig* config = nullptr;
    std::array<apply::TargetTable, 2> sides;  // in the config's side order
    std::vector<std::string> columns;         // canonical names of the compared columns
    // For each side, the position in sides[i].columns of each compared column.
    std::array<std::vector<std::size_t>, 2> positions;
    // Canonical names of columns only one side has (not synced, so not compared).
    std::vector<std::string> one_sided;
    // Positions in `columns` of the primary key columns, in key order.
    std::vector<std::size_t> key;

    const QualifiedName& name() const { return config->name; }
    // Position in `columns` of a compared column (canonical name); Error(Internal) if none.
    std::size_t column_index(const std::string& canonical) const;
};

// Reads both sides' catalogs. Throws Error(Setup) naming the table when it is missing on a
// side, or when the two sides' primary keys are not the same (canonical) columns.
ComparedTable describe_compared_table(const TableConfig& table, pg::Connection& a,
                                      const std::string& side_a, pg::Connection& b,
                                      const std::string& side_b);

}  // namespace pgbridge::verify
