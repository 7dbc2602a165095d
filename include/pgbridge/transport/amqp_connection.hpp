#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <amqp.h>

#include <pgbridge/config/amqp_url.hpp>
#include <pgbridge/config/config.hpp>

namespace pgbridge::transport {

struct AmqpConnectOptions {
    AmqpUrl url;  // with the password from password_file, if any
    std::optional<std::filesystem::path> ca_file;
    std::optional<std::filesystem::path> cert_file;
    std::optional<std::filesystem::path> key_file;
    bool verify_peer = true;
    int heartbeat_seconds = 30;
    int timeout_ms = 30000;
    std::string connection_name = "pgbridge";

    static AmqpConnectOptions from(const RabbitConfig& config, int timeout_ms);
};

// rabbitmq-c's byte views: of a string (valid while it lives), and back to a string.
amqp_bytes_t amqp_bytes(const std::string& s);
std::string to_string(amqp_bytes_t bytes);

// Arguments and headers of AMQP methods and messages: a field table.
class AmqpTable {
  public:
    using FieldValue = std::variant<std::string, std::int64_t, bool>;

    AmqpTable& set(std::string key, FieldValue value);
    bool empty() const { return entries_.empty(); }
    const std::vector<std::pair<std::string, FieldValue>>& entries() const { return entries_; }

    // Reads a received table (message headers). Values of other types are skipped.
    static AmqpTable from_native(const amqp_table_t_& table);
    std::optional<std::string> get_string(std::string_view key) const;
    std::optional<std::int64_t> get_int(std::string_view key) const;

  private:
    std::vector<std::pair<std::string, FieldValue>> entries_;
};

// rabbitmq-c's view of an AmqpTable, for method arguments and message headers; valid while
// both live.
class AmqpTableView {
  public:
    explicit AmqpTableView(const AmqpTable& table);
    AmqpTableView(const AmqpTableView&) = delete;
    AmqpTableView& operator=(const AmqpTableView&) = delete;
    const amqp_table_t& get() const { return table_; }

  private:
    std::vector<amqp_table_entry_t> entries_;
    amqp_table_t table_{};
};

// The broker's confirm of messages published on a channel in confirm mode: every message up
// to delivery_tag when `multiple`, else that one.
struct PublishConfirm {
    std::uint64_t delivery_tag = 0;
    bool multiple = false;
};

struct QueueState {
    std::uint32_t messages = 0;  // ready for delivery
    std::uint32_t consumers = 0;
};

// One AMQP 0-9-1 connection (rabbitmq-c) with its channels. Every failure throws
// Error(ErrorKind::Broker) carrying the broker's reply code and text where it sent one.
// After a channel-level error the channel is reopened, so the connection stays usable.
class AmqpConnection {
  public:
    explicit AmqpConnection(const AmqpConnectOptions& options);  // connects and logs in
    ~AmqpConnection();
    AmqpConnection(const AmqpConnection&) = delete;
    AmqpConnection& operator=(const AmqpConnection&) = delete;

    amqp_connection_state_t_* native() const { return state_; }
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
    void consume(std::uint16_t channel, const std::string& queue);

    // The next publisher confirm, waiting at most `wait` (nullopt: only what has arrived).
    // nullopt when none came. A nack, a message returned as unroutable, a closed channel or
    // connection and a lost socket throw Error(Broker); resource-alarm notices are logged.
    // Frames read are released, so a long-running publisher does not grow by every ack.
    std::optional<PublishConfirm> next_confirm(std::optional<std::chrono::milliseconds> wait);

    // Throws Error(Broker) describing the last RPC reply unless it was normal.
    void check_reply(std::string_view what, std::uint16_t channel);

    const std::string& server() const { return server_; }

  private:
    amqp_connection_state_t_* state_ = nullptr;
    std::string server_;  // host:port/vhost, for messages
    std::vector<std::uint16_t> open_channels_;
};

}  // namespace pgbridge::transport
