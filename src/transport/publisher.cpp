#include <algorithm>

#include <fmt/format.h>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/transport/message_codec.hpp>
#include <pgbridge/transport/message_signature.hpp>
#include <pgbridge/transport/publisher.hpp>

namespace pgbridge::transport {
namespace {

constexpr std::uint16_t kChannel = 1;

class AmqpPublishChannel final : public PublishChannel {
  public:
    explicit AmqpPublishChannel(const PublisherOptions& options) : connection_(options.connect) {
        declare_topology(connection_, options.topology);
        connection_.confirm_select(kChannel);
    }

    void publish(const OutgoingMessage& message) override {
        connection_.publish(kChannel, message);
    }
    std::optional<PublishConfirm> next_confirm(
        std::optional<std::chrono::milliseconds> wait) override {
        return connection_.next_confirm(wait);
    }
    int readable_fd() const override { return connection_.readable_fd(); }
    const std::string& server() const override { return connection_.server(); }

  private:
    AmqpConnection connection_;
};

}  // namespace

std::unique_ptr<PublishChannel> open_amqp_publish_channel(const PublisherOptions& options) {
    return std::make_unique<AmqpPublishChannel>(options);
}

Publisher::Publisher(PublisherOptions options)
    : options_(std::move(options)),
      routing_{std::max<std::uint32_t>(options_.topology.shards, 1), options_.atomic_of} {
    pending_.resize(routing_.shards);
    for (std::uint32_t k = 0; k < routing_.shards; ++k) {
        ChangeBatch& batch = pending_[k].batch;
        batch.bridge = options_.topology.bridge;
        batch.source_side = options_.source_side;
        batch.kind = options_.kind;
        if (routing_.shards > 1) {
            batch.shard = ShardInfo{k, routing_.shards};
        }
    }
}

Publisher::~Publisher() = default;

void Publisher::connect() {
    if (channel_) {
        return;
    }
    channel_ = options_.open_channel ? options_.open_channel(options_)
                                     : open_amqp_publish_channel(options_);
    next_sequence_ = 1;  // delivery tags restart with each channel in confirm mode
    log::info("publisher", "connected to RabbitMQ",
              {{"broker", channel_->server()},
               {"source", options_.source_side},
               {"target", options_.target_side}});
}

void Publisher::open() {
    throw_if_failed();
    try {
        connect();
    } catch (Error& e) {
        fail(std::move(e));
        throw_if_failed();
    }
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

bool Publisher::has_pending() const {
    return std::any_of(pending_.begin(), pending_.end(),
                       [](const Pending& p) { return !p.batch.transactions.empty(); });
}

void Publisher::deliver(SourceTransaction transaction) {
    throw_if_failed();
    if (transaction.in_pieces) {
        deliver_piece(std::move(transaction));
        return;
    }
    std::size_t bytes = 0;
    for (const auto& c : transaction.changes) {
        bytes += encoded_size_bound(c);
    }
    if (bytes > options_.chunk_bytes) {
        // Too large for one message: in parts (deliver_piece publishes what waits first).
        // One piece that is also the last, cut like the pieces of a transaction capture
        // could not hold.
        transaction.in_pieces = true;
        transaction.first_place = 0;
        deliver_piece(std::move(transaction));
        return;
    }
    const int priority = priority_of(transaction);
    auto shares = split_by_shard(std::move(transaction), routing_);
    // Each shard's message holds whole shares of transactions of one priority, up to
    // batch_size changes and chunk_bytes; the shards' messages go out together.
    std::vector<std::size_t> share_bytes(shares.size(), 0);
    bool full = priority != pending_priority_;
    for (std::size_t k = 0; k < shares.size(); ++k) {
        if (!shares[k]) {
            continue;
        }
        if (shares.size() == 1) {
            share_bytes[k] = bytes;
        } else {
            for (const auto& c : shares[k]->changes) {
                share_bytes[k] += encoded_size_bound(c);
            }
        }
        const Pending& p = pending_[k];
        full = full || (!p.batch.transactions.empty() &&
                        (p.changes + shares[k]->changes.size() > options_.batch_size ||
                         p.bytes + share_bytes[k] > options_.chunk_bytes));
    }
    if (full && has_pending()) {
        publish_pending();
    }
    pending_priority_ = priority;
    bool reached_batch_size = false;
    for (std::size_t k = 0; k < shares.size(); ++k) {
        if (!shares[k]) {
            continue;
        }
        Pending& p = pending_[k];
        p.changes += shares[k]->changes.size();
        p.bytes += share_bytes[k];
        p.batch.transactions.push_back(std::move(*shares[k]));
        reached_batch_size = reached_batch_size || p.changes >= options_.batch_size;
    }
    if (reached_batch_size) {
        publish_pending();
    }
}

void Publisher::deliver_piece(SourceTransaction piece) {
    if (!large_ || large_->commit_lsn != piece.commit_lsn) {
        if (has_pending()) {
            publish_pending();
        }
        large_ = LargeTransaction{piece.commit_lsn, priority_of(piece),
                                  std::vector<LargeTransaction::ShardParts>(routing_.shards)};
    }
    const bool last_piece = piece.end_lsn.valid();
    const Lsn end_lsn = piece.end_lsn;
    piece.late_versions.clear();
    piece.messages.clear();
    piece.in_pieces = false;
    // Which shard each change goes to; the header (the transaction without its changes) is
    // every part's.
    SourceTransaction routed;
    routed.changes = std::move(piece.changes);
    piece.changes.clear();
    auto shares = split_by_shard(std::move(routed), routing_);
    std::vector<std::vector<ChangeEvent>> by_shard(routing_.shards);
    for (std::uint32_t k = 0; k < routing_.shards; ++k) {
        if (shares[k]) {
            by_shard[k] = std::move(shares[k]->changes);
        }
    }
    // On the last piece every shard gets a last part (empty when it has nothing), so that each
    // shard's progress passes the transaction; the slot position goes on the very last, the
    // last shard's.
    for (std::uint32_t k = 0; k < routing_.shards; ++k) {
        if (!last_piece && by_shard[k].empty()) {
            continue;
        }
        LargeTransaction::ShardParts& parts = large_->shards[k];
        ChangeBatch part;
        part.bridge = options_.topology.bridge;
        part.source_side = options_.source_side;
        part.kind = options_.kind;
        if (routing_.shards > 1) {
            part.shard = ShardInfo{k, routing_.shards};
        }
        part.transactions.push_back(piece);  // the header
        SourceTransaction& body = part.transactions.front();
        std::size_t bytes = 0;
        const auto send = [&](bool last) {
            part.chunk =
                ChunkInfo{parts.next_index++,
                          parts.next_place - static_cast<std::uint32_t>(body.changes.size()), last,
                          last ? parts.next_index : 0};
            body.end_lsn = last ? end_lsn : Lsn();
            publish_batch(part, large_->priority,
                          last && k + 1 == routing_.shards ? end_lsn : Lsn(), body.changes.size(),
                          k);
            body.changes.clear();
            bytes = 0;
        };
        // Parts of about chunk_bytes. Only the changes and chunk_bytes decide where parts are
        // cut, so a replay sends the same parts.
        for (auto& change : by_shard[k]) {
            const std::size_t size = encoded_size_bound(change);
            if (!body.changes.empty() && bytes + size > options_.chunk_bytes) {
                send(false);
            }
            bytes += size;
            body.changes.push_back(std::move(change));
            ++parts.next_place;
        }
        if (last_piece) {
            send(true);
        } else if (!body.changes.empty()) {
            send(false);
        }
    }
    if (last_piece) {
        large_.reset();
    }
}

void Publisher::flush() {
    throw_if_failed();
    if (has_pending()) {
        publish_pending();
    }
    if (channel_) {
        read_confirms(std::nullopt);
    }
}

void Publisher::publish_pending() {
    // The shards' messages go out together, and only the last carries the slot position: the
    // slot passes a transaction once every shard's share of it is confirmed.
    std::size_t last = 0;
    Lsn end;
    for (std::size_t k = 0; k < pending_.size(); ++k) {
        if (!pending_[k].batch.transactions.empty()) {
            last = k;
            end = std::max(end, pending_[k].batch.last_end_lsn());
        }
    }
    for (std::size_t k = 0; k < pending_.size(); ++k) {
        Pending& p = pending_[k];
        if (p.batch.transactions.empty()) {
            continue;
        }
        publish_batch(p.batch, pending_priority_, k == last ? end : Lsn(), p.changes,
                      static_cast<std::uint32_t>(k));
        p.batch.transactions.clear();
        p.changes = 0;
        p.bytes = 0;
    }
}

void Publisher::publish_batch(const ChangeBatch& batch, int priority, Lsn durable_at,
                              std::size_t changes, std::uint32_t shard) {
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
        message.routing_key = options_.topology.routing_key(options_.target_side, priority, shard);
        message.body = encode_body(batch);
        if (message.body.size() > options_.max_message_bytes) {
            // Only a single change can get here (parts are cut well below the limit).
            throw Error(ErrorKind::Setup,
                        fmt::format("a change of {} bytes does not fit in a message of "
                                    "rabbitmq.max_message_bytes ({}); raise it",
                                    message.body.size(), options_.max_message_bytes))
                .with("source", options_.source_side)
                .with("lsn", batch.first_commit_lsn().to_string())
                .with("tables", fmt::format("{}", fmt::join(batch.table_names(), ",")));
        }
        message.properties = message_properties(batch, priority);
        sign(message, options_.signing_keys);
        channel_->publish(message);
        // A part that is not the last makes nothing durable: durable_at is empty.
        in_flight_.push_back(InFlight{next_sequence_++, durable_at});
        ++stats_.messages_published;
        stats_.changes_published += changes;
        stats_.bytes_published += message.body.size();
    } catch (Error& e) {
        if (e.kind() == ErrorKind::Setup) {
            throw;  // not the broker's doing: a replay would meet it again
        }
        fail(std::move(e));
        throw_if_failed();
    }
}

void Publisher::read_confirms(std::optional<std::chrono::milliseconds> wait) {
    auto confirm_event = channel_->next_confirm(wait);
    if (!confirm_event && wait && in_flight_.size() >= options_.max_unconfirmed) {
        throw Error(ErrorKind::Broker, "no publisher confirms from the broker within timeout_ms")
            .with("broker", channel_->server());
    }
    while (confirm_event) {
        confirm(confirm_event->delivery_tag, confirm_event->multiple);
        confirm_event = channel_->next_confirm(std::nullopt);
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
    if (channel_ && !failure_ && !in_flight_.empty()) {
        try {
            read_confirms(std::nullopt);
        } catch (Error& e) {
            fail(std::move(e));  // reported by the next deliver() or flush()
        }
    }
    return durable_;
}

int Publisher::durable_fd() {
    if (!channel_ || failure_ || in_flight_.empty()) {
        return -1;
    }
    return channel_->readable_fd();
}

void Publisher::settle(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (channel_ && !failure_ && !in_flight_.empty() &&
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
    for (auto& p : pending_) {
        p.batch.transactions.clear();
        p.changes = 0;
        p.bytes = 0;
    }
    large_.reset();
    in_flight_.clear();
    failure_.reset();
    if (channel_) {
        channel_.reset();
        ++stats_.reconnects;
    }
}

}  // namespace pgbridge::transport
