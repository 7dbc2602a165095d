// What `pgbridge rollback` puts back for one key, from the history of both sides.

#include <doctest/doctest.h>

#include <pgbridge/cli/rollback_plan.hpp>

using namespace pgbridge::cli;

namespace {

KeyChange change(const std::string& from, std::int64_t at, const std::string& lsn,
                 const std::string& operation, ColumnValues old_values, ColumnValues new_values) {
    KeyChange c;
    c.from_side = from;
    c.changed_at = at;
    c.lsn = lsn;
    c.seq = 1;
    c.operation = operation;
    c.old_values = std::move(old_values);
    c.new_values = std::move(new_values);
    return c;
}

}  // namespace

TEST_CASE("an update in the window is undone where nobody wrote after it") {
    const auto bad = change("a", 100, "0/10", "update", {{"email", "x@a"}, {"status", "new"}},
                            {{"email", "bad"}, {"status", "bad"}});
    // The same change as b applied it: not a later write.
    auto mirrored = bad;
    mirrored.changed_at = 100;
    KeyRollback plan = plan_key_rollback({bad}, {mirrored});
    CHECK(plan.action == KeyRollback::Action::Restore);
    CHECK(plan.values == ColumnValues{{"email", "x@a"}, {"status", "new"}});
    CHECK(plan.expected == ColumnValues{{"email", "bad"}, {"status", "bad"}});
    CHECK(plan.skipped.empty());

    // b wrote the email afterwards: it stays, and says why; the status goes back.
    const auto later = change("b", 200, "0/99", "update", {{"email", "bad"}}, {{"email", "b@b"}});
    plan = plan_key_rollback({bad}, {mirrored, later});
    CHECK(plan.action == KeyRollback::Action::Restore);
    CHECK(plan.values == ColumnValues{{"status", "new"}});
    REQUIRE(plan.skipped.size() == 1);
    CHECK(plan.skipped[0].first == "email");
    CHECK(plan.skipped[0].second.find("on b (LSN 0/99)") != std::string::npos);
    // A write before the window's change is not a later one.
    const auto earlier = change("b", 50, "0/5", "update", {{"email", "q"}}, {{"email", "x@a"}});
    CHECK(plan_key_rollback({bad}, {earlier}).values.size() == 2);
}

TEST_CASE("several changes of a key in the window: back to what was there before the first") {
    const auto first = change("a", 100, "0/10", "update", {{"n", "1"}}, {{"n", "2"}});
    const auto second =
        change("a", 110, "0/20", "update", {{"n", "2"}, {"v", "a"}}, {{"n", "3"}, {"v", "b"}});
    const KeyRollback plan = plan_key_rollback({first, second}, {});
    CHECK(plan.values == ColumnValues{{"n", "1"}, {"v", "a"}});
    CHECK(plan.expected == ColumnValues{{"n", "3"}, {"v", "b"}});
    // Set back to its own value within the window: nothing to do for it.
    const auto back = change("a", 120, "0/30", "update", {{"n", "3"}}, {{"n", "1"}});
    CHECK(plan_key_rollback({first, second, back}, {}).values == ColumnValues{{"v", "a"}});
}

TEST_CASE("inserts are deleted, deletes inserted again, unless the key was written after") {
    const auto insert = change("a", 100, "0/10", "insert", {}, {{"id", "7"}, {"v", "x"}});
    CHECK(plan_key_rollback({insert}, {}).action == KeyRollback::Action::Delete);
    // Deleted only while it holds what the window left.
    CHECK(plan_key_rollback({insert}, {}).expected == ColumnValues{{"id", "7"}, {"v", "x"}});
    const auto updated = change("b", 150, "0/50", "update", {{"v", "x"}}, {{"v", "y"}});
    KeyRollback plan = plan_key_rollback({insert}, {updated});
    CHECK(plan.action == KeyRollback::Action::Nothing);
    REQUIRE(plan.skipped.size() == 1);
    CHECK(plan.skipped[0].first == "*");

    const auto del =
        change("a", 100, "0/10", "delete", {{"id", "7"}, {"v", "x"}, {"n", std::nullopt}}, {});
    plan = plan_key_rollback({del}, {});
    CHECK(plan.action == KeyRollback::Action::Reinsert);
    CHECK(plan.values == ColumnValues{{"id", "7"}, {"v", "x"}, {"n", std::nullopt}});
    // Updated in the window before its delete: inserted as it was before the window.
    const auto before = change("a", 90, "0/9", "update", {{"v", "orig"}}, {{"v", "x"}});
    CHECK(plan_key_rollback({before, del}, {}).values.at("v") == "orig");
    // Inserted again by b afterwards: left.
    const auto again = change("b", 300, "0/70", "insert", {}, {{"id", "7"}, {"v", "z"}});
    CHECK(plan_key_rollback({del}, {again}).action == KeyRollback::Action::Nothing);

    // Inserted and deleted within the window: nothing of it is left.
    const auto gone = change("a", 120, "0/12", "delete", {{"id", "7"}, {"v", "x"}}, {});
    CHECK(plan_key_rollback({insert, gone}, {}).action == KeyRollback::Action::Nothing);
    CHECK(plan_key_rollback({insert, gone}, {}).skipped.empty());
}
