#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <pgbridge/config/amqp_url.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/transport/amqp_table.hpp>
#include <pgbridge/transport/message.hpp>
#include <pgbridge/transport/publish_channel.hpp>

// rabbitmq-c's connection state; only src/transport/*.cpp sees its definition.
struct amqp_connection_state_t_;

namespace pgbridge::transport {

struct AmqpConnectOptions {
    AmqpUrl url;  // with the password from password_file, if any
    // The other nodes of the cluster ([rabbitmq] urls), tried in turn when one is down.
    std::vector<AmqpUrl> failover_urls;
    std::optional<std::filesystem::path> ca_file;
    std::optional<std::filesystem::path> cert_file;
    std::optional<std::filesystem::path> key_file;
    bool verify_peer = true;
    int heartbeat_seconds = 30;
    int timeout_ms = 30000;
    std::string connection_name = "pgbridge";

    static AmqpConnectOptions from(const RabbitConfig& config, int timeout_ms);
};

// The version of rabbitmq-c pgbridge runs with.
std::string rabbitmq_c_version();

struct QueueState {
    std::uint32_t messages = 0;  // ready for delivery
    std::uint32_t consumers = 0;
};

// One AMQP 0-9-1 connection (rabbitmq-c) with its channels, to the first node of the cluster
// that takes it (starting with the one that last did). Every failure throws
// Error(ErrorKind::Broker) carrying the broker's reply code and text where it sent one.
// After a channel-level error the channel is reopened, so the connection stays usable.
class AmqpConnection {
  public:
    explicit AmqpConnection(const AmqpConnectOptions& options);  // connects and logs in
    ~AmqpConnection();
    AmqpConnection(const AmqpConnection&) = delete;
    AmqpConnection& operator=(const AmqpConnection&) = delete;

    void open_channel(std::uint16_t channel);

    void declare_exchange(std::uint16_t channel, const std::string& name, const std::string& type);
    QueueState declare_queue(std::uint16_t channel, const std::string& name,
                             const AmqpTable& arguments);
    // Does the queue exist? Its state if so. (A passive declare of a missing queue closes the
    // channel; it is reopened.)
    std::optional<QueueState> inspect_queue(std::uint16_t channel, const std::string& name);
    bool exchange_exists(std::uint16_t channel, const std::string& name);
    void bind_queue(std::uint16_t channel, const std::string& queue, const std::string& exchange,
                    const std::string& routing_key);
    std::uint32_t delete_queue(std::uint16_t channel, const std::string& name);  // messages lost
    void delete_exchange(std::uint16_t channel, const std::string& name);
    void confirm_select(std::uint16_t channel);
    void qos(std::uint16_t channel, std::uint16_t prefetch_count);
    // Deliveries of this consumer carry `consumer_tag` (empty: one the broker makes up).
    void consume(std::uint16_t channel, const std::string& queue,
                 const std::string& consumer_tag = {});

    // Publishes (mandatory: an unroutable message comes back as an error from
    // next_confirm). On a channel in confirm mode the broker's confirm follows.
    void publish(std::uint16_t channel, const OutgoingMessage& message);

    // The next message delivered to a consumer of this connection, waiting at most `wait`;
    // nullopt when none came. A body larger than max_body is read from the socket and
    // dropped past its first max_body bytes, never held whole (Delivery::body_complete).
    // The broker cancelling the consumer (its queue deleted), a closed channel or connection
    // and a lost socket throw Error(Broker).
    std::optional<Delivery> next_delivery(std::chrono::milliseconds wait, std::size_t max_body);
    void ack(std::uint16_t channel, std::uint64_t delivery_tag);
    // Refuses a delivery without requeueing: the broker dead-letters it as it is, through the
    // queue's x-dead-letter-exchange.
    void reject(std::uint16_t channel, std::uint64_t delivery_tag);
    // basic.get: one message of the queue without a consumer (tests, tools); with
    // acknowledge=false it goes back to the queue when the connection closes.
    std::optional<Delivery> get(std::uint16_t channel, const std::string& queue, bool acknowledge);

    // The next publisher confirm, waiting at most `wait` (nullopt: only what has arrived).
    // nullopt when none came. A nack, a message returned as unroutable, a closed channel or
    // connection and a lost socket throw Error(Broker); resource-alarm notices are logged.
    // Frames read are released, so a long-running publisher does not grow by every ack.
    std::optional<PublishConfirm> next_confirm(std::optional<std::chrono::milliseconds> wait);

    // Throws Error(Broker) describing the last RPC reply unless it was normal.
    void check_reply(std::string_view what, std::uint16_t channel);

    const std::string& server() const { return server_; }
    // The socket, for a caller that waits on several descriptors; -1 when frames already read
    // wait in rabbitmq-c's buffer (the socket would not say so: read them first).
    int readable_fd() const;

  private:
    void connect_node(const AmqpConnectOptions& options, const AmqpUrl& url);
    // Reads the header and body frames that follow a basic.deliver or basic.get-ok.
    void read_content(std::uint16_t channel, Delivery& delivery, std::size_t max_body);

    amqp_connection_state_t_* state_ = nullptr;
    std::string server_;  // host:port/vhost, for messages
    int timeout_ms_ = 30000;
    std::vector<std::uint16_t> open_channels_;
};

}  // namespace pgbridge::transport
