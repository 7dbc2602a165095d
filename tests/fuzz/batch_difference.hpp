#pragma once

// Field-by-field comparison of batches and transactions for the fuzz targets that check what
// the message codec carries (no doctest: a target reports the first difference and aborts).

#include <cstddef>
#include <string>

#include <fmt/format.h>

#include <pgbridge/core/change_event.hpp>
#include <pgbridge/transport/change_batch.hpp>

namespace pgbridge::fuzz {

// Empty when equal; else where they differ.
inline std::string table_difference(const TableInfo& a, const TableInfo& b) {
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

inline std::string change_difference(const ChangeEvent& x, const ChangeEvent& y) {
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

// What the message format carries of a transaction (not its messages, origin LSN or streamed
// flag, which stay with capture).
inline std::string transaction_difference(const SourceTransaction& x, const SourceTransaction& y) {
    if (x.source_side != y.source_side || x.xid != y.xid || x.commit_lsn != y.commit_lsn ||
        x.end_lsn != y.end_lsn || x.origin != y.origin) {
        return "source, xid, LSNs or origin";
    }
    if (x.commit_time != y.commit_time) {
        return fmt::format("commit time {} became {}", x.commit_time, y.commit_time);
    }
    if (x.changes.size() != y.changes.size()) {
        return "change count";
    }
    for (std::size_t c = 0; c < x.changes.size(); ++c) {
        if (auto d = change_difference(x.changes[c], y.changes[c]); !d.empty()) {
            return fmt::format("changes[{}]: {}", c, d);
        }
    }
    return {};
}

inline std::string batch_difference(const transport::ChangeBatch& a,
                                    const transport::ChangeBatch& b) {
    if (a.bridge != b.bridge || a.source_side != b.source_side || a.kind != b.kind) {
        return "bridge, source or kind";
    }
    if (a.chunk != b.chunk) {
        return "chunk";
    }
    if (a.transactions.size() != b.transactions.size()) {
        return "transaction count";
    }
    for (std::size_t t = 0; t < a.transactions.size(); ++t) {
        if (auto d = transaction_difference(a.transactions[t], b.transactions[t]); !d.empty()) {
            return fmt::format("transactions[{}]: {}", t, d);
        }
    }
    return {};
}

}  // namespace pgbridge::fuzz
