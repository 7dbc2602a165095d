#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <pgbridge/apply/dead_letter_writer.hpp>
#include <pgbridge/apply/postgres_applier.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/config/conflict_rules.hpp>
#include <pgbridge/metrics/bridge_metrics.hpp>
#include <pgbridge/source/capture.hpp>
#include <pgbridge/source/initial_copy.hpp>
#include <pgbridge/transport/consumer.hpp>
#include <pgbridge/transport/publisher.hpp>

namespace pgbridge::run {

using metrics::DirectionCounters;

// What of a direction one process runs.
struct DirectionParts {
    // SOURCE's capture, its publisher and initial copy (pgbridge run).
    bool capture = true;
    // The apply shards run here, 0-based; an apply-only worker runs one.
    std::vector<std::uint32_t> apply_shards;
    // TARGET's capture runs in another process: the appliers ask it for news of the
    // target's local writes (ApplierOptions::request_announcement).
    bool target_capture_elsewhere = false;

    // pgbridge run: the capture and every shard not applied by an apply-only worker.
    static DirectionParts daemon(const Config& config);
    // pgbridge run --apply-only --shard I/N: shard `shard` (0-based), nothing else.
    static DirectionParts apply_only(std::uint32_t shard);
};

// One direction of the bridge, SOURCE → TARGET: the capture of SOURCE's slot publishing to
// RabbitMQ on one thread, and the consumer of pgbridge.NAME.to.TARGET applying on TARGET on
// another (one consumer and applier per shard with [engine] apply_workers > 1). Each part retries
// what is worth retrying on its own (a server or the broker away); what is not (a slot that does
// not exist, say) ends its thread and is reported by failure().
class Direction {
  public:
    // observer (may be null) hears of every batch applied on TARGET. source_versions and
    // target_versions: how far each side's capture has recorded its local writes (the
    // capture here moves SOURCE's; the applier reads TARGET's, moved by the other direction,
    // or read from TARGET by a RecordedVersionsPoller when that runs elsewhere).
    Direction(const Config& config, const std::string& source, const std::string& target,
              const DirectionParts& parts, apply::ApplyObserver* observer,
              std::shared_ptr<VersionsWatermark> source_versions,
              std::shared_ptr<VersionsWatermark> target_versions);
    ~Direction();
    Direction(const Direction&) = delete;
    Direction& operator=(const Direction&) = delete;

    void start();
    // Asks both parts to stop, without waiting: the capture waits up to its settle timeout for
    // the broker to confirm what it published and confirms the slot that far; the consumer
    // finishes the message in hand or leaves it unacknowledged, to come again. Nothing is lost
    // either way.
    void request_stop();
    // request_stop(), then waits for both threads.
    void stop();

    // SIGHUP: the new conflict rules, and the target's tables described again (a column added
    // or dropped by hand is seen at once).
    void reload(const ConflictRules& rules);

    const std::string& source() const { return source_; }
    const std::string& target() const { return target_; }
    DirectionCounters counters() const;
    std::optional<std::string> failure() const;

  private:
    void record_failure(const std::string& part, const std::exception& e);

    std::string source_;
    std::string target_;
    // What SOURCE has sent, as its capture hears it: the consumer checks messages against it.
    std::shared_ptr<SourceHorizon> horizon_;
    // SOURCE's capture and the initial copy of tables never copied, at the lowest priority,
    // beside the live stream; none in an apply-only worker.
    struct CapturePart;
    std::unique_ptr<CapturePart> capture_;
    std::jthread copy_thread_;
    // The apply of the direction: one shard, or [engine] apply_workers of them.
    struct ApplyShard;
    std::vector<std::unique_ptr<ApplyShard>> shards_;
    std::thread capture_thread_;
    mutable std::mutex mutex_;
    std::optional<std::string> failure_;
    std::atomic<bool> copy_done_{false};
};

}  // namespace pgbridge::run
