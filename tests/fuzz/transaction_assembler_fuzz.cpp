// Fuzz target: a replication stream fed to the transaction assembler, as capture feeds it.
// Input: an option byte and length-prefixed payloads (stream_input.hpp). Option bit 0: give the
// assembler primary keys (the first column of each relation the stream describes), as capture
// does from the catalog. Bit 1: after a protocol error go on with reset() (capture starts a new
// session) instead of stopping.
// Every committed transaction must hold what downstream relies on.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pgbridge/pgoutput/transaction_assembler.hpp>

#include "fuzz_target.hpp"
#include "stream_input.hpp"

namespace {

using namespace pgbridge;

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
    const auto payloads = fuzz::split_payloads(fuzz::as_text(data + 1, size - 1));

    pgoutput::TransactionAssembler assembler("fuzz");
    if ((options & fuzz::kWithPrimaryKeys) != 0) {
        assembler.set_primary_keys(fuzz::primary_keys_of(payloads));
    }
    for (const auto payload : payloads) {
        const bool fed = fuzz::returns_or_throws(ErrorKind::Protocol, [&] {
            if (auto txn = assembler.feed(payload)) {
                check_transaction(*txn);
            }
        });
        if (!fed) {
            if ((options & fuzz::kResetAfterError) == 0) {
                break;
            }
            assembler.reset();
            fuzz::check(!assembler.holds_partial_data(), "partial data after reset()");
        }
    }
    return 0;
}
