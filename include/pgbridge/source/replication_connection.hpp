#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <pgbridge/core/lsn.hpp>
#include <pgbridge/pg/connection.hpp>
#include <pgbridge/source/walsender_protocol.hpp>

namespace pgbridge::source {

struct ServerIdentity {
    std::string system_id;
    int timeline = 0;
    Lsn wal_position;
    std::string database;
};

struct StartReplicationOptions {
    std::string slot;
    std::string publication;
    Lsn start;              // 0/0: from the slot's confirmed position
    bool streaming = true;  // protocol version 2 streaming of large in-progress transactions
    bool messages = true;   // pass pg_logical_emit_message() through
};

// A walsender connection (replication=database) in CopyBoth mode: pgoutput chunks in,
// standby status updates out.
class ReplicationConnection {
  public:
    explicit ReplicationConnection(pg::ConnectOptions options);  // connects
    ~ReplicationConnection();
    ReplicationConnection(ReplicationConnection&&) noexcept;
    ReplicationConnection& operator=(ReplicationConnection&&) noexcept;

    ServerIdentity identify_system();
    // A pgoutput slot that lives as long as this connection (pgbridge tail). Returns the
    // position it starts at.
    Lsn create_temporary_slot(const std::string& name);
    // The same, exporting the snapshot of its starting point: a transaction on another
    // connection that imports it (SET TRANSACTION SNAPSHOT) sees exactly what was committed
    // before the position returned. Valid while this connection stays open and idle.
    struct ExportedSnapshot {
        Lsn consistent_point;
        std::string name;
    };
    ExportedSnapshot create_temporary_slot_with_snapshot(const std::string& slot);
    // Primary key columns of every table in the publication (relation oid -> names). Runs as
    // plain SQL on the walsender connection, so only before start_replication().
    std::unordered_map<std::uint32_t, std::vector<std::string>> publication_primary_keys(
        const std::string& publication);
    void start_replication(const StartReplicationOptions& options);

    // The next stream message, waiting at most `timeout` (nullopt on timeout) or until the
    // eventfd `wake_fd` is signalled (it is read, ready to be signalled again) or `ready_fd`
    // becomes readable (left for its owner to read); -1 for none. Views into the returned
    // message stay valid until the next call. Throws Error(Database) when the connection or
    // the server fails.
    std::optional<StreamMessage> next(std::chrono::milliseconds timeout, int wake_fd = -1,
                                      int ready_fd = -1);
    void send_status(Lsn written, Lsn flushed, bool reply_requested);

    const std::string& side() const { return conn_.side(); }

  private:
    void release_buffer();

    pg::Connection conn_;
    char* buffer_ = nullptr;
    bool streaming_ = false;
};

}  // namespace pgbridge::source
