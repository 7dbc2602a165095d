#include <pgbridge/source/column_filter.hpp>

namespace pgbridge::source {

ColumnFilter::ColumnFilter(std::map<QualifiedName, std::set<std::string>> excluded)
    : excluded_(std::move(excluded)) {}

const ColumnFilter::Cut* ColumnFilter::cut_for(const std::shared_ptr<const TableInfo>& table) {
    if (!table) {
        return nullptr;
    }
    if (const auto it = cuts_.find(table.get()); it != cuts_.end()) {
        return it->second.table ? &it->second : nullptr;
    }
    // Each replication session describes its tables anew: forget the old descriptions now
    // and then, so that a capture that reconnects for months holds no more than a few.
    if (cuts_.size() >= kMaxCachedTables) {
        cuts_.clear();
    }
    Cut cut;
    cut.source = table;
    const auto excluded = excluded_.find(QualifiedName{table->schema, table->name});
    if (excluded != excluded_.end()) {
        auto kept = std::make_shared<TableInfo>(*table);
        kept->columns.clear();
        for (std::size_t i = 0; i < table->columns.size(); ++i) {
            if (!excluded->second.contains(table->columns[i].name)) {
                kept->columns.push_back(table->columns[i]);
                cut.kept.push_back(i);
            }
        }
        if (cut.kept.size() < table->columns.size()) {
            cut.table = std::move(kept);
        }
    }
    const auto [it, added] = cuts_.emplace(table.get(), std::move(cut));
    return it->second.table ? &it->second : nullptr;
}

void ColumnFilter::apply(SourceTransaction& txn) {
    if (excluded_.empty()) {
        return;
    }
    const auto keep = [](std::optional<Row>& row, const Cut& cut) {
        if (!row) {
            return;
        }
        Row out;
        out.reserve(cut.kept.size());
        for (const std::size_t i : cut.kept) {
            if (i < row->size()) {
                out.push_back(std::move((*row)[i]));
            }
        }
        *row = std::move(out);
    };
    for (auto& change : txn.changes) {
        for (auto& truncated : change.truncated) {
            if (const Cut* cut = cut_for(truncated)) {
                truncated = cut->table;
            }
        }
        const Cut* cut = cut_for(change.table);
        if (cut == nullptr) {
            continue;
        }
        change.table = cut->table;
        if (change.op == ChangeOp::Truncate) {
            continue;
        }
        // Every row image has one value per column of the relation (a key-only old row, null
        // for the others), so the same cut applies.
        keep(change.old_row, *cut);
        keep(change.new_row, *cut);
    }
}

}  // namespace pgbridge::source
