// What repair writes for a difference verify confirmed: decided by the live path's conflict
// rules from the row versions each side holds.

#include <doctest/doctest.h>

#include <pgbridge/config/config.hpp>
#include <pgbridge/verify/repair.hpp>

#include "../support/small_config.hpp"

using namespace pgbridge;
using namespace pgbridge::verify;
using pgbridge::apply::WriteStamp;

namespace {

const std::array<std::string, 2> kSides{"a", "b"};

// public.talents (id, email, status) on both sides; on b email is called contact_email.
ComparedTable talents(const TableConfig& config) {
    ComparedTable t;
    t.config = &config;
    for (std::size_t side = 0; side < 2; ++side) {
        apply::TargetTable& s = t.sides[side];
        s.side = kSides[side];
        s.canonical = config.name;
        s.name = config.name;
        static const std::array<std::string, 2> kEmailOn{"email", "contact_email"};
        const std::string& email = kEmailOn[side];
        s.columns = {{"id", "id", "bigint", true},
                     {email, "email", "text", false},
                     {"status", "status", "text", false}};
        s.names = {"id", email, "status"};
        s.canonical_names = {"id", "email", "status"};
        s.key = {0};
        t.positions[side] = {0, 1, 2};
    }
    t.columns = {"id", "email", "status"};
    t.key = {0};
    return t;
}

// A row as one side has it, each column last written at `times` (µs; 0 unknown) by an applied
// change (so the time is in the document itself), versions kept under the side's own names.
RowState row(std::size_t side, const std::string& email, const std::string& status,
             std::vector<UnixMicros> times = {0, 0, 0}) {
    RowState s;
    s.exists = true;
    s.row = {Value{Value::Kind::Text, "7"}, Value{Value::Kind::Text, email},
             Value{Value::Kind::Text, status}};
    s.stored.found = true;
    const std::vector<std::string> names = {"id", side == 0 ? "email" : "contact_email", "status"};
    for (std::size_t i = 0; i < names.size(); ++i) {
        StoredColumnVersion v;
        v.last_write.writer = times[i] ? WriteStamp::Writer::Remote : WriteStamp::Writer::Unknown;
        v.last_write.remote_time = times[i];
        s.stored.columns[names[i]] = v;
    }
    return s;
}

KeyDifference values_differ(RowState a, RowState b, std::vector<std::string> columns) {
    KeyDifference d;
    d.key = {"7"};
    d.kind = KeyDifference::Kind::Values;
    d.columns = std::move(columns);
    d.states = {std::move(a), std::move(b)};
    return d;
}

}  // namespace

TEST_SUITE("unit") {
    TEST_CASE("repair: a row on one side only is copied, unless the other side deleted it") {
        const Config config = test::small_config("");
        const ComparedTable t = talents(config.tables[0]);
        const ConflictRules rules(config);
        KeyDifference d;
        d.key = {"7"};
        d.kind = KeyDifference::Kind::OnlyOnA;
        d.states[0] = row(0, "x@a", "new");
        RepairPlan plan = plan_repair(t, d, rules, kSides);
        REQUIRE(plan.writes.size() == 1);
        CHECK(plan.writes[0].side == 1);
        CHECK(plan.writes[0].op == RepairWrite::Op::Insert);
        CHECK(plan.writes[0].columns == t.columns);

        d.states[1].stored.found = true;
        d.states[1].stored.deleted = StoredStamp{WriteStamp::Writer::Local, "900", 0, Lsn()};
        plan = plan_repair(t, d, rules, kSides);
        REQUIRE(plan.writes.size() == 1);
        CHECK(plan.writes[0].side == 0);
        CHECK(plan.writes[0].op == RepairWrite::Op::Delete);
        CHECK(plan.writes[0].reason.find("b deleted the row") != std::string::npos);

        d.kind = KeyDifference::Kind::OnlyOnB;
        d.states = {RowState{}, row(1, "x@b", "new")};
        plan = plan_repair(t, d, rules, kSides);
        REQUIRE(plan.writes.size() == 1);
        CHECK(plan.writes[0].side == 0);
        CHECK(plan.writes[0].op == RepairWrite::Op::Insert);
    }

    TEST_CASE("repair: last_write_wins per column by the versions, ties to source_priority") {
        const Config config = test::small_config("");
        const ComparedTable t = talents(config.tables[0]);
        const ConflictRules rules(config);
        // b wrote email later; a wrote status later: each side gets the other's newer column.
        const auto d =
            values_differ(row(0, "old@a", "new status", {0, 100, 300}),
                          row(1, "new@b", "old status", {0, 200, 250}), {"email", "status"});
        const RepairPlan plan = plan_repair(t, d, rules, kSides);
        REQUIRE(plan.writes.size() == 2);
        CHECK(plan.writes[0].side == 0);
        CHECK(plan.writes[0].columns == std::vector<std::string>{"email"});
        CHECK(plan.writes[1].side == 1);
        CHECK(plan.writes[1].columns == std::vector<std::string>{"status"});
        CHECK(plan.undecided.empty());

        // Unknown (or equal) times: the first side of source_priority.
        const auto tie = values_differ(row(0, "x@a", "s"), row(1, "x@b", "s"), {"email"});
        const RepairPlan p2 = plan_repair(t, tie, rules, kSides);
        REQUIRE(p2.writes.size() == 1);
        CHECK(p2.writes[0].side == 1);  // a wins, b is written
        CHECK(p2.writes[0].reason.find("source_priority") != std::string::npos);
        const ConflictRules b_first(
            test::small_config("[conflicts]\nsource_priority = [\"b\", \"a\"]\n"));
        CHECK(plan_repair(t, tie, b_first, kSides).writes.at(0).side == 0);
    }

    TEST_CASE("repair: field_priority decides its column whatever the times; manual decides none") {
        const Config config = test::small_config(
            "[conflicts]\ndefault_strategy = \"manual\"\n"
            "[conflicts.field_priority]\nemail = \"b\"\n");
        const ComparedTable t = talents(config.tables[0]);
        const ConflictRules rules(config);
        const auto d = values_differ(row(0, "x@a", "sa", {0, 900, 900}),
                                     row(1, "x@b", "sb", {0, 1, 1}), {"email", "status"});
        const RepairPlan plan = plan_repair(t, d, rules, kSides);
        REQUIRE(plan.writes.size() == 1);
        CHECK(plan.writes[0].side == 0);
        CHECK(plan.writes[0].columns == std::vector<std::string>{"email"});
        CHECK(plan.writes[0].reason.find("field_priority") != std::string::npos);
        CHECK(plan.undecided == std::vector<std::string>{"status"});
    }
}
