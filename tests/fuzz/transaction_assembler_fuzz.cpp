// Fuzz target: a replication stream fed to the transaction assembler, as capture feeds it.
// Input: one option byte, then payloads, each a big-endian uint16 length and that many bytes
// (the last one may be short). Option bit 0: give the assembler primary keys (the first column
// of each relation that the stream describes), as capture does from the catalog. Bit 1: after a
// protocol error go on with reset() (capture starts a new session) instead of stopping.
// Every committed transaction must hold what downstream relies on.

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <pgbridge/pgoutput/decoder.hpp>
#include <pgbridge/pgoutput/transaction_assembler.hpp>

#include "fuzz_target.hpp"

namespace {

using namespace pgbridge;

std::vector<std::string_view> split_payloads(std::string_view input) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i + 2 <= input.size()) {
        const std::size_t length =
            (static_cast<std::size_t>(static_cast<unsigned char>(input[i])) << 8) |
            static_cast<unsigned char>(input[i + 1]);
        i += 2;
        const std::size_t n = std::min(length, input.size() - i);
        out.push_back(input.substr(i, n));
        i += n;
    }
    return out;
}

void check_row(const std::optional<Row>& row, const TableInfo& table, const char* what) {
    if (row) {
        fuzz::check(row->size() == table.columns.size(),
                    std::string(what) + " row does not have one value per column");
    }
}

void check_transaction(const SourceTransaction& txn) {
    fuzz::check(txn.source_side == "fuzz", "transaction without its source side");
    for (const ChangeEvent& c : txn.changes) {
        fuzz::check(c.table != nullptr, "change without a table");
        if (c.op == ChangeOp::Truncate) {
            fuzz::check(!c.truncated.empty() && c.table == c.truncated.front(),
                        "truncate whose table is not its first truncated table");
            for (const auto& t : c.truncated) {
                fuzz::check(t != nullptr, "truncate of a null table");
            }
            continue;
        }
        check_row(c.old_row, *c.table, "old");
        check_row(c.new_row, *c.table, "new");
        fuzz::check(c.new_row.has_value() == (c.op != ChangeOp::Delete),
                    "new row present exactly for inserts and updates");
        fuzz::check(c.op != ChangeOp::Delete || c.old_row.has_value(), "delete without old row");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::uint8_t options = data[0];
    const auto payloads = split_payloads(fuzz::as_text(data + 1, size - 1));

    pgoutput::TransactionAssembler assembler("fuzz");
    if ((options & 1) != 0) {
        std::unordered_map<std::uint32_t, std::vector<std::string>> keys;
        for (const auto payload : payloads) {
            try {
                const auto m = pgoutput::decode_message(payload, false);
                if (const auto* r = std::get_if<pgoutput::RelationMessage>(&m);
                    r != nullptr && !r->table.columns.empty()) {
                    keys[r->table.relation_oid] = {r->table.columns.front().name};
                }
            } catch (const Error&) {
            }
        }
        assembler.set_primary_keys(std::move(keys));
    }
    for (const auto payload : payloads) {
        const bool fed = fuzz::returns_or_throws(ErrorKind::Protocol, [&] {
            if (auto txn = assembler.feed(payload)) {
                check_transaction(*txn);
            }
        });
        if (!fed) {
            if ((options & 2) == 0) {
                break;
            }
            assembler.reset();
            fuzz::check(!assembler.holds_partial_data(), "partial data after reset()");
        }
    }
    return 0;
}
