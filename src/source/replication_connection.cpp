#include <cerrno>
#include <cstring>
#include <poll.h>
#include <unistd.h>

#include <fmt/format.h>
#include <libpq-fe.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/core/qualified_name.hpp>
#include <pgbridge/source/replication_connection.hpp>

namespace pgbridge::source {
namespace {

pg::ConnectOptions with_replication(pg::ConnectOptions options) {
    options.replication = true;
    return options;
}

std::string quote_literal(std::string_view text) {
    std::string out = "'";
    for (char c : text) {
        if (c == '\'') {
            out += '\'';
        }
        out += c;
    }
    return out + "'";
}

}  // namespace

ReplicationConnection::ReplicationConnection(pg::ConnectOptions options)
    : conn_(pg::Connection::open(with_replication(std::move(options)))) {}

ReplicationConnection::~ReplicationConnection() {
    release_buffer();
}

ReplicationConnection::ReplicationConnection(ReplicationConnection&& other) noexcept
    : conn_(std::move(other.conn_)), buffer_(other.buffer_), streaming_(other.streaming_) {
    other.buffer_ = nullptr;
}

ReplicationConnection& ReplicationConnection::operator=(ReplicationConnection&& other) noexcept {
    release_buffer();
    conn_ = std::move(other.conn_);
    buffer_ = other.buffer_;
    streaming_ = other.streaming_;
    other.buffer_ = nullptr;
    return *this;
}

void ReplicationConnection::release_buffer() {
    if (buffer_ != nullptr) {
        PQfreemem(buffer_);
        buffer_ = nullptr;
    }
}

ServerIdentity ReplicationConnection::identify_system() {
    auto r = conn_.exec("IDENTIFY_SYSTEM");
    ServerIdentity id;
    id.system_id = std::string(r.value(0, 0));
    id.timeline = std::stoi(std::string(r.value(0, 1)));
    id.wal_position = Lsn::parse(r.value(0, 2)).value_or(Lsn());
    id.database = std::string(r.value(0, 3));
    return id;
}

Lsn ReplicationConnection::create_temporary_slot(const std::string& name) {
    auto r = conn_.exec(
        fmt::format("CREATE_REPLICATION_SLOT {} TEMPORARY LOGICAL pgoutput (SNAPSHOT 'nothing')",
                    quote_identifier(name)));
    return Lsn::parse(r.value(0, 1)).value_or(Lsn());
}

ReplicationConnection::ExportedSnapshot ReplicationConnection::create_temporary_slot_with_snapshot(
    const std::string& slot) {
    auto r = conn_.exec(
        fmt::format("CREATE_REPLICATION_SLOT {} TEMPORARY LOGICAL pgoutput (SNAPSHOT 'export')",
                    quote_identifier(slot)));
    return {Lsn::parse(r.value(0, 1)).value_or(Lsn()), std::string(r.value(0, 2))};
}

std::unordered_map<std::uint32_t, std::vector<std::string>>
ReplicationConnection::publication_primary_keys(const std::string& publication) {
    // Walsender connections speak only the simple query protocol: no parameters, so the
    // (validated) publication name goes in as a quoted literal.
    auto r = conn_.exec(fmt::format(
        "SELECT c.oid, a.attname FROM pg_catalog.pg_publication_tables pt"
        " JOIN pg_catalog.pg_namespace n ON n.nspname = pt.schemaname"
        " JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename"
        " JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary"
        " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)"
        " WHERE pt.pubname = {}"
        " ORDER BY c.oid, array_position(i.indkey::int2[], a.attnum)",  // in key order
        quote_literal(publication)));
    std::unordered_map<std::uint32_t, std::vector<std::string>> keys;
    for (int row = 0; row < r.rows(); ++row) {
        keys[static_cast<std::uint32_t>(std::stoul(std::string(r.value(row, 0))))].emplace_back(
            r.value(row, 1));
    }
    return keys;
}

void ReplicationConnection::start_replication(const StartReplicationOptions& options) {
    // The walsender grammar takes the slot as an identifier and options as literals.
    std::string command = fmt::format(
        "START_REPLICATION SLOT {} LOGICAL {} (proto_version '{}', publication_names {}, "
        "messages '{}'",
        quote_identifier(options.slot), options.start.to_string(), options.streaming ? 2 : 1,
        quote_literal(quote_identifier(options.publication)), options.messages ? "true" : "false");
    if (options.streaming) {
        command += ", streaming 'on'";
    }
    command += ")";
    const std::string text(command);
    if (PQsendQuery(conn_.native(), text.c_str()) == 0) {
        throw Error(ErrorKind::Database, fmt::format("cannot send START_REPLICATION: {}",
                                                     PQerrorMessage(conn_.native())))
            .with("side", side())
            .with("slot", options.slot);
    }
    PGresult* result = PQgetResult(conn_.native());
    const ExecStatusType status = PQresultStatus(result);
    if (status != PGRES_COPY_BOTH) {
        const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
        const std::string message =
            pg::trimmed_message(primary != nullptr ? primary : PQresultErrorMessage(result));
        const char* sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
        PQclear(result);
        Error error(ErrorKind::Database, "START_REPLICATION failed: " + message);
        error.with("side", side()).with("slot", options.slot);
        if (sqlstate != nullptr) {
            error.with("sqlstate", sqlstate);
        }
        throw error;
    }
    PQclear(result);
    streaming_ = true;
}

std::optional<StreamMessage> ReplicationConnection::next(std::chrono::milliseconds timeout,
                                                         int wake_fd, int ready_fd) {
    release_buffer();
    PGconn* conn = conn_.native();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool polled = false;
    while (true) {
        const int length = PQgetCopyData(conn, &buffer_, /*async=*/1);
        if (length > 0) {
            return parse_stream_message(
                std::string_view(buffer_, static_cast<std::size_t>(length)));
        }
        if (length == -2 || length == -1) {
            std::string message = pg::trimmed_message(PQerrorMessage(conn));
            if (length == -1) {
                // The server ended the stream; fetch why.
                PGresult* result = PQgetResult(conn);
                if (result != nullptr && PQresultStatus(result) != PGRES_COMMAND_OK) {
                    message = pg::trimmed_message(PQresultErrorMessage(result));
                } else {
                    message = "the server ended the replication stream";
                }
                PQclear(result);
            }
            throw Error(ErrorKind::Database, "replication stream lost: " + message)
                .with("side", side());
        }
        // What the socket holds is read at least once, even with no time to wait (libpq reads
        // the socket only when asked to); a part of a millisecond left is waited as a whole one.
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline && polled) {
            return std::nullopt;
        }
        const auto left = now >= deadline
                              ? std::chrono::milliseconds(0)
                              : std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
        polled = true;
        pollfd fds[3] = {{PQsocket(conn), POLLIN, 0}, {wake_fd, POLLIN, 0}, {ready_fd, POLLIN, 0}};
        const int ready = ::poll(fds, 3, static_cast<int>(left.count()));  // -1s are skipped
        if (ready < 0 && errno != EINTR) {
            throw Error(ErrorKind::Database, fmt::format("poll failed: {}", std::strerror(errno)))
                .with("side", side());
        }
        if (wake_fd >= 0 && (fds[1].revents & POLLIN) != 0) {
            std::uint64_t signalled = 0;
            [[maybe_unused]] const auto read = ::read(wake_fd, &signalled, sizeof signalled);
            return std::nullopt;
        }
        if (ready_fd >= 0 && fds[2].revents != 0) {
            return std::nullopt;
        }
        if (ready > 0 && PQconsumeInput(conn) == 0) {
            throw Error(ErrorKind::Database,
                        "replication stream lost: " + pg::trimmed_message(PQerrorMessage(conn)))
                .with("side", side());
        }
    }
}

void ReplicationConnection::send_status(Lsn written, Lsn flushed, bool reply_requested) {
    const std::string message =
        encode_standby_status(written, flushed, flushed, now_unix_micros(), reply_requested);
    if (PQputCopyData(conn_.native(), message.data(), static_cast<int>(message.size())) != 1 ||
        PQflush(conn_.native()) != 0) {
        throw Error(ErrorKind::Database,
                    fmt::format("cannot send standby status: {}", PQerrorMessage(conn_.native())))
            .with("side", side());
    }
}

}  // namespace pgbridge::source
