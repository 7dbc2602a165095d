#include <fmt/format.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/pgoutput/byte_reader.hpp>
#include <pgbridge/pgoutput/decoder.hpp>

namespace pgbridge::pgoutput {
namespace {

Lsn read_lsn(ByteReader& r, std::string_view what) {
    return Lsn(r.u64(what));
}

// A time outside the years 0000..9999 is refused here: it could not travel (the message
// format writes four-digit years) and no server clock gives one.
UnixMicros read_time(ByteReader& r, std::string_view what) {
    const std::size_t offset = r.offset();
    const std::int64_t pg_micros = r.i64(what);
    try {
        return from_postgres_time(pg_micros, what);
    } catch (Error& e) {
        e.with("offset", std::to_string(offset));
        throw;
    }
}

std::optional<std::uint32_t> read_stream_xid(ByteReader& r, bool in_stream_block) {
    if (!in_stream_block) {
        return std::nullopt;
    }
    return r.u32("transaction id");
}

// TupleData: Int16 column count, then per column a kind byte and, for text and binary
// values, an Int32 length and the bytes.
Row read_tuple(ByteReader& r) {
    const std::uint16_t count = r.u16("tuple column count");
    if (count > kMaxColumns) {
        throw Error(ErrorKind::Protocol, fmt::format("tuple has {} columns, more than "
                                                     "PostgreSQL allows ({})",
                                                     count, kMaxColumns))
            .with("offset", std::to_string(r.offset()));
    }
    Row row;
    row.reserve(count);
    for (std::uint16_t i = 0; i < count; ++i) {
        const char kind = static_cast<char>(r.u8("tuple column kind"));
        Value value;
        switch (kind) {
            case 'n':
                value.kind = Value::Kind::Null;
                break;
            case 'u':
                value.kind = Value::Kind::UnchangedToast;
                break;
            case 't':
            case 'b': {
                value.kind = kind == 't' ? Value::Kind::Text : Value::Kind::Binary;
                const std::int32_t length = r.i32("column value length");
                if (length < 0) {
                    throw Error(ErrorKind::Protocol,
                                fmt::format("column {} has negative length {}", i + 1, length))
                        .with("offset", std::to_string(r.offset()));
                }
                const std::size_t offset = r.offset();
                value.data = r.bytes(static_cast<std::size_t>(length), "column value");
                // A type's text output is a C string in PostgreSQL: a NUL means misread bytes,
                // and neither libpq nor the message format could carry the value on.
                if (kind == 't' && value.data.find('\0') != std::string::npos) {
                    throw Error(ErrorKind::Protocol,
                                fmt::format("column {} has a text value with a NUL byte", i + 1))
                        .with("offset", std::to_string(offset));
                }
                break;
            }
            default:
                throw Error(ErrorKind::Protocol,
                            fmt::format("column {} has unknown kind byte 0x{:02x}", i + 1,
                                        static_cast<unsigned char>(kind)))
                    .with("offset", std::to_string(r.offset() - 1));
        }
        row.push_back(std::move(value));
    }
    return row;
}

// 'K' (key columns) or 'O' (whole old row) followed by TupleData.
std::pair<Row, bool> read_old_tuple(ByteReader& r, char marker, std::string_view message) {
    if (marker != 'K' && marker != 'O') {
        throw Error(ErrorKind::Protocol,
                    fmt::format("{} message: expected 'K' or 'O' before the old row, got 0x{:02x}",
                                message, static_cast<unsigned char>(marker)))
            .with("offset", std::to_string(r.offset() - 1));
    }
    return {read_tuple(r), marker == 'K'};
}

void expect_marker(ByteReader& r, char wanted, std::string_view message) {
    const char got = static_cast<char>(r.u8("tuple marker"));
    if (got != wanted) {
        throw Error(ErrorKind::Protocol,
                    fmt::format("{} message: expected '{}' before the new "
                                "row, got 0x{:02x}",
                                message, wanted, static_cast<unsigned char>(got)))
            .with("offset", std::to_string(r.offset() - 1));
    }
}

RelationMessage read_relation(ByteReader& r, bool in_stream_block) {
    RelationMessage m;
    m.xid = read_stream_xid(r, in_stream_block);
    m.table.relation_oid = r.u32("relation oid");
    m.table.schema = r.cstring("relation namespace");
    if (m.table.schema.empty()) {
        m.table.schema = "pg_catalog";  // the protocol sends "" for pg_catalog
    }
    m.table.name = r.cstring("relation name");
    m.table.replica_identity = static_cast<char>(r.u8("replica identity"));
    // pg_class.relreplident: default, nothing, full or index.
    if (std::string_view("dnfi").find(m.table.replica_identity) == std::string_view::npos) {
        throw Error(
            ErrorKind::Protocol,
            fmt::format("relation {}.{} has unknown replica identity 0x{:02x}", m.table.schema,
                        m.table.name, static_cast<unsigned char>(m.table.replica_identity)))
            .with("offset", std::to_string(r.offset() - 1));
    }
    const std::uint16_t count = r.u16("relation column count");
    if (count > kMaxColumns) {
        throw Error(ErrorKind::Protocol, fmt::format("relation has {} columns, more than "
                                                     "PostgreSQL allows ({})",
                                                     count, kMaxColumns));
    }
    m.table.columns.reserve(count);
    for (std::uint16_t i = 0; i < count; ++i) {
        ColumnInfo column;
        column.key = (r.u8("column flags") & 1) != 0;
        column.name = r.cstring("column name");
        column.type_oid = r.u32("column type oid");
        column.type_modifier = r.i32("column type modifier");
        m.table.columns.push_back(std::move(column));
    }
    return m;
}

Message decode(ByteReader& r, char type, bool in_stream_block) {
    switch (type) {
        case 'B': {
            BeginMessage m;
            m.final_lsn = read_lsn(r, "final LSN");
            m.commit_time = read_time(r, "commit time");
            m.xid = r.u32("transaction id");
            return m;
        }
        case 'C': {
            CommitMessage m;
            m.flags = r.u8("commit flags");
            m.commit_lsn = read_lsn(r, "commit LSN");
            m.end_lsn = read_lsn(r, "end LSN");
            m.commit_time = read_time(r, "commit time");
            return m;
        }
        case 'O': {
            OriginMessage m;
            m.origin_lsn = read_lsn(r, "origin commit LSN");
            m.name = r.cstring("origin name");
            return m;
        }
        case 'R':
            return read_relation(r, in_stream_block);
        case 'Y': {
            TypeMessage m;
            m.xid = read_stream_xid(r, in_stream_block);
            m.type_oid = r.u32("type oid");
            m.schema = r.cstring("type namespace");
            m.name = r.cstring("type name");
            return m;
        }
        case 'I': {
            InsertMessage m;
            m.xid = read_stream_xid(r, in_stream_block);
            m.relation_oid = r.u32("relation oid");
            expect_marker(r, 'N', "Insert");
            m.new_row = read_tuple(r);
            return m;
        }
        case 'U': {
            UpdateMessage m;
            m.xid = read_stream_xid(r, in_stream_block);
            m.relation_oid = r.u32("relation oid");
            char marker = static_cast<char>(r.u8("tuple marker"));
            if (marker == 'K' || marker == 'O') {
                auto [row, key_only] = read_old_tuple(r, marker, "Update");
                m.old_row = std::move(row);
                m.old_is_key_only = key_only;
                marker = static_cast<char>(r.u8("tuple marker"));
            }
            if (marker != 'N') {
                throw Error(ErrorKind::Protocol,
                            fmt::format("Update message: expected 'N' before the new row, got "
                                        "0x{:02x}",
                                        static_cast<unsigned char>(marker)))
                    .with("offset", std::to_string(r.offset() - 1));
            }
            m.new_row = read_tuple(r);
            return m;
        }
        case 'D': {
            DeleteMessage m;
            m.xid = read_stream_xid(r, in_stream_block);
            m.relation_oid = r.u32("relation oid");
            auto [row, key_only] =
                read_old_tuple(r, static_cast<char>(r.u8("tuple marker")), "Delete");
            m.old_row = std::move(row);
            m.old_is_key_only = key_only;
            return m;
        }
        case 'T': {
            TruncateMessage m;
            m.xid = read_stream_xid(r, in_stream_block);
            const std::uint32_t count = r.u32("truncated relation count");
            const std::uint8_t options = r.u8("truncate options");
            m.cascade = (options & 1) != 0;
            m.restart_identity = (options & 2) != 0;
            if (count > kMaxTruncatedRelations || count > r.remaining() / 4) {
                throw Error(ErrorKind::Protocol,
                            fmt::format("Truncate message claims {} relations but holds {} "
                                        "bytes",
                                        count, r.remaining()));
            }
            for (std::uint32_t i = 0; i < count; ++i) {
                m.relation_oids.push_back(r.u32("truncated relation oid"));
            }
            return m;
        }
        case 'M': {
            LogicalDecodingMessage m;
            m.xid = read_stream_xid(r, in_stream_block);
            m.transactional = (r.u8("message flags") & 1) != 0;
            m.lsn = read_lsn(r, "message LSN");
            m.prefix = r.cstring("message prefix");
            const std::int32_t length = r.i32("message content length");
            if (length < 0) {
                throw Error(ErrorKind::Protocol,
                            fmt::format("logical message has negative length {}", length));
            }
            m.content = r.bytes(static_cast<std::size_t>(length), "message content");
            return m;
        }
        case 'S': {
            StreamStartMessage m;
            m.xid = r.u32("transaction id");
            m.first_segment = r.u8("first segment flag") == 1;
            return m;
        }
        case 'E':
            return StreamStopMessage{};
        case 'c': {
            StreamCommitMessage m;
            m.xid = r.u32("transaction id");
            m.flags = r.u8("commit flags");
            m.commit_lsn = read_lsn(r, "commit LSN");
            m.end_lsn = read_lsn(r, "end LSN");
            m.commit_time = read_time(r, "commit time");
            return m;
        }
        case 'A': {
            StreamAbortMessage m;
            m.xid = r.u32("transaction id");
            m.subxid = r.u32("subtransaction id");
            return m;
        }
        case 'b':
        case 'P':
        case 'K':
        case 'r':
        case 'p':
            throw Error(ErrorKind::Protocol,
                        fmt::format("two-phase message '{}' received, but pgbridge never asks "
                                    "for two_phase",
                                    type));
        default:
            throw Error(ErrorKind::Protocol, fmt::format("unknown pgoutput message type 0x{:02x}",
                                                         static_cast<unsigned char>(type)));
    }
}

std::string type_name(char type) {
    if (type >= 0x20 && type < 0x7f) {
        return std::string(1, type);
    }
    return fmt::format("0x{:02x}", static_cast<unsigned char>(type));
}

}  // namespace

Message decode_message(std::string_view payload, bool in_stream_block) {
    ByteReader r(payload);
    char type = '?';
    try {
        type = static_cast<char>(r.u8("message type"));
        Message m = decode(r, type, in_stream_block);
        r.expect_end(type_name(type));
        return m;
    } catch (Error& e) {
        if (e.context_value("message_type").empty()) {
            e.with("message_type", type_name(type));
        }
        throw;
    }
}

}  // namespace pgbridge::pgoutput
