#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>

#include <pgbridge/config/signing_keys.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/source_horizon.hpp>
#include <pgbridge/transport/amqp_connection.hpp>
#include <pgbridge/transport/change_batch.hpp>
#include <pgbridge/transport/consumer_channel.hpp>
#include <pgbridge/transport/message_codec.hpp>
#include <pgbridge/transport/topology.hpp>

namespace pgbridge::transport {

// Applies a batch on the target. Returns once the changes are committed (or durably recorded
// as conflicts); throws Error on failure, with table and key in its context where known.
// The real one is the Postgres applier; tests have their own.
class BatchHandler {
  public:
    virtual ~BatchHandler() = default;
    virtual void apply(const ChangeBatch& batch) = 0;
    // The consumer starts consuming: open connections and read descriptions now, so that the
    // first message after a start does not wait for them. A failure here is only logged: the
    // first apply meets it again and handles it as usual.
    virtual void prepare() {}
};

// A message that will not be applied, for pgbridge.dead_letters on the target. Text fields
// may hold anything the message held; the recorder makes them valid text.
struct DeadLetter {
    std::string bridge;
    std::string source_side;
    std::string error_kind;  // a dead_kind, or the ErrorKind of the last failure
    std::string reason;
    std::string sqlstate;
    std::string table;
    std::string key;  // JSON of the key, when the error named one
    std::uint64_t attempts = 0;
    std::string message_id;
    std::string body;  // the message as published (its first max_message_bytes if larger)
    std::uint64_t body_size = 0;
    std::optional<Lsn> first_lsn;
    std::optional<Lsn> last_lsn;
    std::optional<UnixMicros> commit_time;
};

class DeadLetterRecorder {
  public:
    virtual ~DeadLetterRecorder() = default;
    // Records durably; throws Error if it cannot. The consumer waits in place while the
    // target is unreachable; for any other failure the message still goes to the dead-letter
    // queue, and the failure is logged.
    virtual void record(const DeadLetter& letter) = 0;
};

struct ConsumerOptions {
    AmqpConnectOptions connect;
    Topology topology;
    std::string target_side;
    // The apply shard (0-based) whose queues this consumer reads; topology.shards of them.
    std::uint32_t shard = 0;
    std::uint16_t prefetch = 64;
    // Attempts before a message is dead-lettered, and the wait between them (engine.*).
    int max_retries = 3;
    int retry_delay_ms = 1000;
    // A body over this is dead-lettered unread ([rabbitmq] max_message_bytes).
    std::size_t max_message_bytes = 8 * 1024 * 1024;
    // Messages already delivered are applied together up to this many body bytes (and
    // `prefetch` messages): what bounds the memory of one apply group.
    std::size_t max_group_bytes = 8 * 1024 * 1024;
    // With keys, a message without a valid signature by one of them is dead-lettered unread.
    std::vector<SigningKey> signing_keys;
    // What the source side of this queue has sent (core/source_horizon.hpp): a message beyond
    // it is dead-lettered (impossible) before anything of it is applied or recorded as
    // progress. None: not checked (tests of the consumer alone).
    std::shared_ptr<SourceHorizon> source_horizon;
    std::chrono::milliseconds reconnect_min{100};
    std::chrono::milliseconds reconnect_max{10000};
    // Opens the broker side; unset: AMQP connections from `connect`. Unit tests give an
    // in-memory one.
    std::function<std::unique_ptr<ConsumerChannel>(const ConsumerOptions&)> open_channel;
};

struct ConsumerStats {
    std::atomic<std::uint64_t> messages_applied{0};
    std::atomic<std::uint64_t> changes_applied{0};
    std::atomic<std::uint64_t> retries{0};
    std::atomic<std::uint64_t> dead_lettered{0};
    std::atomic<std::uint64_t> dead_letter_records_failed{0};
    std::atomic<std::uint64_t> reconnects{0};
    std::atomic<bool> consuming{false};
};

// Consumes pgbridge.NAME.to.SIDE and acknowledges a message only after the handler has
// committed it, or after it has been durably moved on. Whatever a message holds, it never
// stops the consumer, nor takes its memory past a fixed bound; what happens to it is decided
// by the error policy (core/error_policy.hpp):
// - refused unread or unapplied (over max_message_bytes, not a valid body, another type or
//   format version, another bridge or a source that does not feed this queue, no valid
//   signature with a key set, a position or time beyond what its source has): to the
//   dead-letter queue at once, with a row in pgbridge.dead_letters;
// - a message the handler rejects: to the retry queue, back after retry_delay_ms, and after
//   max_retries failed attempts to the dead-letter queue and pgbridge.dead_letters, while the
//   messages behind it keep flowing;
// - the target unreachable or refusing for a moment: the message stays unacked and is tried
//   again in place: a side that is down makes its direction wait, it loses nothing.
// Reconnects with backoff after the broker goes away; unacked messages come again.
class Consumer {
  public:
    Consumer(ConsumerOptions options, BatchHandler& handler, DeadLetterRecorder& dead_letters);
    ~Consumer();
    Consumer(const Consumer&) = delete;
    Consumer& operator=(const Consumer&) = delete;

    void run();   // until stop()
    void stop();  // thread-safe

    const ConsumerStats& stats() const { return stats_; }

  private:
    class Session;

    ConsumerOptions options_;
    BatchHandler& handler_;
    DeadLetterRecorder& dead_letters_;
    ConsumerStats stats_;
    std::stop_source stop_;
};

// The AMQP ConsumerChannel: consumes options.target_side's queue with options.prefetch.
std::unique_ptr<ConsumerChannel> open_amqp_consumer_channel(const ConsumerOptions& options);

}  // namespace pgbridge::transport
