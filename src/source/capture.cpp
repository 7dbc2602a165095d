#include <algorithm>
#include <sys/eventfd.h>
#include <unistd.h>

#include <fmt/format.h>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/error_policy.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/core/reconnect_loop.hpp>
#include <pgbridge/pgoutput/transaction_assembler.hpp>
#include <pgbridge/source/capture.hpp>
#include <pgbridge/source/feedback_position.hpp>
#include <pgbridge/source/replication_connection.hpp>

namespace pgbridge::source {

bool is_retryable(const Error& error) {
    return classify_session_failure(error) == FailureAction::Reconnect;
}

namespace {

using Clock = std::chrono::steady_clock;

// Marks failures of the sink so the capture knows to rewind to the durable position.
struct SinkFailure {
    Error error;
};

}  // namespace

// One connection's life: connect, stream, acknowledge, until stop or failure.
class Capture::Session {
  public:
    Session(Capture& capture, FeedbackPosition& feedback, std::stop_token stop)
        : c_(capture),
          feedback_(feedback),
          stop_(std::move(stop)),
          assembler_(capture.options_.side) {}

    void run() {
        const CaptureOptions& o = c_.options_;
        ReplicationConnection conn(o.connect);
        if (o.temporary_slot) {
            conn.create_temporary_slot(o.slot);
        }
        if (o.journal) {
            o.journal->verify_slot();
        }
        auto primary_keys = conn.publication_primary_keys(o.publication);
        if (c_.keeper_) {
            recorded_at_start_ = c_.keeper_->start_session(primary_keys);
        }
        assembler_.set_primary_keys(std::move(primary_keys));
        assembler_.set_piece_bytes(o.piece_bytes);
        if (!o.deliver_echo) {
            assembler_.set_skipped_origins(names::is_pgbridge_origin);
        }
        try {
            c_.sink_.open();
        } catch (const Error& e) {
            throw SinkFailure{e};
        }
        StartReplicationOptions start;
        start.slot = o.slot;
        start.publication = o.publication;
        start.start = o.temporary_slot ? Lsn() : feedback_.resume_position();
        start.streaming = o.streaming;
        conn.start_replication(start);
        c_.stats_.streaming = true;
        log::info("capture", "streaming",
                  {{"side", o.side}, {"slot", o.slot}, {"from_lsn", start.start.to_string()}});

        auto next_status = Clock::now();
        while (!stop_.stop_requested()) {
            const auto wait = std::max(
                std::chrono::milliseconds(0),
                std::chrono::duration_cast<std::chrono::milliseconds>(next_status - Clock::now()));
            auto message = conn.next(std::chrono::milliseconds(0));
            if (message && unflushed_since_ && Clock::now() - *unflushed_since_ >= o.longest_hold) {
                flush_sink();  // a stream that never pauses still goes out every longest_hold
            }
            if (!message) {
                // Caught up with the server: let the sink send what it batches.
                flush_sink();
                message = conn.next(idle_wait(wait), c_.wake_fd_, confirms_fd());
            }
            bool reply_requested = false;
            if (message) {
                if (auto* data = std::get_if<XLogData>(&*message)) {
                    if (o.horizon) {
                        o.horizon->observe(data->server_wal_end, data->send_time);
                    }
                    written_ = std::max(written_, data->wal_start);
                    auto txn = assembler_.feed(data->payload);
                    for (auto& piece : assembler_.take_pieces()) {
                        handle_piece(std::move(piece));
                    }
                    for (const auto& request : assembler_.take_standalone_messages()) {
                        handle_standalone(request);
                    }
                    if (txn) {
                        handle(std::move(*txn));
                    }
                } else {
                    const auto& keepalive = std::get<PrimaryKeepalive>(*message);
                    if (o.horizon) {
                        o.horizon->observe(keepalive.sent_up_to, keepalive.send_time);
                    }
                    feedback_.keepalive(keepalive.sent_up_to, assembler_.holds_partial_data());
                    if (!assembler_.holds_partial_data()) {
                        written_ = std::max(written_, keepalive.sent_up_to);
                        pass(keepalive.sent_up_to);
                    }
                    reply_requested = keepalive.reply_requested;
                }
                c_.stats_.received_lsn = written_.value;
                received_at_ = Clock::now();
            }
            if (reply_requested || Clock::now() >= next_status) {
                send_status(conn);
                next_status = Clock::now() + o.status_interval;
            } else if (wants_position()) {
                // The applier of the other direction waits for this side's local writes to
                // be recorded up to a position; the server's reply says how far it has sent.
                send_status(conn, false, /*reply_requested=*/true);
                reply_asked_ = Clock::now();
            }
        }
        // Leave the slot as current as downstream allows before closing.
        try {
            flush_sink();
            c_.sink_.settle(o.settle_timeout);
            record_durable();
        } catch (const SinkFailure& f) {
            log::warning("capture", "could not hand over the last transactions before stopping",
                         {{"side", o.side}, {"error", f.error.what()}});
        }
        send_status(conn, /*closing=*/true);
        c_.stats_.streaming = false;
    }

  private:
    void handle(SourceTransaction txn) {
        const CaptureOptions& o = c_.options_;
        const Lsn end = txn.end_lsn;
        if (end <= feedback_.resume_position()) {
            log::debug("capture", "skipping a transaction received before",
                       {{"side", o.side}, {"lsn", end.to_string()}});
            return;
        }
        const bool echo = txn.origin && names::is_pgbridge_origin(*txn.origin);
        if (echo && !o.deliver_echo) {
            ++c_.stats_.echo_transactions_dropped;
            feedback_.skipped(end);
            pass(end);
            log::debug("capture", "dropped a transaction pgbridge applied (no echo)",
                       {{"side", o.side}, {"origin", *txn.origin}, {"lsn", end.to_string()}});
            return;
        }
        if (c_.keeper_ && end <= recorded_at_start_) {
            // Recorded after the broker confirmed it: it is there already.
            feedback_.skipped(end);
            pass(end);
            return;
        }
        if (c_.keeper_ && txn.in_pieces) {
            // The piece that commits a large transaction.
            deliver_piece(std::move(txn));
            c_.keeper_->piece_committed(end);
            feedback_.delivered(end);
            return;
        }
        if (c_.keeper_) {
            try {
                c_.keeper_->note_received(txn);
            } catch (const Error& e) {
                throw SinkFailure{e};
            }
            note_unflushed();
            held_.push_back(std::move(txn));
            if (held_.size() >= kHeldTransactions) {
                stamp_held();
            }
            return;
        }
        deliver(std::move(txn));
    }

    // An apply-only worker of this bridge waits for this side's local writes to be recorded.
    void handle_standalone(const LogicalMessage& message) {
        const auto& versions = c_.options_.versions;
        if (c_.keeper_ && versions && message.prefix == names::kVersionsWantedPrefix &&
            message.content == versions->bridge) {
            c_.keeper_->request_announcement(message.lsn);
        }
    }

    void deliver(SourceTransaction txn) {
        note_unflushed();
        const Lsn end = txn.end_lsn;
        c_.filter_.apply(txn);
        ++c_.stats_.transactions;
        c_.stats_.changes += txn.changes.size();
        try {
            c_.sink_.deliver(std::move(txn));
        } catch (const Error& e) {
            throw SinkFailure{e};
        }
        feedback_.delivered(end);
    }

    // Stamps the held transactions with their versions (one read of the keys they touch) and
    // hands them on, in order.
    void stamp_held() {
        if (held_.empty()) {
            return;
        }
        std::vector<SourceTransaction> batch = std::exchange(held_, {});
        try {
            c_.keeper_->stamp(batch);
        } catch (const Error& e) {
            throw SinkFailure{e};  // replayed from what is durable, counted from the record
        }
        for (auto& txn : batch) {
            deliver(std::move(txn));
        }
        if (passed_while_held_.valid()) {
            c_.keeper_->passed(std::exchange(passed_while_held_, Lsn()));
        }
    }

    // A position with no local transaction before it that is not stamped yet.
    void pass(Lsn lsn) {
        if (!c_.keeper_) {
            return;
        }
        c_.keeper_->decoded(lsn);
        if (!held_.empty()) {
            passed_while_held_ = std::max(passed_while_held_, lsn);
            return;
        }
        c_.keeper_->passed(lsn);
    }

    // Waits for the whole transactions handed on so far to be durable and recorded: a piece's
    // versions are written before it goes out, after theirs.
    void record_all_pending() {
        stamp_held();
        if (!c_.keeper_->has_pending()) {
            return;
        }
        flush_sink();
        c_.sink_.settle(c_.options_.settle_timeout);
        record_durable();
        if (c_.keeper_->has_pending()) {
            throw SinkFailure{Error(ErrorKind::Broker,
                                    "the broker did not confirm the transactions before a large "
                                    "one in time")
                                  .with("side", c_.options_.side)};
        }
    }

    void record_durable() {
        if (c_.keeper_ && c_.keeper_->has_pending()) {
            try {
                c_.keeper_->record_durable(c_.sink_.durable_lsn());
            } catch (const Error& e) {
                throw SinkFailure{e};
            }
        }
    }

    void deliver_piece(SourceTransaction piece) {
        record_all_pending();
        try {
            c_.keeper_->stamp_piece(piece);
        } catch (const Error& e) {
            throw SinkFailure{e};
        }
        hand_over_piece(std::move(piece));
    }

    // A piece on to the sink as it is, its excluded columns left out.
    void hand_over_piece(SourceTransaction piece) {
        c_.filter_.apply(piece);
        c_.stats_.changes += piece.changes.size();
        try {
            c_.sink_.deliver(std::move(piece));
        } catch (const Error& e) {
            throw SinkFailure{e};
        }
    }

    // How long to wait for the server when idle. Versions that wait for the broker's confirms
    // are woken by the confirms themselves (confirms_fd), not by polling; a bound remains for
    // confirms a TLS layer may hold where poll does not see them. A position the applier of
    // the other direction waits for is asked of the server again every millisecond.
    std::chrono::milliseconds idle_wait(std::chrono::milliseconds wait) const {
        if (c_.keeper_ && c_.keeper_->wanted() && !assembler_.holds_partial_data()) {
            return std::min(wait, std::chrono::milliseconds(1));  // to ask when quiet
        }
        if (c_.keeper_ && c_.keeper_->has_pending()) {
            const auto now = Clock::now();
            if (c_.keeper_->record_due(now)) {
                return std::min(wait, c_.sink_.durable_fd() >= 0 ? std::chrono::milliseconds(20)
                                                                 : std::chrono::milliseconds(1));
            }
            const auto until_due =
                std::chrono::ceil<std::chrono::milliseconds>(c_.keeper_->record_deadline() - now);
            return std::min(wait, std::max(until_due, std::chrono::milliseconds(1)));
        }
        return wait;
    }

    // Readable when the sink's durable position may have moved, while recording waits for it.
    int confirms_fd() const {
        return c_.keeper_ && c_.keeper_->record_due(Clock::now()) ? c_.sink_.durable_fd() : -1;
    }

    // Asked of the server only while its stream is quiet: while transactions come, each
    // one moves the position on its own.
    bool wants_position() const {
        const auto now = Clock::now();
        return c_.keeper_ && c_.keeper_->wanted() && !assembler_.holds_partial_data() &&
               now - reply_asked_ >= std::chrono::milliseconds(1) &&
               now - received_at_ >= std::chrono::milliseconds(1);
    }

    // A piece of a transaction too large to hold: on to the sink at once. What decides its
    // fate (echo, received before) is known from its Begin and Origin already.
    void handle_piece(SourceTransaction piece) {
        const CaptureOptions& o = c_.options_;
        if (piece.commit_lsn <= feedback_.resume_position()) {
            return;
        }
        if (piece.origin && names::is_pgbridge_origin(*piece.origin) && !o.deliver_echo) {
            return;  // dropped with its commit (handle)
        }
        if (c_.keeper_) {
            if (piece.commit_lsn > recorded_at_start_) {
                deliver_piece(std::move(piece));
            }
            return;
        }
        hand_over_piece(std::move(piece));
    }

    void flush_sink() {
        unflushed_since_.reset();
        try {
            if (c_.keeper_) {
                stamp_held();
            }
            c_.sink_.flush();
            if (c_.keeper_ && c_.keeper_->record_due(Clock::now())) {
                record_durable();
            }
        } catch (const Error& e) {
            throw SinkFailure{e};
        }
    }

    void send_status(ReplicationConnection& conn, bool closing = false,
                     bool reply_requested = false) {
        Lsn flush;
        if (c_.options_.acknowledge) {
            Lsn durable = c_.sink_.durable_lsn();
            bool versions_behind = false;
            if (c_.keeper_) {
                if (!closing) {
                    record_durable();
                }
                // Not past a local transaction whose versions are not recorded: a restart
                // from the slot must stream it again.
                if (c_.keeper_->reached() < durable) {
                    durable = c_.keeper_->reached();
                    versions_behind = true;
                }
            }
            flush = feedback_.flush_position(durable, assembler_.holds_partial_data());
            if (versions_behind) {
                // No flush position this time rather than a lower one (see below).
                flush = Lsn();
            }
            if (c_.options_.journal && c_.options_.journal->allow(flush, closing) < flush) {
                // Not recorded yet: no flush position this time. Not a lower one: a server
                // shutting down waits for its walsenders until the reported flush position
                // reaches what they sent, or, when none is reported, the write position.
                flush = Lsn();
            }
        }
        conn.send_status(std::max(written_, flush), flush, reply_requested);
        if (flush.valid()) {
            c_.stats_.confirmed_lsn = flush.value;
        }
    }

    // Transactions wait for the stream to pause before they are stamped and sent (one read
    // and one message for all of them), but no longer than options.longest_hold.
    void note_unflushed() {
        if (!unflushed_since_) {
            unflushed_since_ = Clock::now();
        }
    }

    static constexpr std::size_t kHeldTransactions = 64;

    Capture& c_;
    FeedbackPosition& feedback_;
    std::stop_token stop_;
    pgoutput::TransactionAssembler assembler_;
    Lsn written_;
    // With versions kept: local transactions received and not yet stamped, the positions
    // passed meanwhile, and what was recorded before this session began.
    std::vector<SourceTransaction> held_;
    Lsn passed_while_held_;
    Lsn recorded_at_start_;
    Clock::time_point reply_asked_{};
    Clock::time_point received_at_{};
    std::optional<Clock::time_point> unflushed_since_;
};

Capture::Capture(CaptureOptions options, TransactionSink& sink)
    : options_(std::move(options)),
      sink_(sink),
      filter_(options_.excluded_columns),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (wake_fd_ < 0) {
        throw Error(ErrorKind::Internal, "cannot create an eventfd").with("side", options_.side);
    }
    if (options_.versions) {
        keeper_ = std::make_unique<VersionKeeper>(*options_.versions);
        if (options_.versions->watermark) {
            options_.versions->watermark->set_nudge([this] { wake(); });
        }
    }
}

Capture::~Capture() {
    if (options_.versions && options_.versions->watermark) {
        options_.versions->watermark->set_nudge(nullptr);
    }
    ::close(wake_fd_);
}

void Capture::wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = ::write(wake_fd_, &one, sizeof one);
}

void Capture::stop() {
    stop_.request_stop();
    wake();  // the session waits on the server's socket and this eventfd
}

void Capture::run() {
    FeedbackPosition feedback;
    const ReconnectOptions reconnect{.area = "capture",
                                     .what = "replication interrupted; reconnecting",
                                     .min = options_.reconnect_min,
                                     .max = options_.reconnect_max,
                                     .reconnects = &stats_.reconnects};
    const auto interrupted = [&](std::exception_ptr failure) {
        // The last session worked until the server went away: retry quickly. A sink that
        // fails (the broker is down) keeps the backoff growing.
        bool progressed = stats_.streaming;
        std::string error;
        try {
            std::rethrow_exception(failure);
        } catch (const SinkFailure& f) {
            if (!options_.retry || !is_retryable(f.error)) {
                throw f.error;
            }
            // Downstream lost what it had not made durable: replay from there.
            Lsn durable = sink_.durable_lsn();
            if (keeper_) {
                durable = keeper_->rewind(durable);
            }
            feedback.rewind_to(durable);
            sink_.rewind(feedback.resume_position());
            error = f.error.what();
            progressed = false;
        } catch (const Error& e) {
            if (!options_.retry || !is_retryable(e)) {
                stats_.streaming = false;
                throw;
            }
            error = e.what();
        }
        stats_.streaming = false;
        return Interruption{std::move(error),
                            progressed,
                            {{"side", options_.side},
                             {"slot", options_.slot},
                             {"resume_lsn", feedback.resume_position().to_string()}}};
    };
    run_reconnecting(
        stop_.get_token(), reconnect,
        [&](std::stop_token stop) { Session(*this, feedback, std::move(stop)).run(); },
        interrupted);
}

}  // namespace pgbridge::source
