#pragma once

#include <string>
#include <string_view>
#include <variant>

#include <pgbridge/core/lsn.hpp>

namespace pgbridge::source {

// The CopyBoth messages of the streaming replication protocol around the pgoutput payload
// (docs/pgoutput-wire-format.md, "Replication stream").

// 'w': a chunk of decoded WAL. payload views the buffer it was parsed from.
struct XLogData {
    Lsn wal_start;
    Lsn server_wal_end;  // the server's current end of WAL; NOT a position safe to confirm
    UnixMicros send_time = 0;
    std::string_view payload;
};

// 'k': the walsender's keepalive. sent_up_to is the position up to which it has processed
// (and sent) WAL: every transaction committed before it has been sent already.
struct PrimaryKeepalive {
    Lsn sent_up_to;
    UnixMicros send_time = 0;
    bool reply_requested = false;
};

using StreamMessage = std::variant<XLogData, PrimaryKeepalive>;

// Throws Error(ErrorKind::Protocol) on anything else or on truncated input.
StreamMessage parse_stream_message(std::string_view bytes);

// 'r': standby status update. written/flushed/applied are "last byte + 1" positions; an
// invalid (zero) flushed position leaves the slot where it is.
std::string encode_standby_status(Lsn written, Lsn flushed, Lsn applied, UnixMicros now,
                                  bool reply_requested);

}  // namespace pgbridge::source
