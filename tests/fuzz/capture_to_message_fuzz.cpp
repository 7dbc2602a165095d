// Fuzz target: capture into the message format. A replication stream (the input of the
// transaction_assembler target, stream_input.hpp) is assembled as capture assembles it, and
// each committed transaction, versions parsed as capture parses them, is published alone: it
// must encode, and decode to the same transaction. Whatever capture accepts, the transport must
// carry; a difference means a change that capture takes and a consumer dead-letters.
//
// Known gaps, skipped until the message codec handles them (tests/fuzz/pending/README.md):
// names that are not UTF-8 (a LATIN1 or SQL_ASCII source) make encode_body throw, and a table
// without columns does not decode.

#include <cstddef>
#include <cstdint>
#include <string>

#include <pgbridge/core/utf8.hpp>
#include <pgbridge/pgoutput/transaction_assembler.hpp>
#include <pgbridge/transport/message_codec.hpp>

#include "batch_difference.hpp"
#include "fuzz_target.hpp"
#include "stream_input.hpp"

namespace {

using namespace pgbridge;

bool codec_takes(const TableInfo& table) {
    if (!is_valid_utf8(table.schema) || !is_valid_utf8(table.name) ||
        !is_valid_utf8(std::string(1, table.replica_identity))) {
        return false;
    }
    for (const auto& column : table.columns) {
        if (!is_valid_utf8(column.name)) {
            return false;
        }
    }
    return true;
}

bool codec_takes(const SourceTransaction& txn) {
    if (txn.origin && !is_valid_utf8(*txn.origin)) {
        return false;
    }
    for (const auto& c : txn.changes) {
        if (!codec_takes(*c.table)) {
            return false;
        }
        for (const auto& t : c.truncated) {
            if (!codec_takes(*t)) {
                return false;
            }
        }
    }
    return true;
}

void publish_and_consume(SourceTransaction txn) {
    if (!codec_takes(txn)) {
        return;
    }
    transport::ChangeBatch batch;
    batch.bridge = "fuzz";
    batch.source_side = txn.source_side;
    batch.transactions.push_back(txn);
    std::string body;
    try {
        body = transport::encode_body(batch);
    } catch (const Error& e) {
        fuzz::fail(std::string("a transaction capture accepted does not encode: ") + e.what());
    }
    transport::ChangeBatch decoded;
    try {
        decoded = transport::decode_body(body);
    } catch (const Error& e) {
        fuzz::fail(std::string("a transaction capture accepted, encoded, does not decode: ") +
                   e.what() + "\nencoded: " + body);
    }
    fuzz::check(decoded.transactions.size() == 1, "one transaction published, another count read");
    if (const auto d = fuzz::transaction_difference(txn, decoded.transactions[0]); !d.empty()) {
        fuzz::fail("a transaction capture accepted differs after encoding at " + d +
                   "\nencoded: " + body);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::uint8_t options = data[0];
    const auto payloads = fuzz::split_payloads(fuzz::as_text(data + 1, size - 1));
    pgoutput::TransactionAssembler assembler("fuzz");
    if ((options & fuzz::kWithPrimaryKeys) != 0) {
        assembler.set_primary_keys(fuzz::primary_keys_of(payloads));
    }
    for (const auto payload : payloads) {
        std::optional<SourceTransaction> txn;
        if (!fuzz::returns_or_throws(ErrorKind::Protocol, [&] { txn = assembler.feed(payload); })) {
            if ((options & fuzz::kResetAfterError) == 0) {
                return 0;
            }
            assembler.reset();
            continue;
        }
        if (txn) {
            publish_and_consume(std::move(*txn));
        }
    }
    return 0;
}
