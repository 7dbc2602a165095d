#include <map>
#include <memory>

#include <fmt/format.h>

#include <pgbridge/apply/conflict_log.hpp>
#include <pgbridge/config/object_names.hpp>
#include <pgbridge/config/side_connection.hpp>
#include <pgbridge/core/byte_size.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/metrics/bridge_probe.hpp>
#include <pgbridge/pg/connection.hpp>
#include <pgbridge/source/slot_identity.hpp>
#include <pgbridge/transport/amqp_connection.hpp>
#include <pgbridge/transport/topology.hpp>

namespace pgbridge::metrics {
namespace {

std::string duration(double seconds) {
    if (seconds < 90) {
        return fmt::format("{:.0f} s", seconds);
    }
    if (seconds < 90 * 60) {
        return fmt::format("{:.0f} min", seconds / 60);
    }
    return fmt::format("{:.1f} h", seconds / 3600);
}

SideProbe probe_side(const Config& config, const SideConfig& side) {
    SideProbe p;
    p.side = side.name;
    try {
        auto conn = pg::Connection::open(
            side_connect_options(side, config.engine.timeout_ms, "pgbridge status"));
        conn.exec(fmt::format("SET statement_timeout = {}", config.engine.timeout_ms));
        p.reachable = true;
        const auto slot = conn.exec(
            "SELECT active, wal_status, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn),"
            "       safe_wal_size"
            "  FROM pg_replication_slots WHERE slot_name = $1",
            {names::slot(config.bridge_name, side.name)});
        if (slot.rows() == 1) {
            p.slot_exists = true;
            p.slot_active = slot.value(0, 0) == "t";
            p.wal_status = std::string(slot.value(0, 1));
            if (!slot.is_null(0, 2)) {
                p.slot_lag_bytes = static_cast<std::uint64_t>(
                    std::max(0.0, std::stod(std::string(slot.value(0, 2)))));
            }
            if (!slot.is_null(0, 3)) {
                p.safe_wal_size_bytes = std::stoll(std::string(slot.value(0, 3)));
            }
        }
        const auto identity = source::read_slot_identity(
            conn, config.bridge_name, names::slot(config.bridge_name, side.name));
        p.slot_moved = identity.moved_outside();
        p.repair_pending = identity.repair_pending;
        std::uint64_t copied = 0;
        const auto copies = conn.exec(
            "SELECT table_name FROM pgbridge.sync_state WHERE bridge = $1", {config.bridge_name});
        for (const auto& table : config.tables) {
            for (int r = 0; r < copies.rows(); ++r) {
                if (copies.value(r, 0) == table.name_on(side.name).display()) {
                    ++copied;
                    break;
                }
            }
        }
        p.tables_not_copied = config.tables.size() - copied;
        // A schema older than version 5 has no copy_progress: nothing to show, no error.
        if (conn.exec("SELECT to_regclass('pgbridge.copy_progress') IS NOT NULL").value(0, 0) ==
            "t") {
            const auto running = conn.exec(
                "SELECT table_name, rows_copied, rows_estimated,"
                "       extract(epoch FROM updated_at - started_at)::float8,"
                "       extract(epoch FROM now() - updated_at)::float8"
                "  FROM pgbridge.copy_progress WHERE bridge = $1 ORDER BY table_name",
                {config.bridge_name});
            for (int r = 0; r < running.rows(); ++r) {
                p.copies.push_back(CopyInProgress{std::string(running.value(r, 0)),
                                                  std::stoull(std::string(running.value(r, 1))),
                                                  std::stoull(std::string(running.value(r, 2))),
                                                  std::stod(std::string(running.value(r, 3))),
                                                  std::stod(std::string(running.value(r, 4)))});
            }
        }
        p.pending_conflicts = apply::count_pending_conflicts(conn);
        const auto letters =
            conn.exec("SELECT count(*) FROM pgbridge.dead_letters WHERE status = 'new'");
        p.new_dead_letters = std::stoull(std::string(letters.value(0, 0)));
        const auto history = conn.exec(
            "SELECT (SELECT sum(pg_catalog.pg_total_relation_size(inhrelid))::int8 FROM"
            "        pg_catalog.pg_inherits WHERE inhparent = to_regclass('pgbridge.history')),"
            "       to_regclass('pgbridge.rollbacks') IS NOT NULL");
        if (history.value(0, 1) == "t") {
            p.history_bytes =
                history.is_null(0, 0) ? 0 : std::stoull(std::string(history.value(0, 0)));
            p.rollback_runs = std::stoull(
                std::string(conn.exec("SELECT count(*) FROM pgbridge.rollbacks WHERE bridge = $1",
                                      {config.bridge_name})
                                .value(0, 0)));
        }
        // Every apply shard's row; the first, the one waiting or furthest behind (oldest
        // source commit applied), speaks for the direction.
        const auto progress = conn.exec(
            "SELECT last_end_lsn::text,"
            "       (extract(epoch FROM last_commit_time) * 1000000)::int8,"
            // Through jsonb: a metadata schema older than these columns still reads.
            "       to_jsonb(p) ->> 'waiting_for', to_jsonb(p) ->> 'waiting_since',"
            "       coalesce((to_jsonb(p) ->> 'shard')::int, 1)"
            "  FROM pgbridge.apply_progress p WHERE bridge = $1 AND source_side = $2"
            "   AND coalesce((to_jsonb(p) ->> 'shard')::int, 1) <= $3::int"
            " ORDER BY (to_jsonb(p) ->> 'waiting_for') IS NULL, last_commit_time NULLS FIRST",
            {config.bridge_name, config.other_side(side.name).name,
             std::to_string(config.engine.apply_workers)});
        p.shard_commit_times.resize(static_cast<std::size_t>(config.engine.apply_workers));
        for (int row = 0; row < progress.rows(); ++row) {
            const auto shard =
                static_cast<std::size_t>(std::stoi(std::string(progress.value(row, 4))));
            if (shard >= 1 && shard <= p.shard_commit_times.size() && !progress.is_null(row, 1)) {
                p.shard_commit_times[shard - 1] = std::stoll(std::string(progress.value(row, 1)));
            }
        }
        if (progress.rows() >= 1) {
            p.applied_end_lsn = Lsn::parse(progress.value(0, 0));
            if (!progress.is_null(0, 1)) {
                p.applied_commit_time = std::stoll(std::string(progress.value(0, 1)));
            }
            if (!progress.is_null(0, 2)) {
                p.apply_waiting_for = std::string(progress.value(0, 2));
                p.apply_waiting_since = std::string(progress.value(0, 3));
            }
        }
    } catch (const Error& e) {
        // Unreachable, or reachable but not set up (no schema pgbridge, say).
        p.error = e.what();
    }
    return p;
}

BrokerProbe probe_broker(const Config& config) {
    BrokerProbe b;
    try {
        // One connection per broker (RabbitConfig::identity): one, or one per site
        // (docs/topologies.md, "Two sites").
        std::map<std::string, std::unique_ptr<transport::AmqpConnection>> connections;
        const auto connection = [&](const std::string& side) -> transport::AmqpConnection& {
            const RabbitConfig broker = config.broker_of(side);
            auto& conn = connections[broker.identity()];
            if (!conn) {
                auto options =
                    transport::AmqpConnectOptions::from(broker, config.engine.timeout_ms);
                options.connection_name = "pgbridge status";
                conn = std::make_unique<transport::AmqpConnection>(options);
            }
            return *conn;
        };
        const auto topology = transport::Topology::of(config);
        for (const auto& side : config.sides) {
            transport::AmqpConnection& conn = connection(side.name);
            QueueDepth q;
            // Every band's and every shard's queue counts; consumers are those of each shard's
            // lowest band, which every daemon of the bridge consumes: the fewest of any shard.
            std::optional<std::uint32_t> fewest_consumers;
            q.shard_waiting.resize(topology.shards);
            q.shard_consumers.resize(topology.shards);
            for (std::uint32_t shard = 0; shard < topology.shards; ++shard) {
                const auto queues = topology.change_queues(side.name, shard);
                for (const auto& queue : queues) {
                    if (auto s = conn.inspect_queue(1, queue)) {
                        q.ready = q.ready.value_or(0) + s->messages;
                        q.shard_waiting[shard] += s->messages;
                        if (queue == queues.back()) {
                            q.shard_consumers[shard] = s->consumers;
                            fewest_consumers =
                                std::min(fewest_consumers.value_or(s->consumers), s->consumers);
                        }
                    }
                }
                if (auto s = conn.inspect_queue(1, topology.retry_queue(side.name, shard))) {
                    q.retrying = q.retrying.value_or(0) + s->messages;
                    q.shard_waiting[shard] += s->messages;
                }
            }
            // Two sites: what the source's site holds for this side, not shovelled yet.
            const std::string& source = config.other_side(side.name).name;
            // Best effort: the other site away (or the link to it) leaves this side's broker
            // reachable; what waits there is then not counted, and said.
            if (!config.same_broker(source, side.name)) {
                try {
                    transport::AmqpConnection& at_source = connection(source);
                    for (std::uint32_t shard = 0; shard < topology.shards; ++shard) {
                        for (const auto& queue : topology.change_queues(side.name, shard)) {
                            if (auto s = at_source.inspect_queue(1, queue)) {
                                q.ready = q.ready.value_or(0) + s->messages;
                                q.shard_waiting[shard] += s->messages;
                            }
                        }
                    }
                } catch (const Error& e) {
                    b.error = fmt::format(
                        "the broker of {}'s site cannot be reached, what waits "
                        "there for {} is not counted: {}",
                        source, side.name, e.what());
                    connections.erase(config.broker_of(source).identity());
                }
            }
            q.consumers = fewest_consumers.value_or(0);
            if (auto s = conn.inspect_queue(
                    1, names::dead_letter_queue(config.bridge_name, side.name))) {
                q.dead = s->messages;
            }
            b.queues.emplace_back(side.name, q);
        }
        b.reachable = true;
    } catch (const Error& e) {
        b.error = e.what();
    }
    return b;
}

}  // namespace

std::string describe_copy(const CopyInProgress& copy) {
    std::string out =
        fmt::format("{}: {} of about {} rows", copy.table, format_count(copy.rows_copied),
                    format_count(std::max(copy.rows_estimated, copy.rows_copied)));
    if (copy.rows_estimated > 0) {
        out += fmt::format(
            " ({:.0f}%)", 100.0 *
                              static_cast<double>(std::min(copy.rows_copied, copy.rows_estimated)) /
                              static_cast<double>(copy.rows_estimated));
    }
    if (copy.stalled()) {
        return out + fmt::format(", no progress for {}: is pgbridge run running?",
                                 duration(copy.seconds_since_update));
    }
    if (const double rate = copy.rows_per_second(); rate > 0) {
        out += fmt::format(", {} rows/s", format_count(static_cast<std::uint64_t>(rate)));
    }
    if (const auto left = copy.seconds_left()) {
        out += fmt::format(", about {} left", duration(*left));
    }
    return out;
}

const SideProbe& BridgeProbe::side(const std::string& name) const {
    for (const auto& s : sides) {
        if (s.side == name) {
            return s;
        }
    }
    throw Error(ErrorKind::Internal, "no such side in the probe").with("side", name);
}

const QueueDepth* BridgeProbe::queue_to(const std::string& target) const {
    for (const auto& [side, depth] : broker.queues) {
        if (side == target) {
            return &depth;
        }
    }
    return nullptr;
}

BridgeProbe probe_bridge(const Config& config) {
    BridgeProbe p;
    for (const auto& side : config.sides) {
        p.sides.push_back(probe_side(config, side));
    }
    p.broker = probe_broker(config);
    p.taken_at = now_unix_micros();
    return p;
}

namespace {

// The source commit time the apply of a direction has reached, for its seconds behind. With
// apply shards: of the shards with messages waiting, the one furthest behind (a shard with
// nothing waiting is not behind, however old its last change); none waiting, the newest.
std::optional<UnixMicros> applied_commit_time_behind(const SideProbe& target,
                                                     const QueueDepth* queue) {
    const auto& shards = target.shard_commit_times;
    if (shards.size() <= 1 || queue == nullptr || queue->shard_waiting.size() != shards.size()) {
        return target.applied_commit_time;
    }
    std::optional<UnixMicros> behind;
    std::optional<UnixMicros> newest;
    for (std::size_t k = 0; k < shards.size(); ++k) {
        if (!shards[k]) {
            if (queue->shard_waiting[k] > 0) {
                return target.applied_commit_time;  // a shard that never applied: the oldest
            }
            continue;
        }
        newest = std::max(newest.value_or(*shards[k]), *shards[k]);
        if (queue->shard_waiting[k] > 0) {
            behind = std::min(behind.value_or(*shards[k]), *shards[k]);
        }
    }
    return behind ? behind : newest;
}

}  // namespace

std::vector<DirectionLag> lag_of(const Config& config, const BridgeProbe& probe,
                                 std::uint64_t idle_wal_bytes) {
    std::vector<DirectionLag> out;
    for (const auto& source_config : config.sides) {
        const std::string& source = source_config.name;
        const std::string& target = config.other_side(source).name;
        const SideProbe& from = probe.side(source);
        const SideProbe& to = probe.side(target);
        DirectionLag d;
        d.source = source;
        d.target = target;
        d.wal_bytes = from.slot_lag_bytes;
        if (const QueueDepth* q = probe.queue_to(target); q != nullptr && q->ready) {
            d.queued = *q->ready + q->retrying.value_or(0);
            d.dead = q->dead;
        }
        if (to.reachable && to.error.empty()) {
            d.pending_conflicts = to.pending_conflicts;
            d.new_dead_letters = to.new_dead_letters;
        }
        if (d.wal_bytes && d.queued) {
            if (*d.wal_bytes < idle_wal_bytes && *d.queued == 0) {
                d.seconds_behind = 0.0;
            } else if (const auto applied =
                           applied_commit_time_behind(to, probe.queue_to(target))) {
                d.seconds_behind =
                    std::max(0.0, static_cast<double>(probe.taken_at - *applied) / 1e6);
            }
        }
        out.push_back(std::move(d));
    }
    return out;
}

std::string_view to_string(Health health) noexcept {
    switch (health) {
        case Health::Healthy:
            return "healthy";
        case Health::Degraded:
            return "degraded";
        case Health::Down:
            return "down";
    }
    return "down";
}

HealthReport assess(const Config& config, const BridgeProbe& probe,
                    const std::vector<DirectionLag>& lag) {
    HealthReport r;
    const auto problem = [&](Health level, std::string text) {
        r.health = std::max(r.health, level);
        r.problems.push_back(std::move(text));
    };
    for (const auto& s : probe.sides) {
        if (!s.reachable) {
            problem(Health::Down, fmt::format("side {} cannot be reached: {}", s.side, s.error));
            continue;
        }
        if (!s.error.empty()) {
            problem(Health::Degraded, fmt::format("side {}: {}", s.side, s.error));
        }
        if (!s.slot_exists) {
            problem(Health::Degraded,
                    fmt::format("side {}: slot {} does not exist (run pgbridge setup)", s.side,
                                names::slot(config.bridge_name, s.side)));
        } else {
            if (!s.slot_active) {
                problem(Health::Degraded,
                        fmt::format("side {}: slot {} is not in use (is pgbridge run running?)",
                                    s.side, names::slot(config.bridge_name, s.side)));
            }
            if (s.wal_status == "unreserved" || s.wal_status == "lost") {
                problem(Health::Degraded,
                        fmt::format("side {}: slot wal_status is {}", s.side, s.wal_status));
            }
        }
        if (s.slot_moved) {
            problem(Health::Degraded,
                    fmt::format("side {}: slot {} is ahead of the last position pgbridge "
                                "reported: it was created again or moved by hand, and what "
                                "this side committed in between was never captured (pgbridge "
                                "run repairs it when it starts)",
                                s.side, names::slot(config.bridge_name, s.side)));
        }
        if (s.repair_pending) {
            problem(Health::Degraded,
                    fmt::format("side {}: its slot was created again or moved (an older slot), "
                                "and what that one never captured may be missing on the other "
                                "side: {}",
                                s.side,
                                config.sync.recopy == SyncConfig::Recopy::Auto
                                    ? "pgbridge run repairs every synced table"
                                    : "run pgbridge repair (sync.recopy = \"ask\")"));
        }
        if (s.apply_waiting_for) {
            problem(Health::Degraded,
                    fmt::format("{} -> {}: the apply waits since {} for {} on side {} (add it, "
                                "or drop it on side {} too: docs/schema-changes.md)",
                                config.other_side(s.side).name, s.side, s.apply_waiting_since,
                                *s.apply_waiting_for, s.side, config.other_side(s.side).name));
        }
        if (s.tables_not_copied > 0) {
            std::string running;
            for (const auto& copy : s.copies) {
                running += "; " + describe_copy(copy);
            }
            problem(Health::Degraded,
                    fmt::format("side {}: the initial copy of {} tables has not finished (pgbridge "
                                "run copies them){}",
                                s.side, s.tables_not_copied, running));
        }
        if (s.pending_conflicts > 0) {
            problem(Health::Degraded, fmt::format("side {}: {} pending conflicts (pgbridge "
                                                  "conflicts list --pending)",
                                                  s.side, s.pending_conflicts));
        }
        if (s.new_dead_letters > 0) {
            problem(Health::Degraded,
                    fmt::format("side {}: {} dead letters in pgbridge.dead_letters", s.side,
                                s.new_dead_letters));
        }
    }
    if (!probe.broker.reachable) {
        problem(Health::Down, fmt::format("RabbitMQ cannot be reached: {}", probe.broker.error));
    } else if (!probe.broker.error.empty()) {
        problem(Health::Degraded, probe.broker.error);  // the other site's broker
    }
    // A shard left to an apply-only worker is applied by nobody while that worker is away;
    // pgbridge run's own shards are covered by its slot being in use.
    for (const auto& [target, q] : probe.broker.queues) {
        for (const int shard : config.engine.remote_apply_shards) {
            const auto index = static_cast<std::size_t>(shard - 1);
            if (index < q.shard_consumers.size() && q.shard_consumers[index] == 0u) {
                problem(Health::Degraded,
                        fmt::format("{} -> {}: shard {} has no consumer (is pgbridge run "
                                    "--apply-only --shard {}/{} running?)",
                                    config.other_side(target).name, target, shard, shard,
                                    config.engine.apply_workers));
            }
        }
    }
    for (const auto& d : lag) {
        const std::string direction = d.source + " -> " + d.target;
        if (d.wal_bytes &&
            *d.wal_bytes >
                static_cast<std::uint64_t>(config.status.max_slot_lag_mb) * 1024 * 1024) {
            problem(Health::Degraded,
                    fmt::format(
                        "{}: the slot holds {} not yet captured (limit {}: [status] "
                        "max_slot_lag_mb)",
                        direction, format_bytes(static_cast<std::int64_t>(*d.wal_bytes)),
                        format_bytes(std::int64_t{config.status.max_slot_lag_mb} * 1024 * 1024)));
        }
        if (d.queued && *d.queued > static_cast<std::uint32_t>(config.status.max_queued_messages)) {
            problem(Health::Degraded, fmt::format("{}: {} messages queued (limit {})", direction,
                                                  *d.queued, config.status.max_queued_messages));
        }
        if (d.seconds_behind && *d.seconds_behind > config.status.max_lag_seconds) {
            problem(Health::Degraded,
                    fmt::format("{}: {:.0f} s behind (limit {} s)", direction, *d.seconds_behind,
                                config.status.max_lag_seconds));
        }
        if (d.dead && *d.dead > 0) {
            problem(Health::Degraded,
                    fmt::format("{}: {} messages in the dead-letter queue", direction, *d.dead));
        }
    }
    return r;
}

}  // namespace pgbridge::metrics
