#include <algorithm>
#include <iterator>
#include <limits>
#include <variant>

#include <fmt/format.h>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/error_policy.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/core/reconnect_loop.hpp>
#include <pgbridge/core/utf8.hpp>
#include <pgbridge/core/wait_for_stop.hpp>
#include <pgbridge/transport/banded_receiver.hpp>
#include <pgbridge/transport/consumer.hpp>
#include <pgbridge/transport/message_codec.hpp>
#include <pgbridge/transport/message_signature.hpp>

namespace pgbridge::transport {
namespace {

constexpr std::uint16_t kChannel = 1;

// Thrown out of a wait when the consumer is asked to stop: the message in hand stays
// unacknowledged, to come again.
struct StopRequested {};

// Two AMQP connections: one consumes, the other publishes the retry and dead-letter copies in
// confirm mode, so that no delivery frame is ever read while waiting for a confirm.
class AmqpConsumerChannel final : public ConsumerChannel {
  public:
    explicit AmqpConsumerChannel(const ConsumerOptions& o)
        : consuming_(o.connect),
          publishing_(o.connect),
          timeout_(o.connect.timeout_ms),
          bands_(band_consumer_tags(o.topology.change_queues(o.target_side, o.shard).size()),
                 o.max_group_bytes, [this](std::chrono::milliseconds wait) {
                     return consuming_.next_delivery(wait, max_body_);
                 }) {
        declare_topology(consuming_, o.topology);
        consuming_.qos(kChannel, o.prefetch);
        const auto queues = o.topology.change_queues(o.target_side, o.shard);
        for (std::size_t band = 0; band < queues.size(); ++band) {
            consuming_.consume(kChannel, queues[band], bands_.consumer_tags()[band]);
        }
        publishing_.confirm_select(kChannel);
        banded_ = queues.size() > 1;
    }

    std::optional<Delivery> receive(std::chrono::milliseconds wait, std::size_t max_body) override {
        if (!banded_) {
            return consuming_.next_delivery(wait, max_body);
        }
        max_body_ = max_body;
        return bands_.receive(wait);
    }
    void ack(std::uint64_t tag) override { consuming_.ack(kChannel, tag); }
    void reject(std::uint64_t tag) override { consuming_.reject(kChannel, tag); }

    void publish(const OutgoingMessage& message) override {
        publishing_.publish(kChannel, message);
        const std::uint64_t sequence = ++published_;
        while (true) {
            auto confirm = publishing_.next_confirm(timeout_);
            if (!confirm) {
                throw Error(ErrorKind::Broker,
                            "no confirm for a republished message within "
                            "timeout_ms")
                    .with("broker", publishing_.server());
            }
            if (confirm->delivery_tag >= sequence) {
                return;
            }
        }
    }

    const std::string& server() const { return consuming_.server(); }

  private:
    static std::vector<std::string> band_consumer_tags(std::size_t bands) {
        std::vector<std::string> tags;
        for (std::size_t band = 0; band < bands; ++band) {
            tags.push_back("pgbridge.band" + std::to_string(band));
        }
        return tags;
    }

    AmqpConnection consuming_;
    AmqpConnection publishing_;
    std::chrono::milliseconds timeout_;
    std::uint64_t published_ = 0;
    // With quorum queues, one consumer per priority band, highest band handed on first.
    std::size_t max_body_ = 0;
    BandedReceiver bands_;
    bool banded_ = false;
};

std::uint64_t saturating_increment(std::uint64_t n) {
    return n == std::numeric_limits<std::uint64_t>::max() ? n : n + 1;
}

// Failed attempts so far, as the retry copies count them; anything else (absent, negative,
// not an integer) counts as none.
std::uint64_t attempts_of(const Delivery& d) {
    const auto n = d.properties.headers.get_int("x-pgbridge-attempts");
    return n && *n > 0 ? static_cast<std::uint64_t>(*n) : 0;
}

// The header value of a count: AMQP carries signed 64-bit integers.
std::int64_t header_count(std::uint64_t n) {
    return static_cast<std::int64_t>(std::min<std::uint64_t>(
        n, static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())));
}

Error refusal(std::string_view kind, std::string message) {
    return Error(ErrorKind::Protocol, std::move(message)).with("refused", std::string(kind));
}

}  // namespace

std::unique_ptr<ConsumerChannel> open_amqp_consumer_channel(const ConsumerOptions& options) {
    return std::make_unique<AmqpConsumerChannel>(options);
}

class Consumer::Session {
  public:
    Session(Consumer& c, ConsumerChannel& channel, std::stop_token stop)
        : c_(c),
          channel_(channel),
          stop_(std::move(stop)),
          queue_(names::shard_queue(c.options_.topology.bridge, c.options_.target_side,
                                    c.options_.shard, c.options_.topology.shards)) {}

    void run() {
        const ConsumerOptions& o = c_.options_;
        while (!stop_.stop_requested()) {
            auto first = channel_.receive(std::chrono::milliseconds(200), o.max_message_bytes);
            if (!first) {
                continue;
            }
            // Whatever else the broker has already sent is applied with it in one target
            // transaction (one commit for many messages when they come faster than one commit
            // each can take), up to the prefetch window and max_group_bytes of bodies.
            std::vector<Delivery> group;
            std::size_t bytes = first->body.size();
            group.push_back(std::move(*first));
            while (group.size() < std::max<std::size_t>(1, o.prefetch) &&
                   bytes < o.max_group_bytes) {
                auto next = channel_.receive(std::chrono::milliseconds(0), o.max_message_bytes);
                if (!next) {
                    break;
                }
                bytes += next->body.size();
                group.push_back(std::move(*next));
            }
            handle_group(group);
        }
    }

  private:
    // A delivery and what it holds: its batch, or why it is refused without an attempt.
    struct Inspected {
        Delivery* delivery = nullptr;
        std::variant<ChangeBatch, Error> content;
        bool ok() const { return std::holds_alternative<ChangeBatch>(content); }
        ChangeBatch& batch() { return std::get<ChangeBatch>(content); }
    };

    // Refuses, without an attempt, what cannot be applied whatever the target holds.
    Inspected inspect(Delivery& d) const {
        const ConsumerOptions& o = c_.options_;
        Inspected out{&d, Error(ErrorKind::Internal, "not inspected")};
        if (!d.body_complete()) {
            out.content = refusal(dead_kind::kOversized,
                                  fmt::format("message body of {} bytes is over "
                                              "rabbitmq.max_message_bytes ({}); not read",
                                              d.body_size, o.max_message_bytes));
            return out;
        }
        if (d.properties.type != kMessageType) {
            out.content = refusal(
                dead_kind::kUnsupported,
                d.properties.type
                    ? fmt::format("message type '{}' is not {}", to_valid_text(*d.properties.type),
                                  kMessageType)
                    : fmt::format("message has no type property; pgbridge reads {}", kMessageType));
            return out;
        }
        // Whatever fails from here (out of memory included) is this message's outcome, never
        // the consumer's end.
        try {
            // Before the body is parsed: with a key set, nothing unsigned is read at all.
            if (!o.signing_keys.empty()) {
                const auto check = check_signature(
                    o.signing_keys, d.properties.headers.get_string(kSignatureHeader),
                    *d.properties.type, d.body);
                if (check != SignatureCheck::Valid) {
                    throw refusal(check == SignatureCheck::Missing ? dead_kind::kUnsigned
                                                                   : dead_kind::kForged,
                                  std::string(describe(check)));
                }
            }
            ChangeBatch batch = decode_body(d.body);
            if (batch.bridge != o.topology.bridge) {
                throw refusal(dead_kind::kMisrouted,
                              fmt::format("message of bridge '{}' in a queue of bridge '{}'",
                                          to_valid_text(batch.bridge), o.topology.bridge));
            }
            const auto& sides = o.topology.sides;
            if (batch.source_side == o.target_side ||
                std::find(sides.begin(), sides.end(), batch.source_side) == sides.end()) {
                throw refusal(dead_kind::kMisrouted,
                              fmt::format("message from side '{}' in the queue of side '{}', "
                                          "which only the other side of the bridge feeds",
                                          to_valid_text(batch.source_side), o.target_side));
            }
            if (batch.shard &&
                (batch.shard->count != o.topology.shards || batch.shard->index != o.shard)) {
                throw refusal(dead_kind::kOtherShard,
                              fmt::format("message of apply shard {} of {} in the queue of shard "
                                          "{} of {}: [engine] apply_workers changed while "
                                          "messages waited",
                                          batch.shard->index + 1, batch.shard->count, o.shard + 1,
                                          o.topology.shards));
            }
            out.content = std::move(batch);
        } catch (...) {
            out.content = as_error(std::current_exception());
        }
        return out;
    }

    // Refuses a message that claims more than its source has sent (core/source_horizon.hpp),
    // before any of it is applied or recorded as progress. While the source cannot be asked,
    // the message waits in place, unacknowledged.
    void check_horizon(Inspected& item) {
        SourceHorizon* horizon = c_.options_.source_horizon.get();
        if (!horizon) {
            return;
        }
        const ChangeBatch& batch = item.batch();
        Lsn end;
        UnixMicros time = kMinUnixMicros;
        for (const auto& t : batch.transactions) {
            // An initial copy's end LSNs only number its transactions after the snapshot's
            // position (its commit LSN); they are never recorded as progress.
            end = std::max(
                {end, t.commit_lsn, batch.kind == BatchKind::Live ? t.end_lsn : t.commit_lsn});
            time = std::max(time, t.commit_time);
        }
        SourceHorizon::Check verdict;
        waiting_in_place(
            [&] {
                verdict = horizon->check(end, time);
                if (verdict.verdict == SourceHorizon::Verdict::Unknown) {
                    // No SQLSTATE: the policy's "server not reachable", waited out in place.
                    throw Error(ErrorKind::Database, verdict.reason);
                }
            },
            "cannot check the message against its source yet; waiting in place", end.to_string());
        if (verdict.verdict == SourceHorizon::Verdict::Impossible) {
            item.content = refusal(dead_kind::kImpossible, verdict.reason)
                               .with("lsn", end.to_string())
                               .with("source", batch.source_side);
        }
    }

    // Applies a group: each run of consecutive valid messages of one source and kind in one
    // target transaction, acknowledged together after the commit. If a run fails for a
    // reason other than waiting, each of its messages is applied on its own, so that only the
    // message at fault is retried or dead-lettered.
    void handle_group(std::vector<Delivery>& group) {
        std::vector<Inspected> items;
        items.reserve(group.size());
        for (auto& d : group) {
            items.push_back(inspect(d));
            if (items.back().ok()) {
                check_horizon(items.back());
            }
        }
        std::size_t i = 0;
        while (i < items.size()) {
            if (!items[i].ok()) {
                refuse(*items[i].delivery, std::get<Error>(items[i].content));
                ++i;
                continue;
            }
            std::size_t end = i + 1;
            // A part of a large transaction goes alone: the applier keeps it until it holds
            // every part.
            while (end < items.size() && items[end].ok() && !items[i].batch().chunk &&
                   !items[end].batch().chunk && items[end].batch().kind == items[i].batch().kind &&
                   items[end].batch().source_side == items[i].batch().source_side) {
                ++end;
            }
            handle_run(items, i, end);
            i = end;
        }
    }

    void handle_run(std::vector<Inspected>& items, std::size_t begin, std::size_t end) {
        if (end - begin == 1) {
            handle_one(*items[begin].delivery, items[begin].batch());
            return;
        }
        // The transactions move into one batch and, if it fails, back to their messages.
        ChangeBatch merged;
        merged.bridge = items[begin].batch().bridge;
        merged.source_side = items[begin].batch().source_side;
        merged.kind = items[begin].batch().kind;
        std::vector<std::size_t> counts;
        for (std::size_t k = begin; k < end; ++k) {
            auto& txns = items[k].batch().transactions;
            counts.push_back(txns.size());
            std::move(txns.begin(), txns.end(), std::back_inserter(merged.transactions));
            txns.clear();
        }
        bool applied = false;
        try {
            apply_waiting_for_target(merged);
            applied = true;
        } catch (const StopRequested&) {
            throw;
        } catch (...) {
            // Which message is at fault is found one by one below.
        }
        if (!applied) {
            auto next = merged.transactions.begin();
            for (std::size_t k = begin; k < end; ++k) {
                const auto count = static_cast<std::ptrdiff_t>(counts[k - begin]);
                auto& txns = items[k].batch().transactions;
                std::move(next, next + count, std::back_inserter(txns));
                next += count;
            }
            merged.transactions.clear();
            for (std::size_t k = begin; k < end; ++k) {
                handle_one(*items[k].delivery, items[k].batch());
            }
            return;
        }
        for (std::size_t k = begin; k < end; ++k) {
            channel_.ack(items[k].delivery->delivery_tag);
        }
        c_.stats_.messages_applied += end - begin;
        c_.stats_.changes_applied += merged.change_count();
    }

    void handle_one(const Delivery& d, const ChangeBatch& batch) {
        try {
            apply_waiting_for_target(batch);
        } catch (const StopRequested&) {
            throw;
        } catch (...) {
            const Error e = as_error(std::current_exception());
            const std::uint64_t attempts = saturating_increment(attempts_of(d));
            const bool retry =
                classify_apply_failure(e) == FailureAction::Retry &&
                attempts < static_cast<std::uint64_t>(std::max(1, c_.options_.max_retries));
            if (retry) {
                send_to_retry(d, attempts, e);
            } else {
                DeadLetter letter = letter_for(d, e, attempts);
                letter.source_side = batch.source_side;
                letter.first_lsn = batch.first_commit_lsn();
                letter.last_lsn = batch.last_end_lsn();
                letter.commit_time = batch.last_commit_time();
                dead_letter(d, letter);
            }
            return;
        }
        channel_.ack(d.delivery_tag);
        ++c_.stats_.messages_applied;
        c_.stats_.changes_applied += batch.change_count();
    }

    // A message refused without an attempt.
    void refuse(const Delivery& d, const Error& e) {
        DeadLetter letter = letter_for(d, e, attempts_of(d));
        const std::string_view kind = e.context_value("refused");
        letter.error_kind = kind.empty() ? std::string(dead_kind::kUnparseable) : std::string(kind);
        letter.source_side = d.properties.headers.get_string("x-pgbridge-source").value_or("");
        dead_letter(d, letter);
    }

    // Runs a step that needs the target, waiting in place while the policy says so (the
    // target unreachable or refusing for a moment): the message stays unacknowledged, no
    // attempt is counted. Any other failure is thrown, as an Error, to the caller.
    template <typename Step>
    void waiting_in_place(Step&& step, const char* waiting, const std::string& lsn) {
        // Short at first (a deadlock, a restart), then longer (a column to be added by hand),
        // so that a long wait neither hammers the target nor floods the log.
        auto delay = std::chrono::milliseconds(std::max(100, c_.options_.retry_delay_ms));
        while (true) {
            try {
                step();
                return;
            } catch (...) {
                const Error e = as_error(std::current_exception());
                if (stop_.stop_requested()) {
                    throw StopRequested{};
                }
                if (classify_apply_failure(e) != FailureAction::WaitInPlace) {
                    throw e;
                }
                log::warning("consumer",
                             e.context_value("waiting_for").empty()
                                 ? waiting
                                 : "the target lacks a column the source sends; waiting for it "
                                   "(docs/schema-changes.md)",
                             {{"queue", queue_},
                              {"last_lsn", lsn},
                              {"retry_in_ms", std::to_string(delay.count())},
                              {"error", e.what()}});
                pause(delay);
                if (delay < kLongestWait) {
                    delay = std::min(delay * 2, kLongestWait);
                }
            }
        }
    }

    void apply_waiting_for_target(const ChangeBatch& batch) {
        waiting_in_place([&] { c_.handler_.apply(batch); }, "target unavailable; retrying in place",
                         batch.last_end_lsn().to_string());
    }

    static constexpr std::chrono::milliseconds kLongestWait{5000};

    void pause(std::chrono::milliseconds delay) const {
        if (wait_for_stop(stop_, delay)) {
            throw StopRequested{};
        }
    }

    DeadLetter letter_for(const Delivery& d, const Error& e, std::uint64_t attempts) const {
        DeadLetter letter;
        letter.bridge = c_.options_.topology.bridge;
        letter.error_kind = std::string(to_string(e.kind()));
        letter.reason = e.what();
        letter.sqlstate = std::string(e.context_value("sqlstate"));
        letter.table = std::string(e.context_value("table"));
        letter.key = std::string(e.context_value("key"));
        letter.attempts = attempts;
        letter.message_id = d.properties.message_id.value_or("");
        letter.body = d.body;
        letter.body_size = d.body_size;
        return letter;
    }

    // A copy of the delivery with extra headers, for the retry and dead-letter queues.
    static OutgoingMessage copy_of(const Delivery& d, std::string exchange, std::string routing_key,
                                   const AmqpTable& extra) {
        OutgoingMessage m{std::move(exchange), std::move(routing_key), d.properties, d.body};
        m.properties.persistent = true;
        m.properties.expiration.reset();
        for (const auto& [key, value] : extra.entries()) {
            m.properties.headers.set(key, value);
        }
        return m;
    }

    void send_to_retry(const Delivery& d, std::uint64_t attempts, const Error& e) {
        const ConsumerOptions& o = c_.options_;
        OutgoingMessage m = copy_of(d, "", o.topology.retry_queue(o.target_side, o.shard),
                                    AmqpTable()
                                        .set("x-pgbridge-attempts", header_count(attempts))
                                        .set("x-pgbridge-last-error", to_valid_text(e.what())));
        // When the TTL expires the broker dead-letters it back to pgbridge.NAME with the side
        // as routing key.
        m.properties.expiration = std::to_string(std::max(0, o.retry_delay_ms));
        channel_.publish(m);
        channel_.ack(d.delivery_tag);
        ++c_.stats_.retries;
        log::warning("consumer", "apply failed; message will be retried",
                     {{"queue", queue_},
                      {"attempt", std::to_string(attempts)},
                      {"retry_in_ms", std::to_string(o.retry_delay_ms)},
                      {"table", to_valid_text(e.context_value("table"))},
                      {"error", to_valid_text(e.what())}});
    }

    void dead_letter(const Delivery& d, const DeadLetter& letter) {
        record(letter);
        if (d.body_complete()) {
            channel_.publish(
                copy_of(d, names::dead_letter_exchange(c_.options_.topology.bridge),
                        c_.options_.target_side,
                        AmqpTable()
                            .set("x-pgbridge-attempts", header_count(letter.attempts))
                            .set("x-pgbridge-dead-kind", letter.error_kind)
                            .set("x-pgbridge-dead-reason", to_valid_text(letter.reason))));
            channel_.ack(d.delivery_tag);
        } else {
            // Never read whole, so it cannot be copied: the broker moves it, unchanged.
            channel_.reject(d.delivery_tag);
        }
        ++c_.stats_.dead_lettered;
        log::error("consumer", "message dead-lettered",
                   {{"queue", queue_},
                    {"kind", letter.error_kind},
                    {"attempts", std::to_string(letter.attempts)},
                    {"table", to_valid_text(letter.table)},
                    {"message_id", to_valid_text(letter.message_id)},
                    {"reason", to_valid_text(letter.reason)}});
    }

    // The row in pgbridge.dead_letters: waits in place while the target is unreachable; if
    // it cannot be written for any other reason, the message still goes to the dead-letter
    // queue, where nothing is lost, and the failure is logged and counted.
    void record(const DeadLetter& letter) {
        try {
            waiting_in_place([&] { c_.dead_letters_.record(letter); },
                             "target unavailable for a dead letter; retrying in place",
                             letter.last_lsn ? letter.last_lsn->to_string() : std::string());
        } catch (const Error& e) {
            ++c_.stats_.dead_letter_records_failed;
            log::error("consumer",
                       "could not record a dead letter in pgbridge.dead_letters; the message is "
                       "in the dead-letter queue",
                       {{"queue", queue_}, {"error", to_valid_text(e.what())}});
        }
    }

    Consumer& c_;
    ConsumerChannel& channel_;
    std::stop_token stop_;
    std::string queue_;
};

Consumer::Consumer(ConsumerOptions options, BatchHandler& handler, DeadLetterRecorder& dead_letters)
    : options_(std::move(options)), handler_(handler), dead_letters_(dead_letters) {}

Consumer::~Consumer() = default;

void Consumer::stop() {
    stop_.request_stop();
}

void Consumer::run() {
    const ReconnectOptions reconnect{.area = "consumer",
                                     .what = "connection interrupted; reconnecting",
                                     .min = options_.reconnect_min,
                                     .max = options_.reconnect_max,
                                     .reconnects = &stats_.reconnects};
    bool worked = false;  // the last session reached the broker
    const auto session = [&](std::stop_token stop) {
        worked = false;
        auto channel = options_.open_channel ? options_.open_channel(options_)
                                             : open_amqp_consumer_channel(options_);
        worked = true;
        stats_.consuming = true;
        log::info("consumer", "consuming",
                  {{"queue", names::shard_queue(options_.topology.bridge, options_.target_side,
                                                options_.shard, options_.topology.shards)}});
        try {
            handler_.prepare();
        } catch (const std::exception& e) {
            log::debug("consumer", "the target is not ready; the first apply tries again",
                       {{"target", options_.target_side}, {"error", e.what()}});
        }
        Session(*this, *channel, std::move(stop)).run();
    };
    const auto interrupted = [&](std::exception_ptr failure) {
        stats_.consuming = false;
        const Error e = as_error(failure);
        if (classify_session_failure(e) == FailureAction::Fatal) {
            throw e;
        }
        return Interruption{e.what(), worked, {{"target", options_.target_side}}};
    };
    run_reconnecting(stop_.get_token(), reconnect, session, interrupted);
    stats_.consuming = false;
}

}  // namespace pgbridge::transport
