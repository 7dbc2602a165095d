#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgbridge::names {

// The names of a bridge's objects (docs/setup.md), which DBAs, their scripts and sql/ rely
// on. Every module asks here instead of formatting its own, so a rename happens in one place.

inline constexpr std::string_view kMetadataSchema = "pgbridge";
// The version of the metadata schema this build reads and writes (sql/01_metadata_schema.sql):
// run refuses an older one until setup has upgraded it.
inline constexpr int kMetadataSchemaVersion = 7;
// PostgreSQL truncates identifiers beyond NAMEDATALEN - 1 bytes; slot and origin names must fit.
inline constexpr std::size_t kMaxIdentifierLength = 63;

inline std::string publication(std::string_view bridge) {
    return "pgbridge_" + std::string(bridge);
}
inline std::string slot(std::string_view bridge, std::string_view side) {
    return "pgbridge_" + std::string(bridge) + "_" + std::string(side);
}
// The origin on the target side for changes that come from source_side.
inline std::string origin(std::string_view bridge, std::string_view source_side) {
    return "pgbridge_" + std::string(bridge) + "_from_" + std::string(source_side);
}
// True for the replication origins pgbridge applies under (origin(), repair_origin()):
// capture drops their transactions (no echo).
inline bool is_pgbridge_origin(std::string_view origin_name) {
    return origin_name.starts_with("pgbridge_");
}
// The prefix of the logical message by which an apply-only worker asks a side's capture to
// write how far that side's local writes are recorded (content: the bridge name).
inline constexpr std::string_view kVersionsWantedPrefix = "pgbridge.versions_wanted";

// The origin of `pgbridge repair`'s writes on either side: a second origin, because the
// applier's origin session is held by `pgbridge run` while repair writes (PostgreSQL 15 lets
// one session at a time use an origin), and a pgbridge origin, so that capture drops them.
inline std::string repair_origin(std::string_view bridge) {
    return "pgbridge_" + std::string(bridge) + "_repair";
}
inline std::string exchange(std::string_view bridge) {
    return "pgbridge." + std::string(bridge);
}
inline std::string queue(std::string_view bridge, std::string_view target_side) {
    return "pgbridge." + std::string(bridge) + ".to." + std::string(target_side);
}
// With quorum queues (no x-max-priority on RabbitMQ 3.x), one queue per priority band: the
// band of priorities `lower_bound` and up (below the next band). The lowest band, where
// backfill travels, is queue() itself.
inline std::string band_queue(std::string_view bridge, std::string_view target_side,
                              int lower_bound) {
    return queue(bridge, target_side) + ".p" + std::to_string(lower_bound);
}
// [engine] apply_workers = N > 1: each direction has N shards, numbered 1..N in names (0-based
// `shard` here), each with its own change queue (and bands), retry queue and origin
// (docs/topologies.md, "Sharded apply"). With one shard the names are the unsharded ones.
inline std::string shard_suffix(std::uint32_t shard, std::uint32_t shards) {
    return shards > 1 ? ".s" + std::to_string(shard + 1) : std::string();
}
inline std::string shard_queue(std::string_view bridge, std::string_view target_side,
                               std::uint32_t shard, std::uint32_t shards) {
    return queue(bridge, target_side) + shard_suffix(shard, shards);
}
inline std::string shard_retry_queue(std::string_view bridge, std::string_view target_side,
                                     std::uint32_t shard, std::uint32_t shards) {
    return shard_queue(bridge, target_side, shard, shards) + ".retry";
}
inline std::string shard_origin(std::string_view bridge, std::string_view source_side,
                                std::uint32_t shard, std::uint32_t shards) {
    return origin(bridge, source_side) +
           (shards > 1 ? "_s" + std::to_string(shard + 1) : std::string());
}
inline std::string dead_letter_queue(std::string_view bridge, std::string_view target_side) {
    return queue(bridge, target_side) + ".dead";
}
// Internal, not promised to DBAs: where dead letters are routed, and where a message waits
// engine.retry_delay_ms before it goes back to its queue for another attempt.
inline std::string dead_letter_exchange(std::string_view bridge) {
    return exchange(bridge) + ".dead";
}
inline std::string retry_queue(std::string_view bridge, std::string_view target_side) {
    return queue(bridge, target_side) + ".retry";
}

}  // namespace pgbridge::names
