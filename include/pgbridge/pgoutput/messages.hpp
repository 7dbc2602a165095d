#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <pgbridge/core/change_event.hpp>
#include <pgbridge/core/lsn.hpp>

namespace pgbridge::pgoutput {

// The messages of PostgreSQL's logical replication protocol (pgoutput), protocol versions 1
// and 2, as decoded from one XLogData payload. docs/pgoutput-wire-format.md gives the layout.
// Times are converted to Unix microseconds. `xid` is set on data messages only inside a
// streamed block (protocol version 2); it may name a subtransaction.

struct BeginMessage {
    Lsn final_lsn;
    UnixMicros commit_time = 0;
    std::uint32_t xid = 0;
};

struct CommitMessage {
    std::uint8_t flags = 0;
    Lsn commit_lsn;
    Lsn end_lsn;
    UnixMicros commit_time = 0;
};

struct OriginMessage {
    Lsn origin_lsn;
    std::string name;
};

struct RelationMessage {
    std::optional<std::uint32_t> xid;
    TableInfo table;
};

struct TypeMessage {
    std::optional<std::uint32_t> xid;
    std::uint32_t type_oid = 0;
    std::string schema;
    std::string name;
};

struct InsertMessage {
    std::optional<std::uint32_t> xid;
    std::uint32_t relation_oid = 0;
    Row new_row;
};

struct UpdateMessage {
    std::optional<std::uint32_t> xid;
    std::uint32_t relation_oid = 0;
    std::optional<Row> old_row;  // 'O' (full old row) or 'K' (key columns only)
    bool old_is_key_only = false;
    Row new_row;
};

struct DeleteMessage {
    std::optional<std::uint32_t> xid;
    std::uint32_t relation_oid = 0;
    Row old_row;
    bool old_is_key_only = false;
};

struct TruncateMessage {
    std::optional<std::uint32_t> xid;
    std::vector<std::uint32_t> relation_oids;
    bool cascade = false;
    bool restart_identity = false;
};

struct LogicalDecodingMessage {
    std::optional<std::uint32_t> xid;
    bool transactional = false;
    Lsn lsn;
    std::string prefix;
    std::string content;
};

struct StreamStartMessage {
    std::uint32_t xid = 0;
    bool first_segment = false;
};

struct StreamStopMessage {};

struct StreamCommitMessage {
    std::uint32_t xid = 0;
    std::uint8_t flags = 0;
    Lsn commit_lsn;
    Lsn end_lsn;
    UnixMicros commit_time = 0;
};

struct StreamAbortMessage {
    std::uint32_t xid = 0;
    std::uint32_t subxid = 0;
};

using Message = std::variant<BeginMessage, CommitMessage, OriginMessage, RelationMessage,
                             TypeMessage, InsertMessage, UpdateMessage, DeleteMessage,
                             TruncateMessage, LogicalDecodingMessage, StreamStartMessage,
                             StreamStopMessage, StreamCommitMessage, StreamAbortMessage>;

}  // namespace pgbridge::pgoutput
