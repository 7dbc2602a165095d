#pragma once

// Field-by-field comparison of decoded transactions, for tests that check that something
// (the message codec, RabbitMQ) carries a transaction unchanged.

#include <doctest/doctest.h>

#include <pgbridge/core/change_event.hpp>

namespace pgbridge::test {

inline void check_same_table(const TableInfo& a, const TableInfo& b) {
    CHECK(a.schema == b.schema);
    CHECK(a.name == b.name);
    CHECK(a.replica_identity == b.replica_identity);
    REQUIRE(a.columns.size() == b.columns.size());
    for (std::size_t i = 0; i < a.columns.size(); ++i) {
        CHECK(a.columns[i].name == b.columns[i].name);
        CHECK(a.columns[i].type_oid == b.columns[i].type_oid);
        CHECK(a.columns[i].type_modifier == b.columns[i].type_modifier);
        CHECK(a.columns[i].primary_key == b.columns[i].primary_key);
        CHECK(a.columns[i].key == b.columns[i].key);
    }
}

inline void check_same_transaction(const SourceTransaction& a, const SourceTransaction& b) {
    CHECK(a.source_side == b.source_side);
    CHECK(a.xid == b.xid);
    CHECK(a.commit_lsn == b.commit_lsn);
    CHECK(a.end_lsn == b.end_lsn);
    CHECK(a.commit_time == b.commit_time);
    CHECK(a.origin == b.origin);
    REQUIRE(a.changes.size() == b.changes.size());
    for (std::size_t i = 0; i < a.changes.size(); ++i) {
        CAPTURE(i);
        const ChangeEvent& x = a.changes[i];
        const ChangeEvent& y = b.changes[i];
        CHECK(x.op == y.op);
        check_same_table(*x.table, *y.table);
        CHECK(x.old_row == y.old_row);
        CHECK(x.old_is_key_only == y.old_is_key_only);
        CHECK(x.new_row == y.new_row);
        REQUIRE(x.truncated.size() == y.truncated.size());
        for (std::size_t k = 0; k < x.truncated.size(); ++k) {
            check_same_table(*x.truncated[k], *y.truncated[k]);
        }
        CHECK(x.truncate_cascade == y.truncate_cascade);
        CHECK(x.truncate_restart_identity == y.truncate_restart_identity);
        CHECK(x.versions == y.versions);
    }
}

}  // namespace pgbridge::test
