#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <stop_token>
#include <string>

#include <pgbridge/core/error.hpp>
#include <pgbridge/core/lsn.hpp>
#include <pgbridge/core/source_horizon.hpp>
#include <pgbridge/pg/connection.hpp>
#include <pgbridge/source/column_filter.hpp>
#include <pgbridge/source/slot_identity.hpp>
#include <pgbridge/source/transaction_sink.hpp>
#include <pgbridge/source/version_keeper.hpp>

namespace pgbridge::source {

struct CaptureOptions {
    std::string side;
    pg::ConnectOptions connect;
    std::string slot;
    std::string publication;
    // Create `slot` as a temporary slot on each connection (pgbridge tail).
    bool temporary_slot = false;
    // Report durable positions to the server. Off for tail, which must never move the slot.
    bool acknowledge = true;
    // Records each position before it is reported (pgbridge run); null: reported as is.
    std::shared_ptr<SlotJournal> journal;
    // Keep this side's column versions of local writes and give each change its vectors
    // (pgbridge run, and tests of the rules); none for tail.
    std::optional<VersionKeeperOptions> versions;
    // Hand echo transactions (pgbridge origins) to the sink instead of dropping them (tail
    // shows them, marked).
    bool deliver_echo = false;
    bool streaming = true;
    // A transaction that grows past this many bytes is handed to the sink in pieces as it
    // arrives (0: never), so that no transaction size is held in memory. Meant with
    // streaming off: the server then spills a large transaction to its own disk
    // (logical_decoding_work_mem) and sends it once committed, as to a native subscription.
    std::size_t piece_bytes = 0;
    // [[tables]] exclude_columns, in this side's names: left out of every change (ColumnFilter).
    std::map<QualifiedName, std::set<std::string>> excluded_columns;
    // Told what the server says of its WAL end and clock, for the consumer that checks the
    // messages of this side against them (pgbridge run); none for tail.
    std::shared_ptr<SourceHorizon> horizon;
    // Reconnect after failures. Off for tail: a DBA wants the error, not a retry loop.
    bool retry = true;
    std::chrono::milliseconds status_interval{1000};
    // A stream that never pauses still goes to the sink this often: the latency it may add to
    // a change, and what decides the size of each message under a steady stream. A sink that
    // splits what it is given (apply shards) wants it longer, to keep its messages as large.
    std::chrono::microseconds longest_hold{2000};
    // On stop, how long to wait for downstream to make delivered transactions durable.
    std::chrono::milliseconds settle_timeout{5000};
    std::chrono::milliseconds reconnect_min{100};
    std::chrono::milliseconds reconnect_max{10000};
};

// Counters for metrics and status lines; written by the capture thread only.
struct CaptureStats {
    std::atomic<std::uint64_t> transactions{0};
    std::atomic<std::uint64_t> changes{0};
    std::atomic<std::uint64_t> echo_transactions_dropped{0};
    std::atomic<std::uint64_t> reconnects{0};
    std::atomic<std::uint64_t> received_lsn{0};
    std::atomic<std::uint64_t> confirmed_lsn{0};  // last flush position reported
    std::atomic<bool> streaming{false};
};

// Streams one side's slot: decodes pgoutput into whole transactions, drops the ones pgbridge
// itself applied (origin pgbridge_*), hands the rest to the sink, and reports as flushed only
// what the sink says is durable (see FeedbackPosition). Reconnects with exponential backoff
// after connection loss or a sink failure, resuming so that nothing acknowledged is sent again
// and nothing unacknowledged is lost.
class Capture {
  public:
    Capture(CaptureOptions options, TransactionSink& sink);
    ~Capture();
    Capture(const Capture&) = delete;
    Capture& operator=(const Capture&) = delete;

    // Runs until stop(). Returns normally after stop(); throws on errors that a retry cannot
    // fix (malformed stream, missing slot or publication, authentication).
    void run();
    // Thread-safe; wakes run() at once. Not async-signal-safe (a stop request runs the stop
    // callbacks of the waits): a signal is taken on a thread, as `run` and `tail` do.
    void stop();

    const CaptureStats& stats() const { return stats_; }

  private:
    class Session;
    void wake();

    CaptureOptions options_;
    TransactionSink& sink_;
    ColumnFilter filter_;
    std::unique_ptr<VersionKeeper> keeper_;
    CaptureStats stats_;
    std::stop_source stop_;
    int wake_fd_ = -1;
};

// Errors that a reconnect may cure (connection lost, server restarting, slot still held by a
// previous process) as opposed to ones that need a DBA.
bool is_retryable(const Error& error);

}  // namespace pgbridge::source
