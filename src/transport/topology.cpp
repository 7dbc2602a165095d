#include <fmt/format.h>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/core/sqlstate.hpp>
#include <pgbridge/transport/topology.hpp>

namespace pgbridge::transport {
namespace {

constexpr std::uint16_t kChannel = 1;
constexpr std::string_view kReportSide = "rabbitmq";

struct QueueSpec {
    std::string name;
    AmqpTable arguments;
    std::string exchange;
    std::string routing_key;
    // Declared with x-single-active-consumer: only one consumer at a time receives, so two
    // daemons of one bridge never apply side by side. A queue declared before pgbridge set
    // it is kept as it is (the broker cannot add an argument to an existing queue).
    bool single_active_consumer = false;
};

// Quorum queues that dead-letter (a reject to .dead, an expired retry back to its queue) do
// it at least once: the default for quorum queues is at most once, which a node lost at the
// wrong moment turns into a lost message. At-least-once needs reject-publish overflow.
AmqpTable queue_arguments(const Topology& t) {
    AmqpTable arguments;
    if (t.quorum) {
        arguments.set("x-queue-type", std::string("quorum"));
    }
    return arguments;
}

AmqpTable dead_lettering_to(const Topology& t, const std::string& exchange,
                            const std::string& routing_key) {
    AmqpTable arguments = queue_arguments(t);
    arguments.set("x-dead-letter-exchange", exchange).set("x-dead-letter-routing-key", routing_key);
    if (t.quorum) {
        arguments.set("x-dead-letter-strategy", std::string("at-least-once"))
            .set("x-overflow", std::string("reject-publish"));
    }
    return arguments;
}

std::vector<QueueSpec> queues_of(const Topology& t) {
    std::vector<QueueSpec> queues;
    const std::string exchange = names::exchange(t.bridge);
    const std::string dead = names::dead_letter_exchange(t.bridge);
    for (const auto& side : t.sides) {
        for (std::uint32_t shard = 0; shard < t.shards; ++shard) {
            // Rejected messages of every shard go to the side's one dead-letter queue.
            const auto queues_of_shard = t.change_queues(side, shard);
            for (std::size_t band = 0; band < queues_of_shard.size(); ++band) {
                const int priority = band < t.priority_bands.size() ? t.priority_bands[band] : 0;
                AmqpTable arguments = dead_lettering_to(t, dead, side);
                if (!t.quorum) {
                    arguments.set("x-max-priority", std::int64_t{t.max_priority});
                }
                queues.push_back(QueueSpec{queues_of_shard[band], std::move(arguments), exchange,
                                           t.routing_key(side, priority, shard), true});
            }
            // An expired retry goes back to the shard's lowest band.
            queues.push_back(
                QueueSpec{t.retry_queue(side, shard),
                          dead_lettering_to(t, exchange, t.routing_key(side, 0, shard)), "", ""});
        }
        queues.push_back(
            QueueSpec{names::dead_letter_queue(t.bridge, side), queue_arguments(t), dead, side});
    }
    return queues;
}

}  // namespace

Topology Topology::of(const Config& config) {
    Topology t;
    t.bridge = config.bridge_name;
    for (const auto& side : config.sides) {
        t.sides.push_back(side.name);
    }
    t.max_priority = config.rabbitmq.max_priority;
    t.quorum = config.rabbitmq.queue_type == RabbitConfig::QueueType::Quorum;
    if (t.quorum) {
        t.priority_bands = config.rabbitmq.priority_bands;
    }
    t.shards = static_cast<std::uint32_t>(config.engine.apply_workers);
    return t;
}

std::vector<std::string> Topology::change_queues(const std::string& side,
                                                 std::uint32_t shard) const {
    const std::string base = names::shard_queue(bridge, side, shard, shards);
    std::vector<std::string> out;
    for (const int bound : priority_bands) {
        out.push_back(base + ".p" + std::to_string(bound));
    }
    out.push_back(base);
    return out;
}

std::vector<std::string> Topology::all_change_queues(const std::string& side) const {
    std::vector<std::string> out;
    for (std::uint32_t shard = 0; shard < shards; ++shard) {
        for (auto& queue : change_queues(side, shard)) {
            out.push_back(std::move(queue));
        }
    }
    return out;
}

std::string Topology::retry_queue(const std::string& side, std::uint32_t shard) const {
    return names::shard_retry_queue(bridge, side, shard, shards);
}

std::vector<std::string> Topology::all_retry_queues(const std::string& side) const {
    std::vector<std::string> out;
    for (std::uint32_t shard = 0; shard < shards; ++shard) {
        out.push_back(retry_queue(side, shard));
    }
    return out;
}

std::string Topology::routing_key(const std::string& side, int priority,
                                  std::uint32_t shard) const {
    const std::string base = side + names::shard_suffix(shard, shards);
    for (const int bound : priority_bands) {
        if (priority >= bound) {
            return base + ".p" + std::to_string(bound);
        }
    }
    return base;
}

void declare_topology(AmqpConnection& connection, const Topology& topology, SetupReport* report,
                      bool dry_run) {
    auto record = [&](const std::string& object, bool existed) {
        if (report != nullptr) {
            report->add(std::string(kReportSide), object,
                        existed ? SetupStep::Outcome::Unchanged : SetupStep::Outcome::Changed,
                        existed ? "present" : (dry_run ? "would be created" : "created"));
        }
    };
    for (const auto& exchange :
         {names::exchange(topology.bridge), names::dead_letter_exchange(topology.bridge)}) {
        const bool existed = report == nullptr || connection.exchange_exists(kChannel, exchange);
        if (!dry_run) {
            connection.declare_exchange(kChannel, exchange, "direct");
        }
        record("exchange " + exchange, existed);
    }
    for (const auto& queue : queues_of(topology)) {
        const bool existed =
            report == nullptr || connection.inspect_queue(kChannel, queue.name).has_value();
        bool without_single_active = false;
        if (!dry_run || existed) {
            try {
                // Declaring an existing queue verifies its arguments: the broker refuses a
                // declaration that differs (406 PRECONDITION_FAILED).
                try {
                    AmqpTable arguments = queue.arguments;
                    if (queue.single_active_consumer) {
                        arguments.set("x-single-active-consumer", true);
                    }
                    connection.declare_queue(kChannel, queue.name, arguments);
                } catch (const Error& e) {
                    if (!queue.single_active_consumer ||
                        e.context_value("reply_code") != amqp_reply::kPreconditionFailed) {
                        throw;
                    }
                    // Declared by an older pgbridge: the same queue without the argument.
                    connection.declare_queue(kChannel, queue.name, queue.arguments);
                    without_single_active = true;
                }
            } catch (const Error& e) {
                if (e.context_value("reply_code") == amqp_reply::kPreconditionFailed) {
                    throw Error(ErrorKind::Broker,
                                fmt::format("queue {} exists with other settings than this "
                                            "configuration gives it ({}); delete it when it is "
                                            "empty, or align rabbitmq.max_priority and "
                                            "queue_type with it",
                                            queue.name, e.message()))
                        .with("broker", connection.server());
                }
                throw;
            }
            if (!queue.exchange.empty()) {
                connection.bind_queue(kChannel, queue.name, queue.exchange, queue.routing_key);
            }
        }
        if (without_single_active && report == nullptr) {
            log::warning("topology",
                         "queue declared by an older pgbridge without x-single-active-consumer; "
                         "recreate it when it is empty (pgbridge teardown --yes, then setup)",
                         {{"queue", queue.name}});
        }
        if (without_single_active && report != nullptr) {
            report->add(std::string(kReportSide), "queue " + queue.name,
                        SetupStep::Outcome::Warning,
                        "declared by an older pgbridge without x-single-active-consumer: two "
                        "daemons of this bridge could both consume from it; recreate it when "
                        "it is empty (pgbridge teardown --yes, then setup)");
        } else {
            record("queue " + queue.name, existed);
        }
    }
}

void delete_topology(AmqpConnection& connection, const Topology& topology, SetupReport& report,
                     bool dry_run) {
    for (const auto& queue : queues_of(topology)) {
        auto state = connection.inspect_queue(kChannel, queue.name);
        if (!state) {
            report.add(std::string(kReportSide), "queue " + queue.name,
                       SetupStep::Outcome::Unchanged, "absent");
            continue;
        }
        const std::uint32_t lost =
            dry_run ? state->messages : connection.delete_queue(kChannel, queue.name);
        report.add(std::string(kReportSide), "queue " + queue.name, SetupStep::Outcome::Changed,
                   fmt::format("{} ({} messages discarded)",
                               dry_run ? "would be deleted" : "deleted", lost));
    }
    for (const auto& exchange :
         {names::exchange(topology.bridge), names::dead_letter_exchange(topology.bridge)}) {
        if (!connection.exchange_exists(kChannel, exchange)) {
            report.add(std::string(kReportSide), "exchange " + exchange,
                       SetupStep::Outcome::Unchanged, "absent");
            continue;
        }
        if (!dry_run) {
            connection.delete_exchange(kChannel, exchange);
        }
        report.add(std::string(kReportSide), "exchange " + exchange, SetupStep::Outcome::Changed,
                   dry_run ? "would be deleted" : "deleted");
    }
}

}  // namespace pgbridge::transport
