#pragma once

// A source table as pgoutput describes it, for unit tests of what carries changes.

#include <memory>
#include <string>

#include <pgbridge/core/change_event.hpp>

namespace pgbridge::test {

// public.NAME (id int4, note text), REPLICA IDENTITY FULL (every column flagged identity),
// primary key id.
inline std::shared_ptr<TableInfo> id_note_table(const std::string& name) {
    auto table = std::make_shared<TableInfo>();
    table->schema = "public";
    table->name = name;
    table->replica_identity = 'f';
    table->columns.push_back(ColumnInfo{"id", 23, -1, true, true});
    table->columns.push_back(ColumnInfo{"note", 25, -1, true, false});
    return table;
}

}  // namespace pgbridge::test
