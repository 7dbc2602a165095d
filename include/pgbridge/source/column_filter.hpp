#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <pgbridge/core/change_event.hpp>
#include <pgbridge/core/qualified_name.hpp>

namespace pgbridge::source {

// The columns a table is synced without ([[tables]] exclude_columns): capture takes them out
// of every change before it is published, so that their values never leave the side. Done
// here rather than with a PostgreSQL 15 column list, which must cover the replica identity:
// the conflict rules need REPLICA IDENTITY FULL (the whole old row of every update).
class ColumnFilter {
  public:
    // By table as this side names it: the column names to leave out, as this side names them.
    explicit ColumnFilter(std::map<QualifiedName, std::set<std::string>> excluded = {});

    bool empty() const { return excluded_.empty(); }

    // Leaves the excluded columns out of every change of `txn` (its table description and its
    // row images; truncates get the same table description).
    void apply(SourceTransaction& txn);

  private:
    struct Cut {
        std::shared_ptr<const TableInfo> source;  // kept alive: the cache is keyed by its address
        std::shared_ptr<const TableInfo> table;   // without the excluded columns
        std::vector<std::size_t> kept;            // indexes of the kept columns in `source`
    };

    // The table without its excluded columns, or null when none of its columns is excluded.
    const Cut* cut_for(const std::shared_ptr<const TableInfo>& table);

    static constexpr std::size_t kMaxCachedTables = 1024;

    std::map<QualifiedName, std::set<std::string>> excluded_;
    std::map<const TableInfo*, Cut> cuts_;
};

}  // namespace pgbridge::source
