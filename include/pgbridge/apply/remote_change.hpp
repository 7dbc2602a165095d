#pragma once

#include <set>
#include <string>
#include <vector>

#include <pgbridge/apply/conflict_resolver.hpp>
#include <pgbridge/apply/target_table.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/core/change_event.hpp>

namespace pgbridge::apply {

// A source row change translated into the target's terms: values placed at the target's
// column positions through the config's mapping (a target column the source did not send
// is "unchanged", so it is never overwritten), the sender's version vectors likewise, and
// the primary key as text values in the target's key order.
struct MappedChange {
    RemoteChange change;
    std::vector<std::string> key;
};

// Throws Error(Setup) with context waiting_for = "column" and column (its name on the source)
// when a source column has no place on the target, unless `gone` lists it (canonical names of
// columns neither side has any more: their values are left out); Error(Protocol) when the
// change lacks a usable key. Both name table and LSN.
MappedChange map_change(const ChangeEvent& event, const SourceTransaction& transaction,
                        const TableConfig& table, const TargetTable& target,
                        const std::set<std::string>& gone = {});

// The key as a JSON object {"column": "value"} for the conflict log and error context.
std::string key_json(const TargetTable& target, const std::vector<std::string>& key);

}  // namespace pgbridge::apply
