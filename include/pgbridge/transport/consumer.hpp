#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <pgbridge/core/error.hpp>
#include <pgbridge/transport/amqp_connection.hpp>
#include <pgbridge/transport/change_batch.hpp>
#include <pgbridge/transport/topology.hpp>

namespace pgbridge::transport {

// Applies a batch on the target. Returns once the changes are committed (or durably recorded
// as conflicts); throws Error on failure, with table and key in its context where known.
// The real one is the Postgres applier; tests have their own.
class BatchHandler {
  public:
    virtual ~BatchHandler() = default;
    virtual void apply(const ChangeBatch& batch) = 0;
};

// A message that will not be applied, for pgbridge.dead_letters on the target.
struct DeadLetter {
    std::string bridge;
    std::string source_side;
    std::string error_kind;  // unparseable, or the ErrorKind of the last failure
    std::string reason;
    std::string sqlstate;
    std::string table;
    std::string key;  // JSON of the key, when the error named one
    int attempts = 0;
    std::string message_id;
    std::string body;  // the message as published, for replay
    std::optional<Lsn> first_lsn;
    std::optional<Lsn> last_lsn;
    std::optional<UnixMicros> commit_time;
};

class DeadLetterRecorder {
  public:
    virtual ~DeadLetterRecorder() = default;
    // Records durably; throws Error if it cannot (the message then stays in its queue).
    virtual void record(const DeadLetter& letter) = 0;
};

struct ConsumerOptions {
    AmqpConnectOptions connect;
    Topology topology;
    std::string target_side;
    std::uint16_t prefetch = 64;
    // Attempts before a message is dead-lettered, and the wait between them (engine.*).
    int max_retries = 3;
    int retry_delay_ms = 1000;
    std::chrono::milliseconds reconnect_min{100};
    std::chrono::milliseconds reconnect_max{10000};
};

struct ConsumerStats {
    std::atomic<std::uint64_t> messages_applied{0};
    std::atomic<std::uint64_t> changes_applied{0};
    std::atomic<std::uint64_t> retries{0};
    std::atomic<std::uint64_t> dead_lettered{0};
    std::atomic<std::uint64_t> reconnects{0};
    std::atomic<bool> consuming{false};
};

// Consumes pgbridge.NAME.to.SIDE with a prefetch window and acknowledges a message only after
// the handler has committed it, or after it has been durably moved on:
// - an unparseable message goes to the dead-letter queue at once;
// - a message the handler rejects goes to the retry queue, back after retry_delay_ms, and
//   after max_retries failed attempts to the dead-letter queue (reason in its headers) and to
//   pgbridge.dead_letters, while the messages behind it keep flowing;
// - when the target is unreachable (a connection-level error), the message stays unacked and
//   is tried again in place: a side that is down makes its direction wait, it loses nothing.
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
    std::atomic<bool> stopping_{false};
};

// Whether an apply failure means "the target is unreachable right now" (wait and retry in
// place) rather than "this message cannot be applied" (count an attempt).
bool is_target_unavailable(const Error& error);

}  // namespace pgbridge::transport
