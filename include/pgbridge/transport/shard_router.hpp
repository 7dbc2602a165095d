#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <pgbridge/config/config.hpp>
#include <pgbridge/core/change_event.hpp>

namespace pgbridge::transport {

// Which apply shard of a direction each change goes to ([engine] apply_workers;
// docs/topologies.md, "Sharded apply"). Every change of a key goes to the same shard, so each
// shard applies a key's changes in source order.
struct ShardRouting {
    std::uint32_t shards = 1;
    // Tables whose changes all go to the first shard ([[tables]] atomic_transactions): a
    // transaction's changes to them are applied together, in one target transaction.
    std::function<bool(const TableInfo&)> atomic;

    // The routing of the changes `source_side` captures, as the file sets it.
    static ShardRouting of(const Config& config, const std::string& source_side);
};

// The shard (0-based) of a row change: by key_shard() of its primary key values (the new row,
// or the old one for a delete).
std::uint32_t shard_of(const ChangeEvent& change, const ShardRouting& routing);

// A transaction's share for each shard: its changes for that shard, in source order, with the
// transaction's positions and times. A truncate goes to every shard (each removes its own rows
// of the table), but of an atomic table only to the first (it holds all of its rows); a
// transaction without changes goes to every shard (a verify fence: each shard's progress must
// pass it). A shard the transaction has nothing for gets nullopt.
std::vector<std::optional<SourceTransaction>> split_by_shard(SourceTransaction transaction,
                                                             const ShardRouting& routing);

}  // namespace pgbridge::transport
