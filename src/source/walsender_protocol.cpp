#include <fmt/format.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/pgoutput/byte_reader.hpp>
#include <pgbridge/source/walsender_protocol.hpp>

namespace pgbridge::source {

StreamMessage parse_stream_message(std::string_view bytes) {
    pgoutput::ByteReader r(bytes);
    const char type = static_cast<char>(r.u8("stream message type"));
    if (type == 'w') {
        XLogData m;
        m.wal_start = Lsn(r.u64("XLogData start"));
        m.server_wal_end = Lsn(r.u64("XLogData WAL end"));
        m.send_time = from_postgres_time(r.i64("XLogData send time"));
        m.payload = bytes.substr(r.offset());
        if (m.payload.empty()) {
            throw Error(ErrorKind::Protocol, "XLogData without payload");
        }
        return m;
    }
    if (type == 'k') {
        PrimaryKeepalive m;
        m.sent_up_to = Lsn(r.u64("keepalive WAL end"));
        m.send_time = from_postgres_time(r.i64("keepalive send time"));
        m.reply_requested = r.u8("keepalive reply flag") != 0;
        r.expect_end("keepalive");
        return m;
    }
    throw Error(ErrorKind::Protocol, fmt::format("unknown replication stream message 0x{:02x}",
                                                 static_cast<unsigned char>(type)));
}

std::string encode_standby_status(Lsn written, Lsn flushed, Lsn applied, UnixMicros now,
                                  bool reply_requested) {
    std::string out;
    out.reserve(34);
    out += 'r';
    auto put64 = [&](std::uint64_t v) {
        for (int shift = 56; shift >= 0; shift -= 8) {
            out += static_cast<char>((v >> shift) & 0xFF);
        }
    };
    put64(written.value);
    put64(flushed.value);
    put64(applied.value);
    put64(static_cast<std::uint64_t>(to_postgres_time(now)));
    out += static_cast<char>(reply_requested ? 1 : 0);
    return out;
}

}  // namespace pgbridge::source
