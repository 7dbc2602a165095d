#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/core/sqlstate.hpp>
#include <pgbridge/transport/amqp_connection.hpp>

namespace pgbridge::transport {
namespace {

// The node of each cluster (its [rabbitmq] urls, as a list of host:port/vhost) that last took
// a connection, shared by every connection of the process.
std::mutex preferred_nodes_mutex;
std::map<std::string, std::size_t> preferred_nodes;

std::string node_list(const std::vector<const AmqpUrl*>& nodes) {
    std::string out;
    for (const auto* url : nodes) {
        out += fmt::format("{}:{}/{},", url->host, url->port, url->vhost);
    }
    return out;
}

std::size_t preferred_node(const std::string& cluster) {
    std::lock_guard lock(preferred_nodes_mutex);
    const auto it = preferred_nodes.find(cluster);
    return it == preferred_nodes.end() ? 0 : it->second;
}

void remember_node(const std::string& cluster, std::size_t node) {
    std::lock_guard lock(preferred_nodes_mutex);
    preferred_nodes[cluster] = node;
}

timeval to_timeval(int ms) {
    return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
}

// rabbitmq-c's byte views: of a string (valid while it lives), and back to a string.
amqp_bytes_t amqp_bytes(const std::string& s) {
    return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

std::string to_string(amqp_bytes_t bytes) {
    return bytes.bytes == nullptr ? std::string()
                                  : std::string(static_cast<const char*>(bytes.bytes), bytes.len);
}

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

// A received table. Integers of every width are kept (an unsigned 64-bit value beyond the
// signed range saturates); strings keep their bytes, whatever they are; other kinds are
// dropped: pgbridge reads none.
AmqpTable table_from_native(const amqp_table_t& table) {
    AmqpTable out;
    for (int i = 0; i < table.num_entries; ++i) {
        const amqp_table_entry_t& e = table.entries[i];
        const std::string key = to_string(e.key);
        switch (e.value.kind) {
            case AMQP_FIELD_KIND_UTF8:
            case AMQP_FIELD_KIND_BYTES:
                out.set(key, to_string(e.value.value.bytes));
                break;
            case AMQP_FIELD_KIND_I64:
                out.set(key, e.value.value.i64);
                break;
            case AMQP_FIELD_KIND_U64:
                out.set(key, static_cast<std::int64_t>(std::min<std::uint64_t>(
                                 e.value.value.u64, static_cast<std::uint64_t>(INT64_MAX))));
                break;
            case AMQP_FIELD_KIND_I32:
                out.set(key, std::int64_t{e.value.value.i32});
                break;
            case AMQP_FIELD_KIND_U32:
                out.set(key, std::int64_t{e.value.value.u32});
                break;
            case AMQP_FIELD_KIND_I16:
                out.set(key, std::int64_t{e.value.value.i16});
                break;
            case AMQP_FIELD_KIND_U16:
                out.set(key, std::int64_t{e.value.value.u16});
                break;
            case AMQP_FIELD_KIND_I8:
                out.set(key, std::int64_t{e.value.value.i8});
                break;
            case AMQP_FIELD_KIND_U8:
                out.set(key, std::int64_t{e.value.value.u8});
                break;
            case AMQP_FIELD_KIND_BOOLEAN:
                out.set(key, e.value.value.boolean != 0);
                break;
            default:
                break;
        }
    }
    return out;
}

MessageProperties properties_from_native(const amqp_basic_properties_t& p) {
    MessageProperties out;
    const auto text = [&](amqp_flags_t flag, amqp_bytes_t bytes) {
        return (p._flags & flag) != 0 ? std::optional(to_string(bytes)) : std::nullopt;
    };
    out.content_type = text(AMQP_BASIC_CONTENT_TYPE_FLAG, p.content_type);
    out.type = text(AMQP_BASIC_TYPE_FLAG, p.type);
    out.message_id = text(AMQP_BASIC_MESSAGE_ID_FLAG, p.message_id);
    out.app_id = text(AMQP_BASIC_APP_ID_FLAG, p.app_id);
    out.expiration = text(AMQP_BASIC_EXPIRATION_FLAG, p.expiration);
    if ((p._flags & AMQP_BASIC_PRIORITY_FLAG) != 0) {
        out.priority = p.priority;
    }
    if ((p._flags & AMQP_BASIC_TIMESTAMP_FLAG) != 0) {
        out.timestamp = p.timestamp;
    }
    out.persistent = (p._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) != 0 && p.delivery_mode == 2;
    if ((p._flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
        out.headers = table_from_native(p.headers);
    }
    return out;
}

// rabbitmq-c's view of MessageProperties; valid while both live.
class PropertiesView {
  public:
    explicit PropertiesView(const MessageProperties& p) : headers_(p.headers) {
        const auto text = [&](amqp_flags_t flag, const std::optional<std::string>& value,
                              amqp_bytes_t& field) {
            if (value) {
                props_._flags |= flag;
                field = amqp_bytes(*value);
            }
        };
        text(AMQP_BASIC_CONTENT_TYPE_FLAG, p.content_type, props_.content_type);
        text(AMQP_BASIC_TYPE_FLAG, p.type, props_.type);
        text(AMQP_BASIC_MESSAGE_ID_FLAG, p.message_id, props_.message_id);
        text(AMQP_BASIC_APP_ID_FLAG, p.app_id, props_.app_id);
        text(AMQP_BASIC_EXPIRATION_FLAG, p.expiration, props_.expiration);
        if (p.priority) {
            props_._flags |= AMQP_BASIC_PRIORITY_FLAG;
            props_.priority = *p.priority;
        }
        if (p.timestamp) {
            props_._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
            props_.timestamp = *p.timestamp;
        }
        props_._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
        props_.delivery_mode = p.persistent ? 2 : 1;
        if (!p.headers.empty()) {
            props_._flags |= AMQP_BASIC_HEADERS_FLAG;
            props_.headers = headers_.get();
        }
    }
    PropertiesView(const PropertiesView&) = delete;
    PropertiesView& operator=(const PropertiesView&) = delete;
    const amqp_basic_properties_t* get() const { return &props_; }

  private:
    AmqpTableView headers_;
    amqp_basic_properties_t props_{};
};

}  // namespace

std::string rabbitmq_c_version() {
    return amqp_version();
}

AmqpConnectOptions AmqpConnectOptions::from(const RabbitConfig& config, int timeout_ms) {
    AmqpConnectOptions o;
    o.url = config.url;
    o.failover_urls = config.failover_urls;
    o.ca_file = config.ca_file;
    o.cert_file = config.cert_file;
    o.key_file = config.key_file;
    o.verify_peer = config.verify_peer;
    o.timeout_ms = timeout_ms;
    return o;
}

AmqpTableView::AmqpTableView(const AmqpTable& table) {
    entries_.reserve(table.entries().size());
    for (const auto& [key, value] : table.entries()) {
        amqp_table_entry_t entry{};
        entry.key = amqp_bytes(key);
        if (const auto* s = std::get_if<std::string>(&value)) {
            entry.value.kind = AMQP_FIELD_KIND_UTF8;
            entry.value.value.bytes = amqp_bytes(*s);
        } else if (const auto* i = std::get_if<std::int64_t>(&value)) {
            entry.value.kind = AMQP_FIELD_KIND_I64;
            entry.value.value.i64 = *i;
        } else {
            entry.value.kind = AMQP_FIELD_KIND_BOOLEAN;
            entry.value.value.boolean = std::get<bool>(value) ? 1 : 0;
        }
        entries_.push_back(entry);
    }
    table_.num_entries = static_cast<int>(entries_.size());
    table_.entries = entries_.empty() ? nullptr : entries_.data();
}

AmqpConnection::AmqpConnection(const AmqpConnectOptions& o) : timeout_ms_(o.timeout_ms) {
    std::vector<const AmqpUrl*> nodes{&o.url};
    for (const auto& url : o.failover_urls) {
        nodes.push_back(&url);
    }
    // Start with the node that last took a connection, so that a node that is down costs a
    // connect timeout once, not at every reconnect of every connection.
    const std::string cluster = node_list(nodes);
    const std::size_t first = preferred_node(cluster) % nodes.size();
    std::vector<Error> failures;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        const std::size_t node = (first + i) % nodes.size();
        try {
            connect_node(o, *nodes[node]);
            if (i > 0) {
                log::warning(
                    "amqp", "connected to another RabbitMQ node of [rabbitmq] urls",
                    {{"broker", server_},
                     {"unreachable", std::string(failures.front().context_value("broker"))}});
            }
            if (nodes.size() > 1) {
                remember_node(cluster, node);
            }
            return;
        } catch (Error& e) {
            if (state_ != nullptr) {  // failed after the socket opened: nothing of it is kept
                amqp_destroy_connection(state_);
                state_ = nullptr;
            }
            failures.push_back(std::move(e));
        }
    }
    // One node, or a refused login (the configuration's fault, not the cluster's): the error
    // as it is.
    for (auto& failure : failures) {
        if (nodes.size() == 1 || failure.context_value("login") == "refused") {
            throw std::move(failure);
        }
    }
    std::vector<std::string> reasons;
    for (const auto& failure : failures) {
        reasons.push_back(failure.what());
    }
    throw Error(
        ErrorKind::Broker,
        fmt::format("no node of [rabbitmq] urls takes a connection ({} tried)", nodes.size()))
        .with("nodes", fmt::format("{}", fmt::join(reasons, "; ")));
}

void AmqpConnection::connect_node(const AmqpConnectOptions& o, const AmqpUrl& url) {
    state_ = amqp_new_connection();
    server_ = fmt::format("{}:{}{}", url.host, url.port, url.vhost == "/" ? "" : "/" + url.vhost);
    if (state_ == nullptr) {
        throw Error(ErrorKind::Broker, "out of memory creating an AMQP connection");
    }
    auto fail = [&](std::string message) {
        amqp_destroy_connection(state_);
        state_ = nullptr;
        throw Error(ErrorKind::Broker, std::move(message)).with("broker", server_);
    };
    amqp_socket_t* socket = nullptr;
    if (url.tls) {
        socket = amqp_ssl_socket_new(state_);
        if (socket == nullptr) {
            fail("cannot create a TLS socket");
        }
        amqp_ssl_socket_set_verify_peer(socket, o.verify_peer ? 1 : 0);
        amqp_ssl_socket_set_verify_hostname(socket, o.verify_peer ? 1 : 0);
        if (o.ca_file && amqp_ssl_socket_set_cacert(socket, o.ca_file->c_str()) != AMQP_STATUS_OK) {
            fail(fmt::format("cannot load the CA file {}", o.ca_file->string()));
        }
        if (o.cert_file && o.key_file &&
            amqp_ssl_socket_set_key(socket, o.cert_file->c_str(), o.key_file->c_str()) !=
                AMQP_STATUS_OK) {
            fail(fmt::format("cannot load the client certificate {} and key {}",
                             o.cert_file->string(), o.key_file->string()));
        }
    } else {
        socket = amqp_tcp_socket_new(state_);
        if (socket == nullptr) {
            fail("cannot create a TCP socket");
        }
    }
    timeval timeout = to_timeval(o.timeout_ms);
    const int status = amqp_socket_open_noblock(socket, url.host.c_str(), url.port, &timeout);
    if (status != AMQP_STATUS_OK) {
        fail(fmt::format("cannot connect to RabbitMQ: {}", amqp_error_string2(status)));
    }
    amqp_set_handshake_timeout(state_, &timeout);
    amqp_set_rpc_timeout(state_, &timeout);

    amqp_table_entry_t property{};
    property.key = amqp_cstring_bytes("connection_name");
    property.value.kind = AMQP_FIELD_KIND_UTF8;
    property.value.value.bytes = amqp_bytes(o.connection_name);
    amqp_table_t properties{1, &property};
    const amqp_rpc_reply_t login = amqp_login_with_properties(
        state_, url.vhost.c_str(), 0, 131072, o.heartbeat_seconds, &properties,
        AMQP_SASL_METHOD_PLAIN, url.user.c_str(), url.password.reveal().c_str());
    if (login.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        login.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        // The broker said why (it closes the connection: authentication_failure_close).
        const auto* close = static_cast<const amqp_connection_close_t*>(login.reply.decoded);
        const int code = close->reply_code;
        const std::string text = to_string(close->reply_text);
        amqp_destroy_connection(state_);
        state_ = nullptr;
        std::string message =
            code == AMQP_ACCESS_REFUSED
                ? fmt::format(
                      "RabbitMQ refused the login of user {} (a wrong password, or no "
                      "such user): check [rabbitmq] url and password_file",
                      url.user)
            : code == AMQP_NOT_ALLOWED
                ? fmt::format(
                      "RabbitMQ does not let user {} into virtual host '{}' (it does "
                      "not exist, or the user has no permissions there): rabbitmqctl "
                      "add_vhost / set_permissions, or fix [rabbitmq] url",
                      url.user, url.vhost)
                : fmt::format("cannot log in to RabbitMQ as {}: {}", url.user, text);
        throw Error(ErrorKind::Broker, std::move(message))
            .with("broker", server_)
            .with("reply_code", std::to_string(code))
            .with("login", "refused");
    }
    if (login.reply_type != AMQP_RESPONSE_NORMAL) {
        std::string why = login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
                              ? amqp_error_string2(login.library_error)
                              : "the broker refused the login";
        fail(fmt::format("cannot log in to RabbitMQ as {}: {}", url.user, why));
    }
    open_channel(1);
}

AmqpConnection::~AmqpConnection() {
    if (state_ == nullptr) {
        return;
    }
    // A polite close when the connection still works; never throw from here.
    amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(state_);
}

void AmqpConnection::check_reply(std::string_view what, std::uint16_t channel) {
    const amqp_rpc_reply_t reply = amqp_get_rpc_reply(state_);
    switch (reply.reply_type) {
        case AMQP_RESPONSE_NORMAL:
            return;
        case AMQP_RESPONSE_NONE:
            throw Error(ErrorKind::Broker, fmt::format("{}: no reply from the broker", what))
                .with("broker", server_);
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            throw Error(ErrorKind::Broker,
                        fmt::format("{}: {}", what, amqp_error_string2(reply.library_error)))
                .with("broker", server_);
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            break;
    }
    if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const auto* close = static_cast<const amqp_channel_close_t*>(reply.reply.decoded);
        const std::string text = to_string(close->reply_text);
        const int code = close->reply_code;
        amqp_channel_close_ok_t ok{};
        amqp_send_method(state_, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        std::erase(open_channels_, channel);
        open_channel(channel);  // keep the channel usable for the caller's next step
        throw Error(ErrorKind::Broker, fmt::format("{}: {}", what, text))
            .with("broker", server_)
            .with("reply_code", std::to_string(code));
    }
    if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const auto* close = static_cast<const amqp_connection_close_t*>(reply.reply.decoded);
        const std::string text = to_string(close->reply_text);
        const int code = close->reply_code;
        amqp_connection_close_ok_t ok{};
        amqp_send_method(state_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        throw Error(ErrorKind::Broker,
                    fmt::format("{}: the broker closed the connection: {}", what, text))
            .with("broker", server_)
            .with("reply_code", std::to_string(code));
    }
    throw Error(ErrorKind::Broker,
                fmt::format("{}: unexpected broker method 0x{:08x}", what, reply.reply.id))
        .with("broker", server_);
}

int AmqpConnection::readable_fd() const {
    if (amqp_data_in_buffer(state_) != 0 || amqp_frames_enqueued(state_) != 0) {
        return -1;
    }
    return amqp_get_sockfd(state_);
}

std::optional<PublishConfirm> AmqpConnection::next_confirm(
    std::optional<std::chrono::milliseconds> wait) {
    timeval zero{0, 0};
    timeval timeout = wait ? to_timeval(static_cast<int>(wait->count())) : zero;
    bool first = true;
    while (true) {
        amqp_frame_t frame;
        // Block at most once, for the first frame; then take only what is there.
        const int rc =
            amqp_simple_wait_frame_noblock(state_, &frame, wait && first ? &timeout : &zero);
        first = false;
        if (rc == AMQP_STATUS_TIMEOUT) {
            amqp_maybe_release_buffers(state_);
            return std::nullopt;
        }
        if (rc != AMQP_STATUS_OK) {
            throw Error(ErrorKind::Broker,
                        fmt::format("connection to RabbitMQ lost: {}", amqp_error_string2(rc)))
                .with("broker", server_);
        }
        if (frame.frame_type != AMQP_FRAME_METHOD) {
            continue;  // content of a returned message, read below with its method
        }
        switch (frame.payload.method.id) {
            case AMQP_BASIC_ACK_METHOD: {
                const auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
                const PublishConfirm confirm{ack->delivery_tag, ack->multiple != 0};
                amqp_maybe_release_buffers(state_);
                return confirm;
            }
            case AMQP_BASIC_NACK_METHOD:
                throw Error(ErrorKind::Broker, "the broker refused (nack) a message")
                    .with("broker", server_);
            case AMQP_BASIC_RETURN_METHOD: {
                const auto* ret = static_cast<amqp_basic_return_t*>(frame.payload.method.decoded);
                Error error(ErrorKind::Broker,
                            fmt::format("the broker returned a message to exchange '{}' with "
                                        "routing key '{}' as unroutable: no queue is bound; run "
                                        "pgbridge setup",
                                        to_string(ret->exchange), to_string(ret->routing_key)));
                error.with("broker", server_);
                amqp_message_t returned;
                amqp_read_message(state_, frame.channel, &returned, 0);
                amqp_destroy_message(&returned);
                throw error;
            }
            case AMQP_CONNECTION_BLOCKED_METHOD:
                log::warning("amqp", "RabbitMQ blocks publishing (a resource alarm)",
                             {{"broker", server_}});
                break;
            case AMQP_CONNECTION_UNBLOCKED_METHOD:
                log::info("amqp", "RabbitMQ accepts publishing again", {{"broker", server_}});
                break;
            case AMQP_CHANNEL_CLOSE_METHOD: {
                const auto* close =
                    static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
                throw Error(ErrorKind::Broker, fmt::format("the broker closed the channel: {}",
                                                           to_string(close->reply_text)))
                    .with("broker", server_);
            }
            case AMQP_CONNECTION_CLOSE_METHOD:
                throw Error(ErrorKind::Broker, "the broker closed the connection")
                    .with("broker", server_);
            default:
                break;
        }
    }
}

void AmqpConnection::open_channel(std::uint16_t channel) {
    if (std::find(open_channels_.begin(), open_channels_.end(), channel) != open_channels_.end()) {
        return;
    }
    amqp_channel_open(state_, channel);
    check_reply("opening a channel", channel);
    open_channels_.push_back(channel);
}

void AmqpConnection::declare_exchange(std::uint16_t channel, const std::string& name,
                                      const std::string& type) {
    amqp_exchange_declare(state_, channel, amqp_bytes(name), amqp_bytes(type), 0, /*durable=*/1, 0,
                          0, amqp_empty_table);
    check_reply(fmt::format("declaring exchange {}", name), channel);
}

QueueState AmqpConnection::declare_queue(std::uint16_t channel, const std::string& name,
                                         const AmqpTable& arguments) {
    AmqpTableView args(arguments);
    auto* ok =
        amqp_queue_declare(state_, channel, amqp_bytes(name), 0, /*durable=*/1, 0, 0, args.get());
    check_reply(fmt::format("declaring queue {}", name), channel);
    return QueueState{ok->message_count, ok->consumer_count};
}

std::optional<QueueState> AmqpConnection::inspect_queue(std::uint16_t channel,
                                                        const std::string& name) {
    auto* ok = amqp_queue_declare(state_, channel, amqp_bytes(name), /*passive=*/1, 0, 0, 0,
                                  amqp_empty_table);
    try {
        check_reply(fmt::format("inspecting queue {}", name), channel);
    } catch (const Error& e) {
        if (e.context_value("reply_code") == amqp_reply::kNotFound) {
            return std::nullopt;
        }
        throw;
    }
    return QueueState{ok->message_count, ok->consumer_count};
}

bool AmqpConnection::exchange_exists(std::uint16_t channel, const std::string& name) {
    amqp_exchange_declare(state_, channel, amqp_bytes(name), amqp_cstring_bytes("direct"),
                          /*passive=*/1, 0, 0, 0, amqp_empty_table);
    try {
        check_reply(fmt::format("inspecting exchange {}", name), channel);
    } catch (const Error& e) {
        if (e.context_value("reply_code") == amqp_reply::kNotFound) {
            return false;
        }
        throw;
    }
    return true;
}

void AmqpConnection::bind_queue(std::uint16_t channel, const std::string& queue,
                                const std::string& exchange, const std::string& routing_key) {
    amqp_queue_bind(state_, channel, amqp_bytes(queue), amqp_bytes(exchange),
                    amqp_bytes(routing_key), amqp_empty_table);
    check_reply(fmt::format("binding queue {} to {}", queue, exchange), channel);
}

std::uint32_t AmqpConnection::delete_queue(std::uint16_t channel, const std::string& name) {
    auto* ok = amqp_queue_delete(state_, channel, amqp_bytes(name), 0, 0);
    check_reply(fmt::format("deleting queue {}", name), channel);
    return ok->message_count;
}

void AmqpConnection::delete_exchange(std::uint16_t channel, const std::string& name) {
    amqp_exchange_delete(state_, channel, amqp_bytes(name), 0);
    check_reply(fmt::format("deleting exchange {}", name), channel);
}

void AmqpConnection::confirm_select(std::uint16_t channel) {
    amqp_confirm_select(state_, channel);
    check_reply("enabling publisher confirms", channel);
}

void AmqpConnection::qos(std::uint16_t channel, std::uint16_t prefetch_count) {
    amqp_basic_qos(state_, channel, 0, prefetch_count, 0);
    check_reply("setting the prefetch window", channel);
}

void AmqpConnection::consume(std::uint16_t channel, const std::string& queue,
                             const std::string& consumer_tag) {
    amqp_basic_consume(state_, channel, amqp_bytes(queue),
                       consumer_tag.empty() ? amqp_empty_bytes : amqp_bytes(consumer_tag), 0,
                       /*no_ack=*/0, 0, amqp_empty_table);
    check_reply(fmt::format("consuming from queue {}", queue), channel);
}

void AmqpConnection::publish(std::uint16_t channel, const OutgoingMessage& message) {
    const PropertiesView properties(message.properties);
    const int status =
        amqp_basic_publish(state_, channel, amqp_bytes(message.exchange),
                           amqp_bytes(message.routing_key), /*mandatory=*/1,
                           /*immediate=*/0, properties.get(), amqp_bytes(message.body));
    if (status != AMQP_STATUS_OK) {
        throw Error(ErrorKind::Broker,
                    fmt::format("publishing to {} failed: {}",
                                message.exchange.empty() ? message.routing_key : message.exchange,
                                amqp_error_string2(status)))
            .with("broker", server_);
    }
}

void AmqpConnection::read_content(std::uint16_t channel, Delivery& delivery, std::size_t max_body) {
    timeval timeout = to_timeval(timeout_ms_);
    const auto next_frame = [&](std::uint8_t expected) {
        amqp_frame_t frame;
        const int rc = amqp_simple_wait_frame_noblock(state_, &frame, &timeout);
        if (rc != AMQP_STATUS_OK) {
            throw Error(ErrorKind::Broker,
                        fmt::format("connection to RabbitMQ lost: {}", amqp_error_string2(rc)))
                .with("broker", server_);
        }
        if (frame.frame_type != expected || frame.channel != channel) {
            throw Error(ErrorKind::Broker, "RabbitMQ sent a message's frames out of order")
                .with("broker", server_);
        }
        return frame;
    };
    const amqp_frame_t header = next_frame(AMQP_FRAME_HEADER);
    delivery.body_size = header.payload.properties.body_size;
    delivery.properties = properties_from_native(
        *static_cast<const amqp_basic_properties_t*>(header.payload.properties.decoded));
    delivery.body.reserve(
        static_cast<std::size_t>(std::min<std::uint64_t>(delivery.body_size, max_body)));
    std::uint64_t received = 0;
    while (received < delivery.body_size) {
        // Each frame's bytes are released once copied, so an oversized body never
        // accumulates in rabbitmq-c's buffers either.
        amqp_maybe_release_buffers_on_channel(state_, channel);
        const amqp_frame_t body = next_frame(AMQP_FRAME_BODY);
        const amqp_bytes_t fragment = body.payload.body_fragment;
        received += fragment.len;
        if (delivery.body.size() < max_body) {
            const std::size_t keep = std::min(fragment.len, max_body - delivery.body.size());
            delivery.body.append(static_cast<const char*>(fragment.bytes), keep);
        }
    }
    if (received != delivery.body_size) {
        throw Error(ErrorKind::Broker, "RabbitMQ sent more body bytes than the message declared")
            .with("broker", server_);
    }
    amqp_maybe_release_buffers_on_channel(state_, channel);
}

std::optional<Delivery> AmqpConnection::next_delivery(std::chrono::milliseconds wait,
                                                      std::size_t max_body) {
    timeval timeout = to_timeval(static_cast<int>(wait.count()));
    while (true) {
        amqp_maybe_release_buffers(state_);
        amqp_frame_t frame;
        const int rc = amqp_simple_wait_frame_noblock(state_, &frame, &timeout);
        if (rc == AMQP_STATUS_TIMEOUT) {
            return std::nullopt;
        }
        if (rc != AMQP_STATUS_OK) {
            throw Error(ErrorKind::Broker,
                        fmt::format("connection to RabbitMQ lost: {}", amqp_error_string2(rc)))
                .with("broker", server_);
        }
        if (frame.frame_type != AMQP_FRAME_METHOD) {
            continue;  // content of something not delivered to us; nothing to keep
        }
        switch (frame.payload.method.id) {
            case AMQP_BASIC_DELIVER_METHOD: {
                const auto* m =
                    static_cast<const amqp_basic_deliver_t*>(frame.payload.method.decoded);
                Delivery delivery;
                delivery.delivery_tag = m->delivery_tag;
                delivery.redelivered = m->redelivered != 0;
                delivery.consumer_tag = to_string(m->consumer_tag);
                delivery.exchange = to_string(m->exchange);
                delivery.routing_key = to_string(m->routing_key);
                read_content(frame.channel, delivery, max_body);
                return delivery;
            }
            case AMQP_BASIC_CANCEL_METHOD:
                throw Error(ErrorKind::Broker,
                            "RabbitMQ cancelled the consumer (was its queue deleted?)")
                    .with("broker", server_);
            case AMQP_CHANNEL_CLOSE_METHOD: {
                const auto* close =
                    static_cast<const amqp_channel_close_t*>(frame.payload.method.decoded);
                throw Error(ErrorKind::Broker, fmt::format("the broker closed the channel: {}",
                                                           to_string(close->reply_text)))
                    .with("broker", server_)
                    .with("reply_code", std::to_string(close->reply_code));
            }
            case AMQP_CONNECTION_CLOSE_METHOD: {
                const auto* close =
                    static_cast<const amqp_connection_close_t*>(frame.payload.method.decoded);
                throw Error(ErrorKind::Broker, fmt::format("the broker closed the connection: {}",
                                                           to_string(close->reply_text)))
                    .with("broker", server_)
                    .with("reply_code", std::to_string(close->reply_code));
            }
            case AMQP_CONNECTION_BLOCKED_METHOD:
                log::warning("amqp", "RabbitMQ blocks publishing (a resource alarm)",
                             {{"broker", server_}});
                break;
            case AMQP_CONNECTION_UNBLOCKED_METHOD:
                log::info("amqp", "RabbitMQ accepts publishing again", {{"broker", server_}});
                break;
            default:
                break;
        }
    }
}

void AmqpConnection::ack(std::uint16_t channel, std::uint64_t delivery_tag) {
    if (amqp_basic_ack(state_, channel, delivery_tag, 0) != AMQP_STATUS_OK) {
        throw Error(ErrorKind::Broker, "acknowledging a message failed").with("broker", server_);
    }
}

void AmqpConnection::reject(std::uint16_t channel, std::uint64_t delivery_tag) {
    if (amqp_basic_reject(state_, channel, delivery_tag, /*requeue=*/0) != AMQP_STATUS_OK) {
        throw Error(ErrorKind::Broker, "rejecting a message failed").with("broker", server_);
    }
}

std::optional<Delivery> AmqpConnection::get(std::uint16_t channel, const std::string& queue,
                                            bool acknowledge) {
    amqp_maybe_release_buffers(state_);
    amqp_basic_get(state_, channel, amqp_bytes(queue), /*no_ack=*/acknowledge ? 1 : 0);
    check_reply(fmt::format("getting a message from {}", queue), channel);
    const amqp_rpc_reply_t reply = amqp_get_rpc_reply(state_);
    if (reply.reply.id != AMQP_BASIC_GET_OK_METHOD) {
        return std::nullopt;  // basic.get-empty
    }
    const auto* ok = static_cast<const amqp_basic_get_ok_t*>(reply.reply.decoded);
    Delivery delivery;
    delivery.delivery_tag = ok->delivery_tag;
    delivery.redelivered = ok->redelivered != 0;
    delivery.exchange = to_string(ok->exchange);
    delivery.routing_key = to_string(ok->routing_key);
    read_content(channel, delivery, std::numeric_limits<std::size_t>::max());
    return delivery;
}

}  // namespace pgbridge::transport
