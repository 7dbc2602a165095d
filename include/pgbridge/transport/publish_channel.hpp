#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <pgbridge/transport/message.hpp>

namespace pgbridge::transport {

// The broker's confirm of messages published on a channel in confirm mode: every message up
// to delivery_tag when `multiple`, else that one.
struct PublishConfirm {
    std::uint64_t delivery_tag = 0;
    bool multiple = false;
};

// What the publisher needs of the broker: one channel in confirm mode, on which the n-th
// message published is confirmed as delivery tag n. The real one is an AMQP connection that
// has declared the bridge's topology; the unit tests use an in-memory one that confirms,
// nacks and drops when told. Every failure throws Error(Broker); the publisher then opens a
// new channel (tags start again at 1) and the capture replays what was not confirmed.
class PublishChannel {
  public:
    virtual ~PublishChannel() = default;

    // Publishes a persistent, mandatory message: one the broker cannot route comes back as an
    // error from next_confirm.
    virtual void publish(const OutgoingMessage& message) = 0;
    // The next confirm, waiting at most `wait` (nullopt: only what has arrived); nullopt when
    // none came. A nack or a returned message throws Error(Broker).
    virtual std::optional<PublishConfirm> next_confirm(
        std::optional<std::chrono::milliseconds> wait) = 0;
    // A descriptor that becomes readable when a confirm may have arrived; -1 when one may
    // already be waiting (ask next_confirm at once).
    virtual int readable_fd() const = 0;
    // The broker, as messages name it (host:port/vhost).
    virtual const std::string& server() const = 0;
};

}  // namespace pgbridge::transport
