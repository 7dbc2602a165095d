#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <pgbridge/transport/amqp_table.hpp>

namespace pgbridge::transport {

// The AMQP basic properties pgbridge sets and reads (docs/message-format.md, "Properties").
// Unset optional properties are not sent.
struct MessageProperties {
    std::optional<std::string> content_type;
    std::optional<std::string> type;
    std::optional<std::string> message_id;
    std::optional<std::string> app_id;
    std::optional<std::uint8_t> priority;
    std::optional<std::uint64_t> timestamp;  // seconds
    std::optional<std::string> expiration;   // per-message TTL in ms, as text
    bool persistent = true;                  // delivery_mode 2
    AmqpTable headers;
};

// A message to publish: to `exchange` ("" is the default exchange, routing straight to the
// queue named by the routing key), always mandatory, so an unroutable message is an error.
struct OutgoingMessage {
    std::string exchange;
    std::string routing_key;
    MessageProperties properties;
    std::string body;
};

// A message the broker delivered to a consumer, owned: nothing of it points into the
// connection's buffers, so it stays valid whatever the connection reads next.
struct Delivery {
    std::uint64_t delivery_tag = 0;
    bool redelivered = false;
    std::string consumer_tag;  // which consumer of the connection it came to
    std::string exchange;
    std::string routing_key;
    MessageProperties properties;
    // The body; when body_size is over the reader's limit, only its first bytes (the rest was
    // read from the socket and dropped, never held).
    std::string body;
    std::uint64_t body_size = 0;
    bool body_complete() const { return body.size() == body_size; }
};

}  // namespace pgbridge::transport
