#pragma once

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
struct Topology {
    std::string bridge;
    std::vector<std::string> sides;
    int max_priority = 10;

    static Topology of(const Config& config);
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
