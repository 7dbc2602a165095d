// The conflict log's pure parts: the list query a filter makes, the parameters of a recorded
// conflict, and keys read back in a table's key column order.

#include <doctest/doctest.h>

#include <pgbridge/apply/conflict_log.hpp>
#include <pgbridge/apply/remote_change.hpp>

using namespace pgbridge;
using namespace pgbridge::apply;

namespace {

// Only what the log reads of a table: its name, columns and key.
TargetTable orders() {
    TargetTable t;
    t.name = {"shop", "orders"};
    t.columns = {{"id", "id", "bigint", true},
                 {"note", "note", "text", false},
                 {"region", "region", "text", true}};
    t.key = {2, 0};  // the key's order is not the columns' order
    return t;
}

}  // namespace

TEST_CASE("the list query sets only the filters given, newest first, limited") {
    SUBCASE("no filter") {
        const ConflictQuery q = list_conflicts_query({false, "", 100});
        CHECK(q.sql.find(" WHERE ") == std::string::npos);
        CHECK(q.sql.ends_with(" FROM pgbridge.conflicts ORDER BY id DESC LIMIT $1::int"));
        CHECK(q.params == pg::Params{"100"});
    }
    SUBCASE("pending only") {
        const ConflictQuery q = list_conflicts_query({true, "", 5});
        CHECK(q.sql.ends_with(" WHERE status = 'pending' ORDER BY id DESC LIMIT $1::int"));
        CHECK(q.params == pg::Params{"5"});
    }
    SUBCASE("one table") {
        const ConflictQuery q = list_conflicts_query({false, "shop.orders", 7});
        CHECK(q.sql.ends_with(" WHERE table_name = $1 ORDER BY id DESC LIMIT $2::int"));
        CHECK(q.params == pg::Params{"shop.orders", "7"});
    }
    SUBCASE("pending of one table") {
        const ConflictQuery q = list_conflicts_query({true, "shop.orders", 7});
        CHECK(q.sql.ends_with(
            " WHERE status = 'pending' AND table_name = $1 ORDER BY id DESC LIMIT $2::int"));
        CHECK(q.params == pg::Params{"shop.orders", "7"});
    }
}

TEST_CASE("a recorded conflict is resolved when it has a winner, pending without one") {
    NewConflict c{.bridge = "demo",
                  .table = "shop.orders",
                  .key = R"({"id":"1"})",
                  .kind = "update_update",
                  .columns = {"note", "we\"ird"},
                  .local_side = "b",
                  .remote_side = "a",
                  .local_values = R"({"note":"x"})",
                  .remote_values = std::nullopt,
                  .local_commit_time = std::nullopt,
                  .remote_commit_time = "2024-01-02 03:04:05+00",
                  .remote_lsn = "0/16B3748",
                  .strategy = "last_write_wins",
                  .winner = "a",
                  .settled_by = "pgbridge",
                  .note = std::nullopt};
    const ConflictInsert settled = record_conflict_statement(c);
    CHECK(settled.sql.starts_with("INSERT INTO pgbridge.conflicts "));
    REQUIRE(settled.params.size() == 17);
    CHECK(settled.params[4] == R"({"note","we\"ird"})");
    CHECK(settled.params[9] == std::nullopt);
    CHECK(settled.params[13] == "a");
    CHECK(settled.params[14] == "resolved");
    CHECK(settled.params[15] == "pgbridge");
    CHECK(settled.params[16] == std::nullopt);

    c.winner.reset();
    c.columns.clear();
    const ConflictInsert pending = record_conflict_statement(c);
    // The same text for every conflict: a pipeline queues it without a new statement.
    CHECK(pending.sql == settled.sql);
    CHECK(pending.params[4] == "{}");
    CHECK(pending.params[13] == std::nullopt);
    CHECK(pending.params[14] == "pending");
}

TEST_CASE("a logged key is read back in the table's key column order") {
    const TargetTable t = orders();
    const std::vector<std::string> key{"eu", "42"};
    CHECK(parse_conflict_key(t, key_json(t, key)) == key);
    CHECK(parse_conflict_key(t, R"({"id":"42","region":"eu","extra":"x"})") == key);
    // A key the table's columns no longer make, or that is not a key document at all.
    CHECK(parse_conflict_key(t, R"({"id":"42"})") == std::nullopt);
    CHECK(parse_conflict_key(t, R"({"id":42,"region":"eu"})") == std::nullopt);
    CHECK(parse_conflict_key(t, R"(["eu","42"])") == std::nullopt);
    CHECK(parse_conflict_key(t, "not json") == std::nullopt);
}
