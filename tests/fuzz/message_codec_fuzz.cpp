// Fuzz target: a RabbitMQ message body given to the message codec, as a consumer reads it.
// Whatever decodes must encode again, and that encoding must decode to an equal batch: a
// consumer that re-publishes (dead letters, replays) must not change what a message says.
// Seeds: batches the unit tests build, encoded (make_message_codec_seeds.cpp).

#include <cstddef>
#include <cstdint>
#include <string>

#include <fmt/format.h>

#include <pgbridge/transport/message_codec.hpp>

#include "fuzz_target.hpp"

namespace {

using namespace pgbridge;
using namespace pgbridge::transport;

// Empty when equal; else where they differ.
std::string table_difference(const TableInfo& a, const TableInfo& b) {
    if (a.schema != b.schema || a.name != b.name || a.replica_identity != b.replica_identity ||
        a.columns.size() != b.columns.size()) {
        return "table " + a.schema + "." + a.name;
    }
    for (std::size_t i = 0; i < a.columns.size(); ++i) {
        const ColumnInfo& x = a.columns[i];
        const ColumnInfo& y = b.columns[i];
        if (x.name != y.name || x.type_oid != y.type_oid || x.type_modifier != y.type_modifier ||
            x.key != y.key || x.primary_key != y.primary_key) {
            return fmt::format("table {}.{} column {}", a.schema, a.name, i);
        }
    }
    return {};
}

std::string change_difference(const ChangeEvent& x, const ChangeEvent& y) {
    if (x.op != y.op) {
        return "op";
    }
    if ((x.table == nullptr) != (y.table == nullptr)) {
        return "table presence";
    }
    if (x.table != nullptr) {
        if (auto d = table_difference(*x.table, *y.table); !d.empty()) {
            return d;
        }
    }
    if (x.truncated.size() != y.truncated.size()) {
        return "truncated table count";
    }
    for (std::size_t k = 0; k < x.truncated.size(); ++k) {
        if (auto d = table_difference(*x.truncated[k], *y.truncated[k]); !d.empty()) {
            return "truncated " + d;
        }
    }
    if (x.old_row != y.old_row || x.old_is_key_only != y.old_is_key_only) {
        return "old row";
    }
    if (x.new_row != y.new_row) {
        return "new row";
    }
    if (x.truncate_cascade != y.truncate_cascade ||
        x.truncate_restart_identity != y.truncate_restart_identity) {
        return "truncate options";
    }
    if (x.versions != y.versions) {
        return "versions";
    }
    return {};
}

std::string batch_difference(const ChangeBatch& a, const ChangeBatch& b) {
    if (a.bridge != b.bridge || a.source_side != b.source_side || a.kind != b.kind) {
        return "bridge, source or kind";
    }
    if (a.transactions.size() != b.transactions.size()) {
        return "transaction count";
    }
    for (std::size_t t = 0; t < a.transactions.size(); ++t) {
        const SourceTransaction& x = a.transactions[t];
        const SourceTransaction& y = b.transactions[t];
        const std::string where = fmt::format("transactions[{}]", t);
        if (x.source_side != y.source_side || x.xid != y.xid || x.commit_lsn != y.commit_lsn ||
            x.end_lsn != y.end_lsn || x.origin != y.origin) {
            return where + ": source, xid, LSNs or origin";
        }
        if (x.commit_time != y.commit_time) {
            return fmt::format("{}: commit time {} became {}", where, x.commit_time, y.commit_time);
        }
        if (x.changes.size() != y.changes.size()) {
            return where + ": change count";
        }
        for (std::size_t c = 0; c < x.changes.size(); ++c) {
            if (auto d = change_difference(x.changes[c], y.changes[c]); !d.empty()) {
                return fmt::format("{}.changes[{}]: {}", where, c, d);
            }
        }
    }
    return {};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    ChangeBatch batch;
    if (!fuzz::returns_or_throws(ErrorKind::Protocol,
                                 [&] { batch = decode_body(fuzz::as_text(data, size)); })) {
        return 0;
    }
    // What a consumer does with a batch it read: name it, and re-publish it.
    static_cast<void>(message_id(batch));
    static_cast<void>(message_headers(batch));
    const std::string again = encode_body(batch);
    ChangeBatch second;
    try {
        second = decode_body(again);
    } catch (const Error& e) {
        fuzz::fail(std::string("a decoded batch, encoded again, does not decode: ") + e.what() +
                   "\nencoded: " + again);
    }
    if (const std::string d = batch_difference(batch, second); !d.empty()) {
        fuzz::fail("a decoded batch, encoded and decoded again, differs at " + d +
                   "\nencoded: " + again);
    }
    // And whatever the comparison above does not name: the encoding is canonical.
    if (const std::string third = encode_body(second); third != again) {
        fuzz::fail("a batch encodes differently after a round trip\nfirst:  " + again +
                   "\nsecond: " + third);
    }
    return 0;
}
