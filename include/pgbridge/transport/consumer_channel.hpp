#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include <pgbridge/transport/message.hpp>

namespace pgbridge::transport {

// What the consumer needs of the broker, for one queue: its deliveries, their settlement, and
// confirmed publishing of copies (retry, dead letter). The real one holds two AMQP
// connections (one consuming, one publishing, so no delivery is read by the publisher by
// mistake); the unit tests use an in-memory one. Every failure throws Error(Broker); the
// consumer then opens a new channel, and what was not acknowledged comes again.
class ConsumerChannel {
  public:
    virtual ~ConsumerChannel() = default;

    // The next delivery, waiting at most `wait` (zero: only what has arrived). A body
    // larger than `max_body` comes with only its first bytes (Delivery::body_complete).
    virtual std::optional<Delivery> receive(std::chrono::milliseconds wait,
                                            std::size_t max_body) = 0;
    virtual void ack(std::uint64_t delivery_tag) = 0;
    // Refuses a delivery: the broker moves it, whole and unchanged, to the queue's
    // dead-letter exchange.
    virtual void reject(std::uint64_t delivery_tag) = 0;
    // Publishes and returns once the broker has confirmed it.
    virtual void publish(const OutgoingMessage& message) = 0;
};

}  // namespace pgbridge::transport
