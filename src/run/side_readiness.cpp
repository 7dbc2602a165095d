#include <fmt/format.h>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/config/side_connection.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/error_policy.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/pg/array_literal.hpp>
#include <pgbridge/run/side_readiness.hpp>
#include <pgbridge/transport/amqp_connection.hpp>
#include <pgbridge/transport/topology.hpp>

namespace pgbridge::run {
namespace {

Error not_set_up(const std::string& side, const std::string& what) {
    return Error(ErrorKind::Setup,
                 fmt::format("side {} is not set up for this bridge: {}; run pgbridge setup "
                             "(it reports what it creates)",
                             side, what))
        .with("side", side);
}

}  // namespace

SideReadiness check_side_ready(const Config& config, const std::string& side) {
    auto conn = pg::Connection::open(side_connect_options(
        config.side(side), config.engine.timeout_ms, "pgbridge run: setup check"));
    const std::string publication = names::publication(config.bridge_name);
    const std::string slot = names::slot(config.bridge_name, side);
    // The applier's origins: one per apply shard.
    const auto shards = static_cast<std::uint32_t>(config.engine.apply_workers);
    std::vector<std::optional<std::string>> origins;
    for (std::uint32_t shard = 0; shard < shards; ++shard) {
        origins.emplace_back(
            names::shard_origin(config.bridge_name, config.other_side(side).name, shard, shards));
    }
    const auto found = conn.exec(
        "SELECT to_regnamespace($1) IS NOT NULL,"
        "       EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $2),"
        "       (SELECT pg_catalog.string_agg(o, ', ') FROM pg_catalog.unnest($3::text[]) AS o"
        "         WHERE pg_replication_origin_oid(o) IS NULL),"
        "       to_regclass('pgbridge.schema_version') IS NOT NULL",
        {std::string(names::kMetadataSchema), publication, pg::array_literal(origins)});
    if (found.value(0, 0) != "t") {
        throw not_set_up(side, fmt::format("schema {} is missing", names::kMetadataSchema));
    }
    const int version =
        found.value(0, 3) != "t"
            ? 0
            : std::atoi(conn.exec("SELECT coalesce(max(version), 0) FROM pgbridge.schema_version")
                            .value(0, 0)
                            .data());
    if (version < names::kMetadataSchemaVersion) {
        throw not_set_up(side, fmt::format("schema {} is from an older pgbridge (version {} "
                                           "needed)",
                                           names::kMetadataSchema, names::kMetadataSchemaVersion));
    }
    if (found.value(0, 1) != "t") {
        throw not_set_up(side, fmt::format("publication {} is missing", publication));
    }
    if (!found.is_null(0, 2)) {
        throw not_set_up(side, fmt::format("replication origin {} is missing", found.value(0, 2)));
    }
    SideReadiness ready;
    ready.side = side;
    ready.slot = source::read_slot_identity(conn, config.bridge_name, slot);
    if (!ready.slot.exists) {
        throw not_set_up(side, fmt::format("replication slot {} is missing", slot));
    }
    if (ready.slot.lost()) {
        throw not_set_up(side, fmt::format("replication slot {} was invalidated (wal_status lost: "
                                           "the server removed WAL it still needed); setup creates "
                                           "it again, and run then repairs this side's tables",
                                           slot));
    }
    ready.record = source::record_slot_identity(conn, config.bridge_name, slot, ready.slot, false);
    return ready;
}

void check_broker_ready(const Config& config) {
    const auto topology = transport::Topology::of(config);
    for (const RabbitConfig& site : config.brokers()) {
        auto options = transport::AmqpConnectOptions::from(site, config.engine.timeout_ms);
        options.connection_name = "pgbridge run: setup check";
        transport::AmqpConnection broker(options);
        for (const auto& side : config.sides) {
            auto queues = topology.all_change_queues(side.name);
            for (auto& retry : topology.all_retry_queues(side.name)) {
                queues.push_back(std::move(retry));
            }
            queues.push_back(names::dead_letter_queue(config.bridge_name, side.name));
            for (const auto& queue : queues) {
                if (!broker.inspect_queue(1, queue)) {
                    throw Error(
                        ErrorKind::Setup,
                        fmt::format("queue {} is missing on the broker; run pgbridge setup", queue))
                        .with("broker", broker.server());
                }
            }
        }
    }
}

std::optional<bool> check_bridge_ready(const Config& config) {
    bool repair = false;
    try {
        for (const auto& side : config.sides) {
            const run::SideReadiness ready = check_side_ready(config, side.name);
            if (ready.record == source::SlotRecord::NewGeneration) {
                log::warning(
                    "run",
                    "the slot is ahead of the last position pgbridge reported: it was "
                    "created again or moved by hand, and what this side committed in "
                    "between was never captured",
                    {{"side", side.name}, {"generation", std::to_string(*ready.slot.generation)}});
            }
            if (!ready.slot.repair_pending) {
                continue;
            }
            repair = true;
            log::warning("run",
                         config.sync.recopy == SyncConfig::Recopy::Auto
                             ? "what an older slot never captured may be missing on the other "
                               "side: every synced table is repaired by the conflict rules once "
                               "both directions stream"
                             : "what an older slot never captured may be missing on the other "
                               "side; status stays degraded until `pgbridge repair` has run "
                               "(sync.recopy = \"ask\")",
                         {{"side", side.name}});
        }
    } catch (const Error& e) {
        if (e.kind() != ErrorKind::Setup) {
            throw;
        }
        log::error("run", e.message(), {{"side", std::string(e.context_value("side"))}});
        return std::nullopt;
    }
    try {
        check_broker_ready(config);
    } catch (const Error& e) {
        if (e.kind() == ErrorKind::Setup || is_refused_login(e)) {
            log::error("run", e.message(), {{"broker", std::string(e.context_value("broker"))}});
            return std::nullopt;
        }
        log::warning("run",
                     "the broker cannot be reached; setup's queues were not checked (run declares "
                     "them when it connects)",
                     {{"error", e.what()}});
    }
    return repair && config.sync.recopy == SyncConfig::Recopy::Auto;
}

}  // namespace pgbridge::run
