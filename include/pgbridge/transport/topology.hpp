#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <pgbridge/core/setup_report.hpp>
#include <pgbridge/transport/amqp_connection.hpp>

namespace pgbridge::transport {

// The RabbitMQ objects of a bridge (docs/message-format.md, "Topology"):
//   exchange pgbridge.NAME (direct)       routes a change message to its target side's queue
//   queue pgbridge.NAME.to.SIDE            durable, x-max-priority; rejects go to the DLX
//   queue pgbridge.NAME.to.SIDE.retry      durable; a failed message waits here for its
//                                          per-message TTL (retry_delay_ms), then the broker
//                                          dead-letters it back to pgbridge.NAME / SIDE
//   exchange pgbridge.NAME.dead (direct)  routes dead letters
//   queue pgbridge.NAME.to.SIDE.dead       durable; messages that will not apply
//
// With quorum queues ([rabbitmq] queue_type = "quorum") every queue is a replicated quorum
// queue, and the changes to a side travel on one queue per priority band: the lowest band on
// pgbridge.NAME.to.SIDE (routing key SIDE), each higher band with lower bound P on
// pgbridge.NAME.to.SIDE.pP (routing key SIDE.pP). Retried messages come back to the lowest band.
//
// With [engine] apply_workers = N > 1, each side's changes travel on N shards, K = 1..N: the
// queues above with ".sK" after the side (pgbridge.NAME.to.SIDE.sK, .sK.pP, .sK.retry;
// routing keys SIDE.sK, SIDE.sK.pP); the dead-letter queue stays one per side.
struct Topology {
    std::string bridge;
    std::vector<std::string> sides;
    int max_priority = 10;
    bool quorum = false;
    // Lower bounds of the bands above the lowest, highest first (quorum only).
    std::vector<int> priority_bands;
    std::uint32_t shards = 1;

    static Topology of(const Config& config);

    // The queues of changes to apply on `side` by shard `shard` (0-based), highest band first
    // (one with classic queues).
    std::vector<std::string> change_queues(const std::string& side, std::uint32_t shard = 0) const;
    // Those of every shard.
    std::vector<std::string> all_change_queues(const std::string& side) const;
    std::string retry_queue(const std::string& side, std::uint32_t shard = 0) const;
    std::vector<std::string> all_retry_queues(const std::string& side) const;
    // The routing key of a message of `priority` for `side` and `shard`: the key of its
    // band's queue.
    std::string routing_key(const std::string& side, int priority, std::uint32_t shard = 0) const;
};

// Declares every object, idempotently. With a report, records per object whether it was
// created or already there. A conflicting existing declaration (different x-max-priority,
// say) is an Error(Broker) naming the object and what the broker objected to.
void declare_topology(AmqpConnection& connection, const Topology& topology,
                      SetupReport* report = nullptr, bool dry_run = false);

// Deletes every object, reporting how many messages each queue still held.
void delete_topology(AmqpConnection& connection, const Topology& topology, SetupReport& report,
                     bool dry_run);

}  // namespace pgbridge::transport
