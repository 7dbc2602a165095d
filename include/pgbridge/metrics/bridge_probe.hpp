#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pgbridge/config/config.hpp>
#include <pgbridge/core/lsn.hpp>

namespace pgbridge::metrics {

// A copy not recorded for this long is not running (pgbridge run records every 2 s).
inline constexpr double kCopyStalledSeconds = 30;

// The initial copy of one table from a side, as pgbridge run last recorded it
// (pgbridge.copy_progress).
struct CopyInProgress {
    std::string table;  // as the side names it
    std::uint64_t rows_copied = 0;
    std::uint64_t rows_estimated = 0;  // the planner's estimate when the copy began
    double seconds_running = 0;        // from its start to its last record
    double seconds_since_update = 0;   // from its last record to the probe

    // 0 until it has run a second.
    double rows_per_second() const {
        return seconds_running >= 1 ? static_cast<double>(rows_copied) / seconds_running : 0;
    }
    // At that rate, to the estimate; none without a rate or once past the estimate.
    std::optional<double> seconds_left() const {
        const double rate = rows_per_second();
        if (rate <= 0 || rows_estimated <= rows_copied) {
            return std::nullopt;
        }
        return static_cast<double>(rows_estimated - rows_copied) / rate;
    }
    bool stalled() const { return seconds_since_update > kCopyStalledSeconds; }
};

// "public.notes: 12,000 of about 300,000 rows (4%), 5,000 rows/s, about 58 s left", or the
// same ending "no progress for 2 min: is pgbridge run running?" when it stalled.
std::string describe_copy(const CopyInProgress& copy);

// What one side's server says about the bridge, read in one short session.
struct SideProbe {
    std::string side;
    bool reachable = false;
    std::string error;  // when not reachable
    bool slot_exists = false;
    bool slot_active = false;
    std::string wal_status;
    std::optional<std::uint64_t> slot_lag_bytes;  // WAL end minus the slot's confirmed position
    // WAL that can still be written before the slot passes max_slot_wal_keep_size and may lose
    // what it needs (pg_replication_slots.safe_wal_size); none when that setting is -1.
    std::optional<std::int64_t> safe_wal_size_bytes;
    // Ahead of what pgbridge reported (created again or moved by hand), not yet seen by run.
    bool slot_moved = false;
    // The slot was created again or moved, and no repair of every table has run since.
    bool repair_pending = false;
    // Synced tables whose initial copy from this side has not finished.
    std::uint64_t tables_not_copied = 0;
    // The copies of those tables that have begun, by table name.
    std::vector<CopyInProgress> copies;
    std::uint64_t pending_conflicts = 0;
    std::uint64_t new_dead_letters = 0;
    // [history]: the bytes of pgbridge.history's partitions here, and the rollbacks run on this
    // side (pgbridge.rollbacks); none where the schema is older.
    std::optional<std::uint64_t> history_bytes;
    std::optional<std::uint64_t> rollback_runs;
    // The apply of the other side's changes into this side (pgbridge.apply_progress); with
    // apply shards, the shard furthest behind.
    std::optional<Lsn> applied_end_lsn;
    std::optional<UnixMicros> applied_commit_time;
    // Per apply shard (index 0..apply_workers-1): the source commit time it applied last.
    std::vector<std::optional<UnixMicros>> shard_commit_times;
    // What that apply waits for on this side (a column it lacks), and since when.
    std::optional<std::string> apply_waiting_for;
    std::string apply_waiting_since;
};

struct QueueDepth {
    std::optional<std::uint32_t> ready;  // messages waiting (queue.declare passive)
    // Per apply shard: messages waiting in its queues and its retry queue.
    std::vector<std::uint32_t> shard_waiting;
    std::optional<std::uint32_t> retrying;
    std::optional<std::uint32_t> dead;
    std::uint32_t consumers = 0;
    // Per apply shard: the consumers of its lowest band (nullopt: not inspected).
    std::vector<std::optional<std::uint32_t>> shard_consumers;
};

struct BrokerProbe {
    bool reachable = false;
    std::string error;
    std::vector<std::pair<std::string, QueueDepth>> queues;  // by target side
};

struct BridgeProbe {
    std::vector<SideProbe> sides;  // in config order
    BrokerProbe broker;
    UnixMicros taken_at = 0;

    const SideProbe& side(const std::string& name) const;
    const QueueDepth* queue_to(const std::string& target) const;
};

// Reads both sides and the broker, each within engine.timeout_ms; what cannot be reached is
// marked so, never thrown.
BridgeProbe probe_bridge(const Config& config);

// One direction SOURCE -> TARGET as `pgbridge lag` shows it.
struct DirectionLag {
    std::string source;
    std::string target;
    std::optional<std::uint64_t> wal_bytes;  // on the source, not yet confirmed by capture
    std::optional<std::uint32_t> queued;     // ready in the target's queue and its retry queue
    std::optional<std::uint32_t> dead;       // in the target's dead-letter queue
    // Now minus the source commit time of the newest change applied on the target, while
    // changes are waiting; 0 when nothing waits (caught up).
    std::optional<double> seconds_behind;
    std::optional<std::uint64_t> pending_conflicts;  // on the target
    std::optional<std::uint64_t> new_dead_letters;   // pgbridge.dead_letters on the target
};

// Pure: the lag of each direction from a probe. Nothing waits when the queue is empty and the
// slot holds less than `idle_wal_bytes` (the WAL that other databases and keepalives write
// between two status updates).
std::vector<DirectionLag> lag_of(const Config& config, const BridgeProbe& probe,
                                 std::uint64_t idle_wal_bytes = 64 * 1024);

enum class Health { Healthy = 0, Degraded = 1, Down = 2 };
std::string_view to_string(Health health) noexcept;

struct HealthReport {
    Health health = Health::Healthy;
    std::vector<std::string> problems;  // why it is not healthy, in words
};

// Pure: the verdict of `pgbridge status`: down when a side or the broker cannot be reached;
// degraded when a slot is missing, inactive or losing WAL, a direction is behind its
// thresholds ([status]), or dead letters or pending conflicts wait for the DBA.
HealthReport assess(const Config& config, const BridgeProbe& probe,
                    const std::vector<DirectionLag>& lag);

}  // namespace pgbridge::metrics
