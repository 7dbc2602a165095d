#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <pgbridge/config/signing_keys.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/source/transaction_sink.hpp>
#include <pgbridge/transport/amqp_connection.hpp>
#include <pgbridge/transport/change_batch.hpp>
#include <pgbridge/transport/publish_channel.hpp>
#include <pgbridge/transport/shard_router.hpp>
#include <pgbridge/transport/topology.hpp>

namespace pgbridge::transport {

struct PublisherOptions {
    AmqpConnectOptions connect;
    Topology topology;
    std::string source_side;
    std::string target_side;
    BatchKind kind = BatchKind::Live;
    // Changes per message, upper bound; a transaction larger than this travels alone.
    std::size_t batch_size = 100;
    // Messages published but not yet confirmed, at most. Bounds memory and keeps the broker's
    // acks flowing (rabbitmq-c 0.11 stalls a writer that never reads).
    std::size_t max_unconfirmed = 256;
    // The largest message ([rabbitmq] max_message_bytes), and the size messages are cut at:
    // whole transactions up to it travel together, a larger transaction in parts of about it
    // (ChangeBatch::chunk), so that neither side ever holds a large message.
    std::size_t max_message_bytes = 8 * 1024 * 1024;
    std::size_t chunk_bytes = 1024 * 1024;
    // The priority of a table's changes (its [[tables]] priority); a message takes the
    // highest of its tables. Backfill messages always use 0.
    std::function<int(const TableInfo&)> priority_of;
    // Tables whose changes all go to the first apply shard ([[tables]] atomic_transactions);
    // topology.shards says how many shards there are.
    std::function<bool(const TableInfo&)> atomic_of;
    // Every message is signed with the first key ([rabbitmq] signing_key_file); none: unsigned.
    std::vector<SigningKey> signing_keys;
    // Opens the channel messages go out on; empty: open_amqp_publish_channel.
    std::function<std::unique_ptr<PublishChannel>(const PublisherOptions&)> open_channel;
};

// The AMQP PublishChannel: connects to options.connect, declares options.topology and puts
// its channel in confirm mode.
std::unique_ptr<PublishChannel> open_amqp_publish_channel(const PublisherOptions& options);

struct PublisherStats {
    std::atomic<std::uint64_t> messages_published{0};
    std::atomic<std::uint64_t> messages_confirmed{0};
    std::atomic<std::uint64_t> changes_published{0};
    std::atomic<std::uint64_t> bytes_published{0};
    std::atomic<std::uint64_t> reconnects{0};
};

// Publishes committed transactions to RabbitMQ as persistent, mandatory messages with
// publisher confirms, and tells the capture which LSN is durable: the end of the last
// transaction such that it and every message before it have been confirmed by the broker.
// A nack, an unroutable return or a lost connection makes the next call throw
// Error(ErrorKind::Broker); the capture then rewinds to durable_lsn() and replays.
class Publisher final : public source::TransactionSink {
  public:
    explicit Publisher(PublisherOptions options);
    ~Publisher() override;

    void open() override;
    void deliver(SourceTransaction transaction) override;
    void flush() override;
    Lsn durable_lsn() override;
    int durable_fd() override;
    void settle(std::chrono::milliseconds timeout) override;
    void rewind(Lsn from) override;

    const PublisherStats& stats() const { return stats_; }

  private:
    struct InFlight {
        std::uint64_t sequence;
        Lsn end_lsn;
        bool confirmed = false;
    };

    void connect();
    bool has_pending() const;
    void publish_pending();
    // A piece of a transaction capture hands on as it arrives (SourceTransaction::in_pieces),
    // or a whole transaction too large for one message: in parts.
    void deliver_piece(SourceTransaction piece);
    void publish_batch(const ChangeBatch& batch, int priority, Lsn durable_at, std::size_t changes,
                       std::uint32_t shard);
    void read_confirms(std::optional<std::chrono::milliseconds> wait);
    void confirm(std::uint64_t tag, bool multiple);
    void fail(Error error);
    void throw_if_failed();
    int priority_of(const SourceTransaction& txn) const;

    PublisherOptions options_;
    ShardRouting routing_;
    std::unique_ptr<PublishChannel> channel_;
    // What waits to go out, per shard (one without sharding).
    struct Pending {
        ChangeBatch batch;
        std::size_t changes = 0;
        std::size_t bytes = 0;
    };
    std::vector<Pending> pending_;
    // The transaction whose pieces are being published: per shard, its next part's index and
    // the place (in that shard's share) of the next change.
    struct LargeTransaction {
        struct ShardParts {
            std::uint32_t next_index = 0;
            std::uint32_t next_place = 0;
        };
        Lsn commit_lsn;
        int priority = 0;
        std::vector<ShardParts> shards;
    };
    std::optional<LargeTransaction> large_;
    int pending_priority_ = 0;
    std::uint64_t next_sequence_ = 1;
    std::deque<InFlight> in_flight_;
    Lsn durable_;
    std::optional<Error> failure_;
    PublisherStats stats_;
};

}  // namespace pgbridge::transport
