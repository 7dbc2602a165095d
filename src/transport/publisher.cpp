#include <algorithm>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <fmt/format.h>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/transport/message_codec.hpp>
#include <pgbridge/transport/publisher.hpp>

namespace pgbridge::transport {
namespace {

constexpr std::uint16_t kChannel = 1;

amqp_bytes_t bytes(const std::string& s) {
    return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

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

        const std::string body = encode_body(pending_);
        const std::string id = message_id(pending_);
        AmqpTable headers;
        for (auto& [key, value] : message_headers(pending_)) {
            headers.set(std::move(key), std::move(value));
        }
        const AmqpTableView header_view(headers);
        amqp_basic_properties_t props{};
        props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                       AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                       AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_APP_ID_FLAG |
                       AMQP_BASIC_HEADERS_FLAG;
        const std::string content_type(kContentType);
        const std::string type(kMessageType);
        const std::string app_id = "pgbridge";
        props.content_type = bytes(content_type);
        props.delivery_mode = 2;  // persistent
        props.priority = static_cast<std::uint8_t>(pending_priority_);
        props.message_id = bytes(id);
        props.timestamp = static_cast<std::uint64_t>(pending_.last_commit_time() / 1000000);
        props.type = bytes(type);
        props.app_id = bytes(app_id);
        props.headers = header_view.get();

        const std::string exchange = names::exchange(options_.topology.bridge);
        const int status = amqp_basic_publish(connection_->native(), kChannel, bytes(exchange),
                                              bytes(options_.target_side), /*mandatory=*/1,
                                              /*immediate=*/0, &props, bytes(body));
        if (status != AMQP_STATUS_OK) {
            throw Error(ErrorKind::Broker,
                        fmt::format("publishing failed: {}", amqp_error_string2(status)))
                .with("broker", connection_->server());
        }
        in_flight_.push_back(InFlight{next_sequence_++, pending_.last_end_lsn()});
        ++stats_.messages_published;
        stats_.changes_published += pending_changes_;
        stats_.bytes_published += body.size();
    } catch (Error& e) {
        fail(std::move(e));
        throw_if_failed();
    }
    pending_.transactions.clear();
    pending_changes_ = 0;
}

void Publisher::read_confirms(std::optional<std::chrono::milliseconds> wait) {
    amqp_connection_state_t state = connection_->native();
    timeval zero{0, 0};
    timeval timeout = wait ? timeval{static_cast<time_t>(wait->count() / 1000),
                                     static_cast<suseconds_t>((wait->count() % 1000) * 1000)}
                           : zero;
    bool waited = false;
    while (true) {
        amqp_frame_t frame;
        // Block at most once, for the first frame; then take whatever else is ready.
        const int rc =
            amqp_simple_wait_frame_noblock(state, &frame, wait && !waited ? &timeout : &zero);
        waited = true;
        if (rc == AMQP_STATUS_TIMEOUT) {
            // Decoded frames live in rabbitmq-c's pool until released; without this a
            // long-running publisher grows by every ack it ever read.
            amqp_maybe_release_buffers(state);
            if (wait && in_flight_.size() >= options_.max_unconfirmed) {
                throw Error(ErrorKind::Broker,
                            "no publisher confirms from the broker within "
                            "timeout_ms")
                    .with("broker", connection_->server());
            }
            return;
        }
        if (rc != AMQP_STATUS_OK) {
            throw Error(ErrorKind::Broker,
                        fmt::format("connection to RabbitMQ lost: {}", amqp_error_string2(rc)))
                .with("broker", connection_->server());
        }
        if (frame.frame_type != AMQP_FRAME_METHOD) {
            continue;  // content of a returned message, read below with its method
        }
        switch (frame.payload.method.id) {
            case AMQP_BASIC_ACK_METHOD: {
                const auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
                confirm(ack->delivery_tag, ack->multiple != 0);
                break;
            }
            case AMQP_BASIC_NACK_METHOD:
                throw Error(ErrorKind::Broker, "the broker refused (nack) a message")
                    .with("broker", connection_->server());
            case AMQP_BASIC_RETURN_METHOD: {
                amqp_message_t returned;
                amqp_read_message(state, frame.channel, &returned, 0);
                amqp_destroy_message(&returned);
                throw Error(ErrorKind::Broker,
                            fmt::format("the broker returned a message as unroutable: no queue "
                                        "is bound for side {}; run pgbridge setup",
                                        options_.target_side))
                    .with("broker", connection_->server());
            }
            case AMQP_CONNECTION_BLOCKED_METHOD:
                log::warning("publisher", "RabbitMQ blocks publishing (a resource alarm)",
                             {{"broker", connection_->server()}});
                break;
            case AMQP_CONNECTION_UNBLOCKED_METHOD:
                log::info("publisher", "RabbitMQ accepts publishing again",
                          {{"broker", connection_->server()}});
                break;
            case AMQP_CHANNEL_CLOSE_METHOD: {
                const auto* close =
                    static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
                throw Error(
                    ErrorKind::Broker,
                    fmt::format("the broker closed the channel: {}",
                                std::string(static_cast<const char*>(close->reply_text.bytes),
                                            close->reply_text.len)))
                    .with("broker", connection_->server());
            }
            case AMQP_CONNECTION_CLOSE_METHOD:
                throw Error(ErrorKind::Broker, "the broker closed the connection")
                    .with("broker", connection_->server());
            default:
                break;
        }
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
