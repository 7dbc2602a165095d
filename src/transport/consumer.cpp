#include <algorithm>
#include <thread>

#include <amqp.h>
#include <amqp_framing.h>
#include <fmt/format.h>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/pg/connection.hpp>
#include <pgbridge/transport/consumer.hpp>
#include <pgbridge/transport/message_codec.hpp>

namespace pgbridge::transport {
namespace {

constexpr std::uint16_t kChannel = 1;

// Publishes one message and waits for the broker to confirm it. For the rare paths (retry,
// dead letter), on a connection of its own so no delivery frame is read by mistake.
class ConfirmedPublisher {
  public:
    explicit ConfirmedPublisher(const AmqpConnectOptions& options) : connection_(options) {
        connection_.confirm_select(kChannel);
    }

    void publish(const std::string& exchange, const std::string& routing_key,
                 const amqp_basic_properties_t& properties, const std::string& body,
                 int timeout_ms) {
        const int status = amqp_basic_publish(connection_.native(), kChannel, amqp_bytes(exchange),
                                              amqp_bytes(routing_key),
                                              /*mandatory=*/1, 0, &properties, amqp_bytes(body));
        if (status != AMQP_STATUS_OK) {
            throw Error(ErrorKind::Broker, fmt::format("publishing to {} failed: {}",
                                                       exchange.empty() ? routing_key : exchange,
                                                       amqp_error_string2(status)));
        }
        const std::uint64_t sequence = ++sequence_;
        while (true) {
            auto confirm = connection_.next_confirm(std::chrono::milliseconds(timeout_ms));
            if (!confirm) {
                throw Error(ErrorKind::Broker,
                            "no confirm for a republished message within "
                            "timeout_ms");
            }
            if (confirm->delivery_tag >= sequence) {
                return;
            }
        }
    }

  private:
    AmqpConnection connection_;
    std::uint64_t sequence_ = 0;
};

// The message's properties, copied with extra headers (for retry and dead-letter copies).
class PropertiesCopy {
  public:
    PropertiesCopy(const amqp_basic_properties_t& original, const AmqpTable& extra)
        : props_(original), headers_(merged(original, extra)), view_(headers_) {
        props_._flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
        props_._flags &= ~AMQP_BASIC_EXPIRATION_FLAG;
        props_.delivery_mode = 2;
        props_.headers = view_.get();
    }
    void set_expiration(std::string ms) {
        expiration_ = std::move(ms);
        props_._flags |= AMQP_BASIC_EXPIRATION_FLAG;
        props_.expiration = amqp_bytes(expiration_);
    }
    const amqp_basic_properties_t& get() const { return props_; }

  private:
    static AmqpTable merged(const amqp_basic_properties_t& original, const AmqpTable& extra) {
        AmqpTable headers;
        if ((original._flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
            headers = AmqpTable::from_native(original.headers);
        }
        for (const auto& [key, value] : extra.entries()) {
            headers.set(key, value);
        }
        return headers;
    }

    amqp_basic_properties_t props_;
    AmqpTable headers_;
    AmqpTableView view_;
    std::string expiration_;
};

}  // namespace

bool is_target_unavailable(const Error& error) {
    // A serialization failure or deadlock is also worth another try in place.
    const std::string_view sqlstate = error.context_value("sqlstate");
    return pg::is_connection_failure(error) ||
           (error.kind() == ErrorKind::Database && (sqlstate == "40001" || sqlstate == "40P01"));
}

class Consumer::Session {
  public:
    explicit Session(Consumer& c)
        : c_(c),
          connection_(c.options_.connect),
          republisher_(c.options_.connect),
          queue_(names::queue(c.options_.topology.bridge, c.options_.target_side)) {
        declare_topology(connection_, c.options_.topology);
        connection_.qos(kChannel, c.options_.prefetch);
        connection_.consume(kChannel, queue_);
        c_.stats_.consuming = true;
        log::info("consumer", "consuming", {{"queue", queue_}, {"broker", connection_.server()}});
    }
    ~Session() { c_.stats_.consuming = false; }

    void run() {
        amqp_connection_state_t state = connection_.native();
        while (!c_.stopping_) {
            amqp_maybe_release_buffers(state);
            amqp_envelope_t envelope;
            timeval timeout{0, 200 * 1000};
            const amqp_rpc_reply_t reply = amqp_consume_message(state, &envelope, &timeout, 0);
            if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                reply.library_error == AMQP_STATUS_TIMEOUT) {
                continue;
            }
            if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
                connection_.check_reply("consuming", kChannel);
                throw Error(ErrorKind::Broker, "consuming failed")
                    .with("broker", connection_.server());
            }
            // Whatever else the broker has already sent (up to the prefetch window) is applied
            // with it in one target transaction: one commit for many messages when they come
            // faster than one commit each can take.
            Envelopes group;
            group.items.push_back(envelope);
            while (group.items.size() < std::max<std::size_t>(1, c_.options_.prefetch)) {
                amqp_envelope_t next;
                timeval now{0, 0};
                const amqp_rpc_reply_t more = amqp_consume_message(state, &next, &now, 0);
                if (more.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                    more.library_error == AMQP_STATUS_TIMEOUT) {
                    break;
                }
                if (more.reply_type != AMQP_RESPONSE_NORMAL) {
                    connection_.check_reply("consuming", kChannel);
                    throw Error(ErrorKind::Broker, "consuming failed")
                        .with("broker", connection_.server());
                }
                group.items.push_back(next);
            }
            handle_group(group.items);
        }
    }

  private:
    // Received messages, released however the loop ends.
    struct Envelopes {
        std::vector<amqp_envelope_t> items;
        Envelopes() = default;
        Envelopes(const Envelopes&) = delete;
        Envelopes& operator=(const Envelopes&) = delete;
        ~Envelopes() {
            for (auto& e : items) {
                amqp_destroy_envelope(&e);
            }
        }
    };

    // Several messages of one kind: applied together, acknowledged together after the commit.
    // If the whole fails for a reason other than an unreachable target, each is applied on its
    // own, so that only the message at fault goes to the retry queue or the dead letters.
    void handle_group(const std::vector<amqp_envelope_t>& group) {
        std::vector<ChangeBatch> batches;
        try {
            for (const auto& e : group) {
                batches.push_back(decode_body(to_string(e.message.body)));
            }
        } catch (const Error&) {
            batches.clear();  // an unparseable one among them: the one-by-one path says which
        }
        const bool same_kind =
            batches.size() == group.size() &&
            std::all_of(batches.begin(), batches.end(), [&](const ChangeBatch& b) {
                return b.kind == batches.front().kind &&
                       b.source_side == batches.front().source_side;
            });
        if (group.size() == 1 || !same_kind) {
            for (const auto& e : group) {
                handle(e);
            }
            return;
        }
        ChangeBatch merged = std::move(batches.front());
        for (std::size_t i = 1; i < batches.size(); ++i) {
            for (auto& txn : batches[i].transactions) {
                merged.transactions.push_back(std::move(txn));
            }
        }
        try {
            apply_waiting_for_target(merged);
        } catch (const Error&) {
            if (c_.stopping_) {
                throw;
            }
            for (const auto& one : group) {
                handle(one);
            }
            return;
        }
        for (const auto& e : group) {
            ack(e.delivery_tag);
        }
        c_.stats_.messages_applied += group.size();
        c_.stats_.changes_applied += merged.change_count();
    }

    // Applies, waiting in place while the target cannot be reached: the message stays
    // unacknowledged, nothing is lost and no attempt is counted. Any other failure is the
    // caller's; so is every failure once stopping (unacked, the broker gives the message to
    // the next consumer).
    void apply_waiting_for_target(const ChangeBatch& batch) {
        while (true) {
            try {
                c_.handler_.apply(batch);
                return;
            } catch (const Error& e) {
                if (c_.stopping_ || !is_target_unavailable(e)) {
                    throw;
                }
                log::warning("consumer", "target unavailable; retrying in place",
                             {{"queue", queue_},
                              {"last_lsn", batch.last_end_lsn().to_string()},
                              {"error", e.what()}});
                std::this_thread::sleep_for(
                    std::chrono::milliseconds(std::max(100, c_.options_.retry_delay_ms)));
            }
        }
    }

    void ack(std::uint64_t tag) {
        if (amqp_basic_ack(connection_.native(), kChannel, tag, 0) != AMQP_STATUS_OK) {
            throw Error(ErrorKind::Broker, "acknowledging a message failed")
                .with("broker", connection_.server());
        }
    }

    void handle(const amqp_envelope_t& envelope) {
        const amqp_basic_properties_t& props = envelope.message.properties;
        const std::string body = to_string(envelope.message.body);
        AmqpTable headers;
        if ((props._flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
            headers = AmqpTable::from_native(props.headers);
        }
        const int previous_attempts =
            static_cast<int>(headers.get_int("x-pgbridge-attempts").value_or(0));
        const std::string id = (props._flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0
                                   ? to_string(props.message_id)
                                   : std::string();

        ChangeBatch batch;
        try {
            batch = decode_body(body);
        } catch (const Error& e) {
            DeadLetter letter = letter_for(id, body, e, previous_attempts);
            letter.error_kind = "unparseable";
            letter.source_side = headers.get_string("x-pgbridge-source").value_or("");
            dead_letter(props, body, letter);
            ack(envelope.delivery_tag);
            return;
        }

        try {
            apply_waiting_for_target(batch);
        } catch (const Error& e) {
            if (c_.stopping_) {
                throw;
            }
            const int attempts = previous_attempts + 1;
            DeadLetter letter = letter_for(id, body, e, attempts);
            letter.source_side = batch.source_side;
            letter.first_lsn = batch.first_commit_lsn();
            letter.last_lsn = batch.last_end_lsn();
            letter.commit_time = batch.last_commit_time();
            if (attempts < std::max(1, c_.options_.max_retries)) {
                retry(props, body, attempts, e);
            } else {
                dead_letter(props, body, letter);
            }
            ack(envelope.delivery_tag);
            return;
        }
        ack(envelope.delivery_tag);
        ++c_.stats_.messages_applied;
        c_.stats_.changes_applied += batch.change_count();
    }

    DeadLetter letter_for(const std::string& id, const std::string& body, const Error& e,
                          int attempts) {
        DeadLetter letter;
        letter.bridge = c_.options_.topology.bridge;
        letter.error_kind = std::string(to_string(e.kind()));
        letter.reason = e.what();
        letter.sqlstate = std::string(e.context_value("sqlstate"));
        letter.table = std::string(e.context_value("table"));
        letter.key = std::string(e.context_value("key"));
        letter.attempts = attempts;
        letter.message_id = id;
        letter.body = body;
        return letter;
    }

    void retry(const amqp_basic_properties_t& props, const std::string& body, int attempts,
               const Error& e) {
        PropertiesCopy copy(props, AmqpTable()
                                       .set("x-pgbridge-attempts", std::int64_t{attempts})
                                       .set("x-pgbridge-last-error", e.what()));
        copy.set_expiration(std::to_string(std::max(0, c_.options_.retry_delay_ms)));
        // Through the default exchange straight into the retry queue; when the TTL expires the
        // broker dead-letters it back to pgbridge.NAME with the side as routing key.
        republisher_.publish(
            "", names::retry_queue(c_.options_.topology.bridge, c_.options_.target_side),
            copy.get(), body, c_.options_.connect.timeout_ms);
        ++c_.stats_.retries;
        log::warning("consumer", "apply failed; message will be retried",
                     {{"queue", queue_},
                      {"attempt", std::to_string(attempts)},
                      {"retry_in_ms", std::to_string(c_.options_.retry_delay_ms)},
                      {"table", std::string(e.context_value("table"))},
                      {"error", e.what()}});
    }

    void dead_letter(const amqp_basic_properties_t& props, const std::string& body,
                     const DeadLetter& letter) {
        // The database row first: if the target is down this throws and the message stays.
        c_.dead_letters_.record(letter);
        PropertiesCopy copy(props, AmqpTable()
                                       .set("x-pgbridge-attempts", std::int64_t{letter.attempts})
                                       .set("x-pgbridge-dead-kind", letter.error_kind)
                                       .set("x-pgbridge-dead-reason", letter.reason));
        republisher_.publish(names::dead_letter_exchange(c_.options_.topology.bridge),
                             c_.options_.target_side, copy.get(), body,
                             c_.options_.connect.timeout_ms);
        ++c_.stats_.dead_lettered;
        log::error("consumer", "message dead-lettered",
                   {{"queue", queue_},
                    {"kind", letter.error_kind},
                    {"attempts", std::to_string(letter.attempts)},
                    {"table", letter.table},
                    {"message_id", letter.message_id},
                    {"reason", letter.reason}});
    }

    Consumer& c_;
    AmqpConnection connection_;
    ConfirmedPublisher republisher_;
    std::string queue_;
};

Consumer::Consumer(ConsumerOptions options, BatchHandler& handler, DeadLetterRecorder& dead_letters)
    : options_(std::move(options)), handler_(handler), dead_letters_(dead_letters) {}

Consumer::~Consumer() = default;

void Consumer::stop() {
    stopping_ = true;
}

void Consumer::run() {
    auto backoff = options_.reconnect_min;
    while (!stopping_) {
        bool worked = false;
        try {
            Session session(*this);
            worked = true;
            session.run();
            return;
        } catch (const Error& e) {
            if (stopping_) {
                return;
            }
            if (e.kind() != ErrorKind::Broker && !is_target_unavailable(e)) {
                throw;
            }
            if (worked) {
                backoff = options_.reconnect_min;
            }
            ++stats_.reconnects;
            log::warning("consumer", "connection interrupted; reconnecting",
                         {{"target", options_.target_side},
                          {"retry_in_ms", std::to_string(backoff.count())},
                          {"error", e.what()}});
        }
        const auto until = std::chrono::steady_clock::now() + backoff;
        while (!stopping_ && std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        backoff = std::min(backoff * 2, options_.reconnect_max);
    }
}

}  // namespace pgbridge::transport
