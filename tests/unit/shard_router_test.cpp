// Sharded apply: the key rule every side computes alike, and how a transaction is split into
// the shards' shares.

#include <map>

#include <doctest/doctest.h>

#include <pgbridge/core/key_shard.hpp>
#include <pgbridge/transport/shard_router.hpp>

#include "../support/source_table.hpp"

using namespace pgbridge;
using namespace pgbridge::transport;

namespace {

ChangeEvent change(ChangeOp op, const std::shared_ptr<TableInfo>& table, const std::string& id) {
    ChangeEvent c;
    c.op = op;
    c.table = table;
    Row row{Value{Value::Kind::Text, id}, Value{Value::Kind::Text, "note " + id}};
    if (op == ChangeOp::Delete) {
        c.old_row = row;
    } else {
        c.new_row = row;
    }
    return c;
}

SourceTransaction transaction() {
    SourceTransaction t;
    t.source_side = "looma_crm";
    t.xid = 77;
    t.commit_lsn = Lsn(0x500);
    t.end_lsn = Lsn(0x580);
    t.commit_time = 1764099600000000;
    return t;
}

}  // namespace

TEST_CASE("key_shard: MD5 of the sorted values, first four bytes, modulo the shards") {
    // Expected values computed apart (Python's hashlib) from the rule in key_shard.hpp.
    CHECK(key_shard({"42"}, 4) == 2714814184u % 4);
    CHECK(key_shard({"1", "x"}, 7) == 2373547750u % 7);
    CHECK(key_shard({"x", "1"}, 7) == 2373547750u % 7);  // order of the columns: none
    CHECK(key_shard({"h\xc3\xa9llo"}, 1000) == 383);
    CHECK(key_shard({"42"}, 1) == 0);
    // Spread: 4 shards of 20,000 integer keys, each within 10 % of a quarter.
    std::map<std::uint32_t, int> counts;
    for (int id = 0; id < 20000; ++id) {
        const std::string text = std::to_string(id);
        const std::uint32_t k = key_shard({text}, 4);
        REQUIRE(k < 4);
        ++counts[k];
    }
    REQUIRE(counts.size() == 4);
    for (const auto& [shard, count] : counts) {
        CAPTURE(shard);
        CHECK(count > 4500);
        CHECK(count < 5500);
    }
}

TEST_CASE("key_shard_sql names every column through its output function") {
    const std::string sql = key_shard_sql({"\"id\"", "\"region\""}, 3);
    CHECK(sql.find("pg_catalog.format('%s', \"id\")") != std::string::npos);
    CHECK(sql.find("pg_catalog.format('%s', \"region\")") != std::string::npos);
    CHECK(sql.find("COLLATE \"C\"") != std::string::npos);
    CHECK(sql.ends_with("% 3)"));
}

TEST_CASE("a transaction is split by key; truncates and empty transactions reach every shard") {
    const auto talents = test::id_note_table("talents");
    const auto orders = test::id_note_table("orders");
    ShardRouting routing;
    routing.shards = 3;
    routing.atomic = [](const TableInfo& t) { return t.name == "orders"; };

    SourceTransaction t = transaction();
    for (int id = 0; id < 60; ++id) {
        t.changes.push_back(change(ChangeOp::Insert, talents, std::to_string(id)));
        t.changes.push_back(change(ChangeOp::Update, orders, std::to_string(id)));
        if (id == 30) {
            ChangeEvent truncate;
            truncate.op = ChangeOp::Truncate;
            truncate.table = talents;
            truncate.truncated = {talents};
            t.changes.push_back(truncate);
        }
    }
    t.changes.push_back(change(ChangeOp::Delete, talents, "7"));
    const auto shares = split_by_shard(t, routing);
    REQUIRE(shares.size() == 3);
    std::size_t total = 0;
    for (std::uint32_t k = 0; k < 3; ++k) {
        CAPTURE(k);
        REQUIRE(shares[k]);
        const SourceTransaction& s = *shares[k];
        CHECK(s.commit_lsn == t.commit_lsn);
        CHECK(s.end_lsn == t.end_lsn);
        CHECK(s.commit_time == t.commit_time);
        CHECK(s.xid == t.xid);
        int truncates = 0;
        int last_id = -1;
        bool after_truncate = false;
        for (const auto& c : s.changes) {
            if (c.op == ChangeOp::Truncate) {
                ++truncates;
                after_truncate = true;
                continue;
            }
            const std::string& id = (c.new_row ? *c.new_row : *c.old_row)[0].data;
            if (c.table == orders) {
                CHECK(k == 0);  // atomic: every change of the table on the first shard
            } else {
                CHECK(key_shard({id}, 3) == k);
            }
            // Source order kept within the share, the truncate in its place.
            const int n = std::stoi(id);
            if (c.op != ChangeOp::Delete) {
                CHECK(n >= last_id);
                CHECK((n > 30) == after_truncate);
                last_id = n;
            }
            ++total;
        }
        CHECK(truncates == 1);
    }
    CHECK(total == 121);  // every row change exactly once

    // The delete of key 7 goes where its insert went.
    const std::uint32_t seven = key_shard({"7"}, 3);
    CHECK(shares[seven]->changes.back().op == ChangeOp::Delete);

    // No row changes (a verify fence): every shard gets it, to move its progress.
    const auto fence = split_by_shard(transaction(), routing);
    for (const auto& share : fence) {
        REQUIRE(share);
        CHECK(share->changes.empty());
        CHECK(share->end_lsn == Lsn(0x580));
    }

    // Changes of one shard only: the others get nothing.
    SourceTransaction one = transaction();
    one.changes.push_back(change(ChangeOp::Insert, talents, "7"));
    const auto single = split_by_shard(one, routing);
    for (std::uint32_t k = 0; k < 3; ++k) {
        CHECK(single[k].has_value() == (k == seven));
    }

    // A truncate of an atomic table and another: the atomic one's rows are all on the first
    // shard, which alone truncates it; the other's on every shard.
    SourceTransaction both = transaction();
    ChangeEvent truncate;
    truncate.op = ChangeOp::Truncate;
    truncate.truncated = {orders, talents};
    truncate.table = orders;
    both.changes.push_back(truncate);
    const auto truncated = split_by_shard(both, routing);
    REQUIRE(truncated[0]->changes.size() == 2);
    CHECK(truncated[0]->changes[0].truncated ==
          std::vector<std::shared_ptr<const TableInfo>>{orders});
    CHECK(truncated[0]->changes[0].table == orders);
    CHECK(truncated[0]->changes[1].truncated ==
          std::vector<std::shared_ptr<const TableInfo>>{talents});
    for (std::uint32_t k = 1; k < 3; ++k) {
        REQUIRE(truncated[k]->changes.size() == 1);
        CHECK(truncated[k]->changes[0].truncated ==
              std::vector<std::shared_ptr<const TableInfo>>{talents});
        CHECK(truncated[k]->changes[0].table == talents);
    }

    // One shard: the transaction as it is.
    const auto whole = split_by_shard(t, ShardRouting{});
    REQUIRE(whole.size() == 1);
    CHECK(whole[0]->changes.size() == t.changes.size());
}
