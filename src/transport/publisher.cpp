#include <algorithm>

#include <fmt/format.h>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/transport/message_codec.hpp>
#include <pgbridge/transport/publisher.hpp>

namespace pgbridge::transport {
namespace {

constexpr std::uint16_t kChannel = 1;

}  // namespace

Publisher::Publisher(PublisherOptions options) : options_(std::move(options)) {
    pending_.bridge = options_.topology.bridge;
    pending_.source_side = options_.source_side;
    pending_.kind = options_.kind;
}

Publisher::~Publisher() = default;

void Publisher::connect() {
    if (connection_) {
        return;
    }
    auto connection = std::make_unique<AmqpConnection>(options_.connect);
    declare_topology(*connection, options_.topology);
    connection->confirm_select(kChannel);
    connection_ = std::move(connection);
    next_sequence_ = 1;  // delivery tags restart with each channel in confirm mode
    log::info("publisher", "connected to RabbitMQ",
              {{"broker", connection_->server()},
               {"source", options_.source_side},
               {"target", options_.target_side}});
}

int Publisher::priority_of(const SourceTransaction& txn) const {
    if (options_.kind == BatchKind::Backfill || !options_.priority_of) {
        return 0;
    }
    int priority = 0;
    for (const auto& c : txn.changes) {
        priority = std::max(priority, options_.priority_of(*c.table));
    }
    return priority;
}

void Publisher::deliver(SourceTransaction transaction) {
    throw_if_failed();
    const int priority = priority_of(transaction);
    const std::size_t changes = transaction.changes.size();
    // A message holds whole transactions of one priority, up to batch_size changes.
    if (!pending_.transactions.empty() &&
        (priority != pending_priority_ || pending_changes_ + changes > options_.batch_size)) {
        publish_pending();
    }
    pending_priority_ = priority;
    pending_changes_ += changes;
    pending_.transactions.push_back(std::move(transaction));
    if (pending_changes_ >= options_.batch_size) {
        publish_pending();
    }
}

void Publisher::flush() {
    throw_if_failed();
    if (!pending_.transactions.empty()) {
        publish_pending();
    }
    if (connection_) {
        read_confirms(std::nullopt);
    }
}

void Publisher::publish_pending() {
    try {
        connect();
        // Never write while acks wait unread: drain them first, and block while the window
        // of unconfirmed messages is full.
        read_confirms(std::nullopt);
        while (in_flight_.size() >= options_.max_unconfirmed) {
            read_confirms(std::chrono::milliseconds(options_.connect.timeout_ms));
        }

        OutgoingMessage message;
        message.exchange = names::exchange(options_.topology.bridge);
        message.routing_key = options_.target_side;
        message.body = encode_body(pending_);
        MessageProperties& props = message.properties;
        props.content_type = std::string(kContentType);
        props.type = std::string(kMessageType);
        props.app_id = "pgbridge";
        props.message_id = message_id(pending_);
        props.priority = static_cast<std::uint8_t>(pending_priority_);
        props.timestamp = static_cast<std::uint64_t>(pending_.last_commit_time() / 1000000);
        for (auto& [key, value] : message_headers(pending_)) {
            props.headers.set(std::move(key), std::move(value));
        }
        connection_->publish(kChannel, message);
        in_flight_.push_back(InFlight{next_sequence_++, pending_.last_end_lsn()});
        ++stats_.messages_published;
        stats_.changes_published += pending_changes_;
        stats_.bytes_published += message.body.size();
    } catch (Error& e) {
        fail(std::move(e));
        throw_if_failed();
    }
    pending_.transactions.clear();
    pending_changes_ = 0;
}

void Publisher::read_confirms(std::optional<std::chrono::milliseconds> wait) {
    auto confirm_event = connection_->next_confirm(wait);
    if (!confirm_event && wait && in_flight_.size() >= options_.max_unconfirmed) {
        throw Error(ErrorKind::Broker, "no publisher confirms from the broker within timeout_ms")
            .with("broker", connection_->server());
    }
    while (confirm_event) {
        confirm(confirm_event->delivery_tag, confirm_event->multiple);
        confirm_event = connection_->next_confirm(std::nullopt);
    }
}

void Publisher::confirm(std::uint64_t tag, bool multiple) {
    for (auto& m : in_flight_) {
        if (m.sequence == tag || (multiple && m.sequence < tag)) {
            m.confirmed = true;
        }
    }
    while (!in_flight_.empty() && in_flight_.front().confirmed) {
        durable_ = std::max(durable_, in_flight_.front().end_lsn);
        in_flight_.pop_front();
        ++stats_.messages_confirmed;
    }
}

void Publisher::fail(Error error) {
    if (!failure_) {
        log::warning("publisher", "publishing interrupted; the capture will replay",
                     {{"source", options_.source_side},
                      {"durable_lsn", durable_.to_string()},
                      {"error", error.what()}});
        failure_ = std::move(error);
    }
}

void Publisher::throw_if_failed() {
    if (failure_) {
        throw *failure_;
    }
}

Lsn Publisher::durable_lsn() {
    if (connection_ && !failure_) {
        try {
            read_confirms(std::nullopt);
        } catch (Error& e) {
            fail(std::move(e));  // reported by the next deliver() or flush()
        }
    }
    return durable_;
}

void Publisher::settle(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (connection_ && !failure_ && !in_flight_.empty() &&
           std::chrono::steady_clock::now() < deadline) {
        try {
            read_confirms(std::chrono::milliseconds(100));
        } catch (Error& e) {
            fail(std::move(e));
        }
    }
}

void Publisher::rewind(Lsn from) {
    (void)from;
    // Whatever was not confirmed may be lost; the capture sends it again. Start over on a
    // fresh connection so no late confirm of the old channel is mistaken for a new one.
    pending_.transactions.clear();
    pending_changes_ = 0;
    in_flight_.clear();
    failure_.reset();
    if (connection_) {
        connection_.reset();
        ++stats_.reconnects;
    }
}

}  // namespace pgbridge::transport
