#include <algorithm>
#include <set>

#include <pgbridge/core/key_shard.hpp>
#include <pgbridge/transport/shard_router.hpp>

namespace pgbridge::transport {

ShardRouting ShardRouting::of(const Config& config, const std::string& source_side) {
    ShardRouting routing;
    routing.shards = static_cast<std::uint32_t>(config.engine.apply_workers);
    // Found by the name the source gives the table.
    std::set<QualifiedName> atomic;
    for (const auto& t : config.tables) {
        if (t.atomic_transactions) {
            atomic.insert(t.name_on(source_side));
        }
    }
    if (!atomic.empty()) {
        routing.atomic = [atomic](const TableInfo& table) {
            return atomic.contains(QualifiedName{table.schema, table.name});
        };
    }
    return routing;
}

std::uint32_t shard_of(const ChangeEvent& change, const ShardRouting& routing) {
    if (routing.shards <= 1 || !change.table || (routing.atomic && routing.atomic(*change.table))) {
        return 0;
    }
    const std::optional<Row>& row = change.new_row ? change.new_row : change.old_row;
    if (!row) {
        return 0;
    }
    const auto& columns = change.table->columns;
    const bool has_primary_key = std::any_of(columns.begin(), columns.end(),
                                             [](const ColumnInfo& c) { return c.primary_key; });
    std::vector<std::string_view> values;
    for (std::size_t i = 0; i < columns.size() && i < row->size(); ++i) {
        if (has_primary_key ? columns[i].primary_key : columns[i].key) {
            values.push_back((*row)[i].data);
        }
    }
    return key_shard(std::move(values), routing.shards);
}

std::vector<std::optional<SourceTransaction>> split_by_shard(SourceTransaction transaction,
                                                             const ShardRouting& routing) {
    const std::uint32_t shards = std::max<std::uint32_t>(routing.shards, 1);
    std::vector<std::optional<SourceTransaction>> shares(shards);
    const auto share = [&](std::uint32_t shard) -> SourceTransaction& {
        if (!shares[shard]) {
            SourceTransaction& s = shares[shard].emplace();
            s.source_side = transaction.source_side;
            s.xid = transaction.xid;
            s.commit_lsn = transaction.commit_lsn;
            s.end_lsn = transaction.end_lsn;
            s.commit_time = transaction.commit_time;
            s.origin = transaction.origin;
            s.origin_lsn = transaction.origin_lsn;
            s.streamed = transaction.streamed;
        }
        return *shares[shard];
    };
    if (shards == 1) {
        shares[0] = std::move(transaction);
        return shares;
    }
    if (transaction.changes.empty()) {
        for (std::uint32_t k = 0; k < shards; ++k) {
            share(k);
        }
        return shares;
    }
    for (auto& change : transaction.changes) {
        if (change.op == ChangeOp::Truncate) {
            // The rows of an atomic table are all on the first shard, which removes them; the
            // others' rows are on every shard, and each removes its own.
            ChangeEvent on_first = change;
            ChangeEvent everywhere = change;
            on_first.truncated.clear();
            everywhere.truncated.clear();
            for (const auto& table : change.truncated) {
                const bool atomic = routing.atomic && routing.atomic(*table);
                (atomic ? on_first : everywhere).truncated.push_back(table);
            }
            if (!on_first.truncated.empty()) {
                on_first.table = on_first.truncated.front();
                share(0).changes.push_back(std::move(on_first));
            }
            if (!everywhere.truncated.empty()) {
                everywhere.table = everywhere.truncated.front();
                for (std::uint32_t k = 0; k < shards; ++k) {
                    share(k).changes.push_back(everywhere);
                }
            }
            continue;
        }
        const std::uint32_t k = shard_of(change, routing);
        share(k).changes.push_back(std::move(change));
    }
    return shares;
}

}  // namespace pgbridge::transport
