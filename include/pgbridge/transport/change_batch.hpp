#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pgbridge/core/change_event.hpp>

namespace pgbridge::transport {

enum class BatchKind {
    Live,      // captured from a slot
    Backfill,  // initial sync or a table added later: lowest priority
};

// One part of a source transaction too large for one message (docs/message-format.md,
// "Large transactions"). The parts of a transaction share its xid, commit LSN and commit
// time; the last one also carries its end LSN and how many parts there are. The target
// applies the transaction once it holds every part, all of it in one target transaction.
struct ChunkInfo {
    std::uint32_t index = 0;         // 0, 1, ...
    std::uint32_t first_change = 0;  // place in the transaction of the part's first change
    bool last = false;
    std::uint32_t count = 0;  // parts of the transaction; on the last one

    bool operator==(const ChunkInfo&) const = default;
};

// The apply shard a message was routed to ([engine] apply_workers > 1): its changes are that
// shard's share of their transactions (docs/topologies.md, "Sharded apply").
struct ShardInfo {
    std::uint32_t index = 0;  // 0-based; shard index + 1 in queue and origin names
    std::uint32_t count = 1;

    bool operator==(const ShardInfo&) const = default;
};

// What one RabbitMQ message carries: consecutive whole transactions of one source side, or
// one part of one transaction (`chunk`).
struct ChangeBatch {
    std::string bridge;
    std::string source_side;
    BatchKind kind = BatchKind::Live;
    std::vector<SourceTransaction> transactions;
    std::optional<ChunkInfo> chunk;
    std::optional<ShardInfo> shard;  // sharded directions only

    Lsn first_commit_lsn() const;
    Lsn last_end_lsn() const;
    UnixMicros last_commit_time() const;
    std::size_t change_count() const;
    // Schema-qualified names of every table a change touches, in first-seen order.
    std::vector<std::string> table_names() const;
};

std::string_view to_string(BatchKind kind) noexcept;

}  // namespace pgbridge::transport
