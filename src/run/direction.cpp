#include <algorithm>
#include <mutex>
#include <optional>

#include <fmt/format.h>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/config/side_connection.hpp>
#include <pgbridge/core/error_policy.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/core/reconnect_loop.hpp>
#include <pgbridge/run/direction.hpp>
#include <pgbridge/transport/shard_router.hpp>

namespace pgbridge::run {
namespace {

constexpr const char* kApplicationName = "pgbridge run";

transport::PublisherOptions publisher_options(
    const Config& config, const std::string& source, const std::string& target,
    transport::BatchKind kind = transport::BatchKind::Live) {
    transport::PublisherOptions o;
    o.kind = kind;
    // The broker at the source's site (docs/topologies.md, "Two sites").
    o.connect =
        transport::AmqpConnectOptions::from(config.broker_of(source), config.engine.timeout_ms);
    o.connect.connection_name = "pgbridge run: publish " + source + " to " + target;
    o.topology = transport::Topology::of(config);
    o.source_side = source;
    o.target_side = target;
    o.batch_size = static_cast<std::size_t>(config.engine.batch_size);
    o.max_message_bytes = config.rabbitmq.max_message_bytes;
    o.chunk_bytes = std::min<std::size_t>(1024 * 1024, config.rabbitmq.max_message_bytes / 2);
    o.signing_keys = config.rabbitmq.signing_keys;
    // A table's priority, found by the name the source gives it.
    std::map<QualifiedName, int> priorities;
    for (const auto& t : config.tables) {
        priorities[t.name_on(source)] = t.priority;
    }
    o.priority_of = [priorities](const TableInfo& table) {
        const auto it = priorities.find(QualifiedName{table.schema, table.name});
        return it != priorities.end() ? it->second : 0;
    };
    o.atomic_of = transport::ShardRouting::of(config, source).atomic;
    return o;
}

// [[tables]] exclude_columns as `side` names tables and columns.
std::map<QualifiedName, std::set<std::string>> excluded_columns(const Config& config,
                                                                const std::string& side) {
    std::map<QualifiedName, std::set<std::string>> out;
    for (const auto& table : config.tables) {
        for (const auto& canonical : table.excluded_columns) {
            out[table.name_on(side)].insert(table.column_on(side, canonical));
        }
    }
    return out;
}

source::InitialCopyOptions copy_options(const Config& config, const std::string& source) {
    source::InitialCopyOptions o;
    o.bridge = config.bridge_name;
    o.side = source;
    o.connect = side_connect_options(config.side(source), config.engine.timeout_ms,
                                     "pgbridge run: initial copy");
    o.tables = config.tables;
    o.rows_per_transaction = static_cast<std::size_t>(config.engine.batch_size);
    o.excluded_columns = excluded_columns(config, source);
    return o;
}

// What `source` has sent: heard by its capture, asked of its server when a message is beyond
// that (one from before a restart).
std::shared_ptr<SourceHorizon> source_horizon(const Config& config, const std::string& source) {
    const pg::ConnectOptions connect = side_connect_options(
        config.side(source), config.engine.timeout_ms, "pgbridge run: source horizon");
    // One session kept for it: without a capture in this process (an apply-only worker), every
    // batch is beyond what was heard, and asks. Shards ask from their own threads.
    struct Session {
        std::mutex mutex;
        std::optional<pg::Connection> conn;
    };
    auto session = std::make_shared<Session>();
    return std::make_shared<SourceHorizon>(source, [connect, source, session] {
        const std::lock_guard lock(session->mutex);
        if (!session->conn) {
            session->conn.emplace(pg::Connection::open(connect));
        }
        try {
            const auto r = session->conn->exec(
                "SELECT pg_current_wal_lsn()::text,"
                " (extract(epoch FROM clock_timestamp()) * 1000000)::int8::text");
            const auto wal_end = Lsn::parse(r.value(0, 0));
            if (!wal_end) {
                throw Error(ErrorKind::Database, "the server returned an unreadable WAL position")
                    .with("side", source);
            }
            return SourceHorizon::Reading{*wal_end, std::stoll(std::string(r.value(0, 1)))};
        } catch (...) {
            session->conn.reset();  // opened again by the next ask
            throw;
        }
    });
}

source::CaptureOptions capture_options(const Config& config, const std::string& source,
                                       std::shared_ptr<VersionsWatermark> versions,
                                       std::shared_ptr<SourceHorizon> horizon) {
    source::CaptureOptions o;
    o.side = source;
    o.horizon = std::move(horizon);
    o.connect =
        side_connect_options(config.side(source), config.engine.timeout_ms, kApplicationName);
    o.slot = names::slot(config.bridge_name, source);
    o.publication = names::publication(config.bridge_name);
    o.excluded_columns = excluded_columns(config, source);
    o.versions = source::VersionKeeperOptions{
        config.bridge_name,
        source,
        side_connect_options(config.side(source), config.engine.timeout_ms,
                             "pgbridge run: column versions"),
        std::move(versions),
        {}};
    if (config.history.enabled()) {
        for (const auto& table : config.tables) {
            if (table.history) {
                o.versions->history_tables.insert(table.name_on(source));
            }
        }
    }
    o.journal = std::make_shared<source::PostgresSlotJournal>(
        side_connect_options(config.side(source), config.engine.timeout_ms,
                             "pgbridge run: slot journal"),
        config.bridge_name, o.slot);
    o.settle_timeout = std::chrono::milliseconds(config.engine.timeout_ms / 2);
    // Each apply shard's message holds about what one message holds unsharded.
    o.longest_hold *= config.engine.apply_workers;
    // Large transactions: sent by the server once committed, handed on in pieces.
    o.streaming = false;
    o.piece_bytes = 2 * 1024 * 1024;
    return o;
}

apply::ApplierOptions applier_options(const Config& config, const std::string& source,
                                      const std::string& target, std::uint32_t shard,
                                      const DirectionParts& parts, apply::ApplyObserver* observer,
                                      std::shared_ptr<VersionsWatermark> target_versions) {
    apply::ApplierOptions o;
    o.request_announcement = parts.target_capture_elsewhere;
    o.history = config.history.enabled();
    o.shard = shard;
    o.shards = static_cast<std::uint32_t>(config.engine.apply_workers);
    o.observer = observer;
    o.local_versions = std::move(target_versions);
    o.local_versions_wait = std::chrono::milliseconds(config.engine.timeout_ms);
    o.bridge = config.bridge_name;
    o.source_side = source;
    o.target_side = target;
    o.target =
        side_connect_options(config.side(target), config.engine.timeout_ms, kApplicationName);
    // Only to ask whether a column the target lacks still exists on the source.
    o.source =
        side_connect_options(config.side(source), config.engine.timeout_ms, kApplicationName);
    o.tables = config.tables;
    return o;
}

transport::ConsumerOptions consumer_options(const Config& config, const std::string& target,
                                            std::uint32_t shard,
                                            std::shared_ptr<SourceHorizon> source_horizon) {
    transport::ConsumerOptions o;
    o.source_horizon = std::move(source_horizon);
    // The broker at the target's site, where its queues are.
    o.connect =
        transport::AmqpConnectOptions::from(config.broker_of(target), config.engine.timeout_ms);
    o.topology = transport::Topology::of(config);
    o.connect.connection_name =
        "pgbridge run: apply to " + target +
        (o.topology.shards > 1 ? fmt::format(" (shard {} of {})", shard + 1, o.topology.shards)
                               : std::string());
    o.target_side = target;
    o.shard = shard;
    o.max_retries = config.engine.max_retries;
    o.retry_delay_ms = config.engine.retry_delay_ms;
    o.max_message_bytes = config.rabbitmq.max_message_bytes;
    // Decoded, a group takes several times its bytes: a few parts of a large transaction
    // at most, however large max_message_bytes is.
    o.max_group_bytes = std::min<std::size_t>(2 * 1024 * 1024, config.rabbitmq.max_message_bytes);
    // Shards share the process's memory bound (SPEC 10): each holds its share of it. A message
    // over the group's bytes is still applied, alone.
    const auto shards = static_cast<std::size_t>(config.engine.apply_workers);
    o.max_group_bytes = std::max<std::size_t>(256 * 1024, o.max_group_bytes / shards);
    o.prefetch = static_cast<std::uint16_t>(std::max<std::size_t>(8, o.prefetch / shards));
    o.signing_keys = config.rabbitmq.signing_keys;
    return o;
}

}  // namespace

DirectionParts DirectionParts::daemon(const Config& config) {
    DirectionParts parts;
    for (int shard = 1; shard <= config.engine.apply_workers; ++shard) {
        if (!config.engine.applied_remotely(shard)) {
            parts.apply_shards.push_back(static_cast<std::uint32_t>(shard - 1));
        }
    }
    return parts;
}

DirectionParts DirectionParts::apply_only(std::uint32_t shard) {
    DirectionParts parts;
    parts.capture = false;
    parts.apply_shards = {shard};
    parts.target_capture_elsewhere = true;
    return parts;
}

// SOURCE's capture and initial copy, with their publishers.
struct Direction::CapturePart {
    CapturePart(const Config& config, const std::string& source, const std::string& target,
                std::shared_ptr<VersionsWatermark> source_versions,
                std::shared_ptr<SourceHorizon> horizon)
        : publisher(publisher_options(config, source, target)),
          capture(capture_options(config, source, std::move(source_versions), std::move(horizon)),
                  publisher),
          backfill_publisher(
              publisher_options(config, source, target, transport::BatchKind::Backfill)),
          initial_copy(copy_options(config, source), backfill_publisher) {}

    transport::Publisher publisher;
    source::Capture capture;
    transport::Publisher backfill_publisher;
    source::InitialCopy initial_copy;
};

// One shard's applier, its dead-letter log and the consumer of its queues.
struct Direction::ApplyShard {
    ApplyShard(const Config& config, const std::string& source, const std::string& target,
               std::uint32_t shard, const DirectionParts& parts, apply::ApplyObserver* observer,
               std::shared_ptr<VersionsWatermark> target_versions,
               std::shared_ptr<SourceHorizon> horizon)
        : applier(applier_options(config, source, target, shard, parts, observer,
                                  std::move(target_versions)),
                  ConflictRules(config)),
          dead_letters(side_connect_options(config.side(target), config.engine.timeout_ms,
                                            kApplicationName)),
          consumer(consumer_options(config, target, shard, std::move(horizon)), applier,
                   dead_letters) {}

    apply::PostgresApplier applier;
    apply::DeadLetterWriter dead_letters;
    transport::Consumer consumer;
    std::thread thread;
};

Direction::Direction(const Config& config, const std::string& source, const std::string& target,
                     const DirectionParts& parts, apply::ApplyObserver* observer,
                     std::shared_ptr<VersionsWatermark> source_versions,
                     std::shared_ptr<VersionsWatermark> target_versions)
    : source_(source), target_(target), horizon_(source_horizon(config, source)) {
    if (parts.capture) {
        capture_ = std::make_unique<CapturePart>(config, source, target, std::move(source_versions),
                                                 horizon_);
    }
    for (const std::uint32_t shard : parts.apply_shards) {
        shards_.push_back(std::make_unique<ApplyShard>(config, source, target, shard, parts,
                                                       observer, target_versions, horizon_));
    }
}

Direction::~Direction() {
    stop();
}

void Direction::record_failure(const std::string& part, const std::exception& e) {
    log::error(part, "stopped", {{"source", source_}, {"target", target_}, {"error", e.what()}});
    std::lock_guard lock(mutex_);
    if (!failure_) {
        failure_ = part + " " + source_ + " -> " + target_ + ": " + e.what();
    }
}

void Direction::start() {
    for (auto& shard : shards_) {
        shard->thread = std::thread([this, &shard = *shard] {
            try {
                shard.consumer.run();
            } catch (const std::exception& e) {
                record_failure("consumer", e);
            }
        });
    }
    if (!capture_) {
        return;
    }
    capture_thread_ = std::thread([this] {
        try {
            capture_->capture.run();
        } catch (const std::exception& e) {
            record_failure("capture", e);
        }
    });
    copy_thread_ = std::jthread([this](std::stop_token stop) {
        // Retried until it succeeds: a side or the broker away only delays it.
        const ReconnectOptions retry{.area = "copy",
                                     .what = "initial copy interrupted; trying again",
                                     .min = std::chrono::milliseconds(500),
                                     .max = std::chrono::milliseconds(10000),
                                     .reconnects = nullptr};
        run_reconnecting(
            stop, retry,
            [this](std::stop_token session_stop) {
                capture_->initial_copy.run(session_stop);
                copy_done_ = !session_stop.stop_requested();
            },
            [this](std::exception_ptr failure) {
                capture_->backfill_publisher.rewind(Lsn());
                return Interruption{as_error(failure).what(), false, {{"source", source_}}};
            });
    });
}

void Direction::reload(const ConflictRules& rules) {
    for (auto& shard : shards_) {
        shard->applier.set_rules(rules);
        shard->applier.reload_catalog();
    }
}

void Direction::request_stop() {
    copy_thread_.request_stop();
    if (capture_) {
        capture_->capture.stop();
    }
    for (auto& shard : shards_) {
        shard->consumer.stop();
    }
}

void Direction::stop() {
    request_stop();
    if (copy_thread_.joinable()) {
        copy_thread_.join();
    }
    if (capture_thread_.joinable()) {
        capture_thread_.join();
    }
    for (auto& shard : shards_) {
        if (shard->thread.joinable()) {
            shard->thread.join();
        }
    }
}

DirectionCounters Direction::counters() const {
    DirectionCounters c;
    c.consuming = true;
    // What is not run here counts as running.
    c.streaming = true;
    c.copy_done = true;
    if (capture_) {
        c.captured_changes = capture_->capture.stats().changes;
        c.published_messages = capture_->publisher.stats().messages_confirmed;
        c.streaming = capture_->capture.stats().streaming;
        c.copy_done = copy_done_;
        c.copy_rows = capture_->initial_copy.progress().rows_copied;
        c.copy_rows_estimated = capture_->initial_copy.progress().rows_estimated;
    }
    for (const auto& shard : shards_) {
        const apply::ApplierStats& a = shard->applier.stats();
        const transport::ConsumerStats& consumer = shard->consumer.stats();
        c.applied_changes += a.inserted + a.updated + a.deleted;
        c.conflicts += a.conflicts;
        c.dead_lettered += consumer.dead_lettered;
        c.retries += consumer.retries;
        c.schema_waits += a.schema_waits;
        c.local_version_waits += a.local_version_waits;
        // Consuming only while every shard is.
        c.consuming = c.consuming && consumer.consuming;
    }
    return c;
}

std::optional<std::string> Direction::failure() const {
    std::lock_guard lock(mutex_);
    return failure_;
}

}  // namespace pgbridge::run
