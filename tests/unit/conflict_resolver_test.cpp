// The conflict resolver: every case under every strategy, the symmetry that makes both sides
// converge, and a randomized two-side simulation (which must fail when per-column write times
// are replaced by row times: the three-write example of docs/apply-design.md).

#include <algorithm>
#include <map>
#include <random>

#include <doctest/doctest.h>

#include <pgbridge/apply/conflict_resolver.hpp>
#include <pgbridge/config/config.hpp>

#include "../support/small_config.hpp"

using namespace pgbridge;
using namespace pgbridge::apply;

namespace {

const QualifiedName kTable{"public", "talents"};
const std::vector<std::string> kColumns{"id", "email", "phone", "status"};
constexpr std::size_t kEmail = 1;
constexpr std::size_t kPhone = 2;
constexpr std::size_t kStatus = 3;

ConflictRules rules(std::string_view conflicts) {
    return ConflictRules(test::small_config(conflicts));
}

const std::vector<std::pair<std::string, std::string>> kStrategies{
    {"last_write_wins", "[conflicts]\ndefault_strategy = \"last_write_wins\"\n"},
    {"source_priority", "[conflicts]\ndefault_strategy = \"source_priority\"\n"},
    {"manual", "[conflicts]\ndefault_strategy = \"manual\"\n"},
    {"field_a",
     "[conflicts]\ndefault_strategy = \"manual\"\n[conflicts.field_priority]\nemail = \"a\"\n"},
    {"field_b",
     "[conflicts]\ndefault_strategy = \"last_write_wins\"\n[conflicts.field_priority]\n"
     "\"public.talents.email\" = \"b\"\n"},
};

Value text(const std::string& s) {
    return Value{Value::Kind::Text, s};
}

WriteStamp local_at(UnixMicros t) {
    return WriteStamp{WriteStamp::Writer::Local, t};
}
WriteStamp remote_at(UnixMicros t) {
    return WriteStamp{WriteStamp::Writer::Remote, t};
}

LocalRow row(std::vector<std::string> values, WriteStamp stamp, Lsn applied = Lsn()) {
    LocalRow r;
    r.exists = true;
    // A column written here counts one local write in its version vector.
    const std::uint64_t local_writes = stamp.writer == WriteStamp::Writer::Local ? 1 : 0;
    for (auto& v : values) {
        r.columns.push_back(LocalColumn{text(v), stamp, applied, local_writes, 0});
    }
    return r;
}

Row values(std::vector<std::string> v) {
    Row out;
    for (auto& s : v) {
        out.push_back(text(s));
    }
    return out;
}

RemoteChange update(const std::string& side, std::uint64_t lsn, UnixMicros t,
                    std::vector<std::string> old_row, std::vector<std::string> new_row) {
    RemoteChange c;
    c.side = side;
    c.commit_lsn = Lsn(lsn);
    c.commit_time = t;
    c.op = ChangeOp::Update;
    c.old_row = values(std::move(old_row));
    c.new_row = values(std::move(new_row));
    return c;
}

RemoteChange insert(const std::string& side, std::uint64_t lsn, UnixMicros t,
                    std::vector<std::string> new_row) {
    RemoteChange c;
    c.side = side;
    c.commit_lsn = Lsn(lsn);
    c.commit_time = t;
    c.op = ChangeOp::Insert;
    c.new_row = values(std::move(new_row));
    return c;
}

RemoteChange remove(const std::string& side, std::uint64_t lsn, UnixMicros t,
                    std::vector<std::string> old_row) {
    RemoteChange c;
    c.side = side;
    c.commit_lsn = Lsn(lsn);
    c.commit_time = t;
    c.op = ChangeOp::Delete;
    c.old_row = values(std::move(old_row));
    return c;
}

// Resolves and applies on `local`, returning the resolution.
Resolution resolve_and_apply(const ConflictResolver& r, LocalRow& local,
                             const RemoteChange& change) {
    Resolution res = r.resolve(kTable, kColumns, change, local);
    local = apply_resolution(local, change, res);
    return res;
}

std::string value_of(const LocalRow& r, std::size_t column) {
    REQUIRE(r.exists);
    return r.columns[column].value.data;
}

}  // namespace

TEST_CASE("changes to different columns merge without a conflict") {
    for (const auto& [name, config] : kStrategies) {
        CAPTURE(name);
        ConflictResolver b(rules(config), "b");
        // b changed phone locally; a changed email.
        LocalRow local = row({"1", "old@x", "555", "new"}, remote_at(5));
        local.columns[kPhone].last_write = local_at(10);
        local.columns[kPhone].local_writes = 1;
        auto res = resolve_and_apply(
            b, local,
            update("a", 100, 20, {"1", "old@x", "111", "new"}, {"1", "a@x", "111", "new"}));
        CHECK(res.action == Resolution::Action::Update);
        CHECK_FALSE(res.conflict);
        CHECK(res.write_columns == std::vector<std::size_t>{kEmail});
        CHECK(value_of(local, kEmail) == "a@x");
        CHECK(value_of(local, kPhone) == "555");
    }
}

TEST_CASE("a column changed on both sides is decided by its rule, the same way on both sides") {
    struct Case {
        std::string strategy;
        UnixMicros time_a;
        UnixMicros time_b;
        std::optional<std::string> winner;  // none: pending
    };
    const std::vector<Case> cases{
        {"last_write_wins", 20, 10, "a"},  // a wrote later
        {"last_write_wins", 10, 20, "b"},  // b wrote later
        {"last_write_wins", 15, 15, "a"},  // tie: first in source_priority
        {"last_write_wins", 0, 0, "a"},    // both unknown (initial sync): tie
        {"last_write_wins", 0, 5, "b"},    // unknown is older than any known time
        {"source_priority", 10, 20, "a"},
        {"source_priority", 20, 10, "a"},
        {"manual", 10, 20, std::nullopt},
        {"field_a", 10, 20, "a"},  // email = "a", though b wrote later
        {"field_b", 20, 10, "b"},  // "public.talents.email" = "b", though a wrote later
    };
    for (const auto& c : cases) {
        CAPTURE(c.strategy);
        CAPTURE(c.time_a);
        CAPTURE(c.time_b);
        const std::string config = [&] {
            for (const auto& [name, text] : kStrategies) {
                if (name == c.strategy) {
                    return text;
                }
            }
            return std::string();
        }();
        ConflictResolver on_a(rules(config), "a");
        ConflictResolver on_b(rules(config), "b");
        // Common value "o"; a writes "a@x" at time_a, b writes "b@x" at time_b.
        LocalRow side_a = row({"1", "a@x", "p", "s"}, local_at(c.time_a));
        LocalRow side_b = row({"1", "b@x", "p", "s"}, local_at(c.time_b));
        auto from_b = update("b", 200, c.time_b, {"1", "o", "p", "s"}, {"1", "b@x", "p", "s"});
        auto from_a = update("a", 100, c.time_a, {"1", "o", "p", "s"}, {"1", "a@x", "p", "s"});
        auto res_a = resolve_and_apply(on_a, side_a, from_b);
        auto res_b = resolve_and_apply(on_b, side_b, from_a);
        REQUIRE(res_a.conflict == ConflictKind::UpdateUpdate);
        REQUIRE(res_b.conflict == ConflictKind::UpdateUpdate);
        REQUIRE(res_a.column_conflicts.size() == 1);
        CHECK(res_a.column_conflicts[0].winner == c.winner);
        CHECK(res_b.column_conflicts[0].winner == c.winner);
        if (c.winner) {
            const std::string expected = *c.winner == "a" ? "a@x" : "b@x";
            CHECK(value_of(side_a, kEmail) == expected);
            CHECK(value_of(side_b, kEmail) == expected);
        } else {
            // manual: each side keeps its own value; the difference is the pending conflict.
            CHECK(value_of(side_a, kEmail) == "a@x");
            CHECK(value_of(side_b, kEmail) == "b@x");
        }
        // A redelivery changes nothing and records nothing.
        CHECK(resolve_and_apply(on_a, side_a, from_b).action == Resolution::Action::Skip);
        CHECK(resolve_and_apply(on_b, side_b, from_a).action == Resolution::Action::Skip);
    }
}

TEST_CASE("insert of an existing key is resolved column by column") {
    ConflictResolver b(rules(kStrategies[0].second), "b");
    ConflictResolver a(rules(kStrategies[0].second), "a");
    LocalRow on_b = row({"1", "b@x", "555", "new"}, local_at(30));
    LocalRow on_a = row({"1", "a@x", "555", "lead"}, local_at(20));
    auto res_b = resolve_and_apply(b, on_b, insert("a", 100, 20, {"1", "a@x", "555", "lead"}));
    auto res_a = resolve_and_apply(a, on_a, insert("b", 200, 30, {"1", "b@x", "555", "new"}));
    CHECK(res_b.conflict == ConflictKind::InsertInsert);
    CHECK(res_b.column_conflicts.size() == 2);  // email and status; phone agrees
    CHECK(on_a.columns[kEmail].value == on_b.columns[kEmail].value);
    CHECK(on_a.columns[kStatus].value == on_b.columns[kStatus].value);
    CHECK(value_of(on_a, kEmail) == "b@x");  // b's insert is the later write
}

TEST_CASE("delete wins over a concurrent update, on both sides") {
    for (const auto& [name, config] : kStrategies) {
        CAPTURE(name);
        ConflictResolver a(rules(config), "a");
        ConflictResolver b(rules(config), "b");
        // a deleted the row; b changed its phone.
        LocalRow on_a;
        on_a.deleted = local_at(20);
        LocalRow on_b = row({"1", "o", "999", "s"}, local_at(25));
        auto res_b = resolve_and_apply(b, on_b, remove("a", 100, 20, {"1", "o", "p", "s"}));
        auto res_a = resolve_and_apply(
            a, on_a, update("b", 200, 25, {"1", "o", "p", "s"}, {"1", "o", "999", "s"}));
        CHECK(res_b.action == Resolution::Action::Delete);
        CHECK(res_b.conflict == ConflictKind::DeleteChanged);
        CHECK(res_b.row_winner == "a");
        CHECK(res_a.conflict == ConflictKind::UpdateMissing);
        CHECK(res_a.row_winner == "a");
        CHECK_FALSE(on_a.exists);
        CHECK_FALSE(on_b.exists);
    }
}

TEST_CASE("a key deleted and inserted again meets the other side's writes to the old row") {
    for (const auto& [name, config] : kStrategies) {
        CAPTURE(name);
        ConflictResolver a(rules(config), "a");
        ConflictResolver b(rules(config), "b");
        // Both sides hold a's row; a wrote email once.
        LocalRow on_a = row({"1", "o", "p", "s"}, local_at(10));
        LocalRow on_b = row({"1", "o", "p", "s"}, remote_at(10));
        for (auto& c : on_b.columns) {
            c.seen_remote_writes = 1;
        }
        on_a.local_row_writes = 1;
        on_b.seen_remote_row_writes = 1;
        // a deletes the row and inserts it again: its columns count on (2 local writes each).
        auto del = remove("a", 100, 20, {"1", "o", "p", "s"});
        del.sender_row = 2;
        on_a.local_row_writes = 3;
        on_a.local_delete_writes = 2;
        auto ins = insert("a", 200, 30, {"1", "new", "p2", "s2"});
        ins.sender_row = 3;
        ins.sender_columns = {2, 2, 2, 2};
        on_a = row({"1", "new", "p2", "s2"}, local_at(30));
        for (auto& c : on_a.columns) {
            c.local_writes = 2;
        }
        on_a.local_row_writes = 3;
        on_a.local_delete_writes = 2;
        // Meanwhile b changed the old row's phone, having seen a's first write only.
        auto upd = update("b", 300, 25, {"1", "o", "p", "s"}, {"1", "o", "999", "s"});
        upd.seen_row = 1;
        upd.sender_row = 1;
        upd.seen_columns = {1, 1, 1, 1};
        upd.sender_columns = {0, 0, 1, 0};
        on_b.columns[kPhone].value = text("999");
        on_b.columns[kPhone].last_write = local_at(25);
        on_b.columns[kPhone].local_writes = 1;
        on_b.local_row_writes = 1;

        const auto at_a = resolve_and_apply(a, on_a, upd);
        CHECK(at_a.conflict == ConflictKind::UpdateMissing);  // a's delete wins over it
        CHECK(resolve_and_apply(b, on_b, del).action == Resolution::Action::Delete);
        CHECK(resolve_and_apply(b, on_b, ins).action == Resolution::Action::Insert);
        REQUIRE(on_b.exists);
        for (std::size_t c = 0; c < kColumns.size(); ++c) {
            CHECK(value_of(on_a, c) == value_of(on_b, c));
        }
        // b's next write to phone is one it makes having seen a's re-insert: no conflict at a.
        CHECK(on_b.columns[kPhone].seen_remote_writes == 2);
        CHECK(on_b.columns[kPhone].local_writes == 1);
    }
}

TEST_CASE("both sides delete a key and insert it again concurrently: each delete wins") {
    for (const auto& [name, config] : kStrategies) {
        CAPTURE(name);
        ConflictResolver a(rules(config), "a");
        ConflictResolver b(rules(config), "b");
        // Each side deleted the row (its second write) and inserted it again (its third), none
        // of it seen by the other.
        const auto reinserted = [](const std::string& v) {
            LocalRow r = row({"1", v, v, v}, local_at(30));
            r.local_row_writes = 3;
            r.local_delete_writes = 2;
            return r;
        };
        LocalRow on_a = reinserted("a");
        LocalRow on_b = reinserted("b");
        auto a_del = remove("a", 100, 20, {"1", "o", "p", "s"});
        auto a_ins = insert("a", 200, 30, {"1", "a", "a", "a"});
        auto b_del = remove("b", 300, 21, {"1", "o", "p", "s"});
        auto b_ins = insert("b", 400, 31, {"1", "b", "b", "b"});
        for (auto* c : {&a_del, &a_ins, &b_del, &b_ins}) {
            c->seen_row = 1;
            c->sender_row = c->op == ChangeOp::Delete ? 2 : 3;
        }
        resolve_and_apply(a, on_a, b_del);
        CHECK(resolve_and_apply(a, on_a, b_ins).conflict == ConflictKind::InsertDeleted);
        resolve_and_apply(b, on_b, a_del);
        CHECK(resolve_and_apply(b, on_b, a_ins).conflict == ConflictKind::InsertDeleted);
        CHECK_FALSE(on_a.exists);
        CHECK_FALSE(on_b.exists);

        // A copied row (initial sync: no vectors) is stopped only by a delete of this side's.
        RemoteChange copy = insert("b", 0x1000, 0, {"1", "c", "c", "c"});
        copy.backfill = true;
        CHECK(a.resolve(kTable, kColumns, copy, on_a).action == Resolution::Action::Insert);
        LocalRow deleted_here = on_a;
        deleted_here.deleted = local_at(40);
        CHECK(a.resolve(kTable, kColumns, copy, deleted_here).conflict ==
              ConflictKind::InsertDeleted);
    }
}

TEST_CASE("delete of a missing row, duplicates and a redelivered insert after a delete") {
    ConflictResolver b(rules(kStrategies[0].second), "b");
    LocalRow local;
    auto ins = insert("a", 100, 10, {"1", "e", "p", "s"});
    auto del = remove("a", 200, 20, {"1", "e", "p", "s"});
    CHECK(resolve_and_apply(b, local, ins).action == Resolution::Action::Insert);
    CHECK(resolve_and_apply(b, local, ins).action == Resolution::Action::Skip);  // applied twice
    CHECK(resolve_and_apply(b, local, del).action == Resolution::Action::Delete);
    CHECK(resolve_and_apply(b, local, del).action == Resolution::Action::Skip);
    // The insert comes again after the delete: the row must not come back.
    CHECK(resolve_and_apply(b, local, ins).action == Resolution::Action::Skip);
    CHECK_FALSE(local.exists);
    // A delete of a row never seen leaves a tombstone, so the late insert is recognised too.
    LocalRow fresh;
    CHECK(resolve_and_apply(b, fresh, del).action == Resolution::Action::None);
    CHECK(resolve_and_apply(b, fresh, ins).action == Resolution::Action::Skip);
    CHECK_FALSE(fresh.exists);
}

TEST_CASE("one transaction writing a key several times: each change applies, in its order") {
    ConflictResolver b(rules(kStrategies[0].second), "b");
    // INSERT, UPDATE, UPDATE, DELETE and INSERT again of one key, all in the transaction that
    // commits at 0/100: one commit LSN, places 1 to 5.
    auto at = [](RemoteChange c, std::uint32_t place) {
        c.sequence = place;
        return c;
    };
    const auto ins = at(insert("a", 0x100, 10, {"1", "e", "p", "s"}), 1);
    const auto up1 = at(update("a", 0x100, 10, {"1", "e", "p", "s"}, {"1", "e1", "p", "s"}), 2);
    const auto up2 = at(update("a", 0x100, 10, {"1", "e1", "p", "s"}, {"1", "e2", "p", "s2"}), 3);
    const auto del = at(remove("a", 0x100, 10, {"1", "e2", "p", "s2"}), 4);
    const auto again = at(insert("a", 0x100, 10, {"1", "e3", "p3", "s3"}), 5);
    LocalRow local;
    CHECK(resolve_and_apply(b, local, ins).action == Resolution::Action::Insert);
    CHECK(resolve_and_apply(b, local, up1).action == Resolution::Action::Update);
    CHECK(resolve_and_apply(b, local, up2).action == Resolution::Action::Update);
    CHECK(value_of(local, kEmail) == "e2");
    CHECK(value_of(local, kStatus) == "s2");
    // A copy of a change already applied in this same target transaction is a duplicate.
    CHECK(resolve_and_apply(b, local, up1).action == Resolution::Action::Skip);
    CHECK(resolve_and_apply(b, local, del).action == Resolution::Action::Delete);
    CHECK(resolve_and_apply(b, local, again).action == Resolution::Action::Insert);
    CHECK(value_of(local, kPhone) == "p3");
    // Committed, and read back from row_versions, the position covers the whole transaction:
    // a redelivery of any of its changes changes nothing.
    for (auto& c : local.columns) {
        CHECK(c.applied_remote == Lsn(0x100));
        c.applied_remote_sequence = kWholeTransaction;
    }
    for (const auto& c : {ins, up1, up2, del, again}) {
        CHECK(resolve_and_apply(b, local, c).action == Resolution::Action::Skip);
    }
    CHECK(value_of(local, kEmail) == "e3");
}

TEST_CASE("a later transaction applied before an earlier one leaves what the later one says") {
    ConflictResolver b(rules(kStrategies[0].second), "b");
    LocalRow local = row({"1", "e0", "p0", "s0"}, remote_at(5), Lsn(50));
    auto first = update("a", 100, 10, {"1", "e0", "p0", "s0"}, {"1", "e1", "p0", "s0"});
    auto second = update("a", 200, 20, {"1", "e1", "p0", "s0"}, {"1", "e2", "p0", "s1"});
    resolve_and_apply(b, local, second);
    CHECK(resolve_and_apply(b, local, first).action == Resolution::Action::Skip);
    CHECK(value_of(local, kEmail) == "e2");
    CHECK(value_of(local, kStatus) == "s1");
    // Different columns: the earlier change still lands where the later one did not write.
    LocalRow other = row({"1", "e0", "p0", "s0"}, remote_at(5), Lsn(50));
    auto phone = update("a", 100, 10, {"1", "e0", "p0", "s0"}, {"1", "e0", "p1", "s0"});
    auto email = update("a", 200, 20, {"1", "e0", "p1", "s0"}, {"1", "e2", "p1", "s0"});
    resolve_and_apply(b, other, email);
    CHECK(resolve_and_apply(b, other, phone).action == Resolution::Action::Update);
    CHECK(value_of(other, kPhone) == "p1");
    CHECK(value_of(other, kEmail) == "e2");
}

TEST_CASE("an update of a row not yet inserted inserts it whole; unchanged TOAST is kept") {
    ConflictResolver b(rules(kStrategies[0].second), "b");
    LocalRow local;
    auto ins = insert("a", 100, 10, {"1", "e", "big", "s"});
    RemoteChange upd = update("a", 200, 20, {"1", "e", "big", "s"}, {"1", "e2", "", "s"});
    (*upd.new_row)[kPhone] = Value{Value::Kind::UnchangedToast, {}};
    auto res = resolve_and_apply(b, local, upd);
    CHECK(res.action == Resolution::Action::Insert);
    CHECK(value_of(local, kPhone) == "big");  // from the old row, never the marker
    CHECK(resolve_and_apply(b, local, ins).action == Resolution::Action::Skip);
    CHECK(value_of(local, kEmail) == "e2");

    // On an existing row the unchanged TOAST column is not written.
    LocalRow existing = row({"1", "e", "local big", "s"}, local_at(5));
    auto res2 = resolve_and_apply(b, existing, upd);
    CHECK(std::find(res2.write_columns.begin(), res2.write_columns.end(), kPhone) ==
          res2.write_columns.end());
    CHECK(value_of(existing, kPhone) == "local big");
}

TEST_CASE("causality, not clocks or values, decides what is concurrent") {
    for (const auto& [name, config] : kStrategies) {
        CAPTURE(name);
        ConflictResolver a(rules(config), "a");
        ConflictResolver b(rules(config), "b");
        SUBCASE("clock skew: a write made after seeing the other side's write wins") {
            // b wrote status at t=7; a applied it, then wrote status at t=6 (a's clock is behind).
            LocalRow on_b = row({"1", "e", "p", "b-status"}, local_at(7));
            RemoteChange from_a =
                update("a", 100, 6, {"1", "e", "p", "b-status"}, {"1", "e", "p", "a-status"});
            from_a.seen_columns = {1, 1, 1, 1};  // a had processed b's write
            from_a.sender_columns = {0, 0, 0, 1};
            auto res = resolve_and_apply(b, on_b, from_a);
            CHECK_FALSE(res.conflict);
            CHECK(value_of(on_b, kStatus) == "a-status");
        }
        SUBCASE("a value changed and changed back is still a concurrent write") {
            // a: x -> y -> x; b: x -> z, concurrently. At b the value matches a's old value,
            // but a's writes were not seen by b: under manual nothing is taken, elsewhere the
            // rule decides, and never silently.
            LocalRow on_a = row({"1", "e", "p", "x"}, local_at(20));
            on_a.columns[kStatus].local_writes = 2;
            RemoteChange from_b = update("b", 200, 15, {"1", "e", "p", "x"}, {"1", "e", "p", "z"});
            from_b.sender_columns = {0, 0, 0, 1};
            auto res = resolve_and_apply(a, on_a, from_b);
            CHECK(res.conflict == ConflictKind::UpdateUpdate);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Two simulated sides writing concurrently, exchanging changes in any order across keys (as
// priorities reorder tables), with duplicates arriving late; at the end both must hold the
// same rows.

namespace {

struct Message {
    int key;
    RemoteChange change;
};

struct SimSide {
    std::string name;
    std::map<int, LocalRow> rows;
    std::uint64_t lsn = 0;
    std::vector<Message> outbox;  // not yet delivered, in commit order
    std::vector<Message> sent;    // delivered, for late duplicates
};

class Simulation {
  public:
    Simulation(const ConflictRules& r, std::uint32_t seed, bool row_times_only)
        : a_resolver_(r, "a"), b_resolver_(r, "b"), rng_(seed), row_times_only_(row_times_only) {
        a_.name = "a";
        b_.name = "b";
    }

    void run(int steps) {
        for (int i = 0; i < steps; ++i) {
            const int what = pick(10);
            if (what < 3) {
                local_write(a_);
            } else if (what < 6) {
                local_write(b_);
            } else if (what < 8) {
                deliver(a_, b_, b_resolver_);
            } else {
                deliver(b_, a_, a_resolver_);
            }
        }
        while (!a_.outbox.empty() || !b_.outbox.empty()) {
            deliver(a_, b_, b_resolver_);
            deliver(b_, a_, a_resolver_);
        }
    }

    bool converged(std::string* difference) const {
        for (int key = 0; key < kKeys; ++key) {
            const auto ra = visible(a_, key);
            const auto rb = visible(b_, key);
            if (ra != rb) {
                *difference = "key " + std::to_string(key) + ": a=" + ra + " b=" + rb;
                return false;
            }
        }
        return true;
    }

  private:
    static constexpr int kKeys = 4;

    int pick(int n) { return static_cast<int>(rng_() % static_cast<std::uint32_t>(n)); }

    static std::string visible(const SimSide& s, int key) {
        auto it = s.rows.find(key);
        if (it == s.rows.end() || !it->second.exists) {
            return "<absent>";
        }
        std::string out;
        for (const auto& c : it->second.columns) {
            out += c.value.data + "|";
        }
        return out;
    }

    void local_write(SimSide& s) {
        const int key = pick(kKeys);
        // Equal times on both sides now and then, to exercise ties.
        clock_ += pick(3) == 0 ? 0 : 1;
        const UnixMicros now = clock_;
        LocalRow& r = s.rows[key];
        RemoteChange change;
        change.side = s.name;
        change.commit_lsn = Lsn(++s.lsn);
        change.commit_time = now;
        const WriteStamp stamp = local_at(now);
        ++r.local_row_writes;
        if (!r.exists) {
            change.op = ChangeOp::Insert;
            Row fresh{text(std::to_string(key))};
            for (std::size_t c = 1; c < kColumns.size(); ++c) {
                fresh.push_back(text(s.name + std::to_string(pick(3))));
            }
            const Lsn floor = r.row_applied_remote();
            const std::vector<LocalColumn> before = r.columns;  // a deleted row's counters
            r.exists = true;
            r.columns.clear();
            for (std::size_t c = 0; c < fresh.size(); ++c) {
                const bool counted = c < before.size();
                r.columns.push_back(LocalColumn{fresh[c], stamp, floor,
                                                (counted ? before[c].local_writes : 0) + 1,
                                                counted ? before[c].seen_remote_writes : 0});
            }
            r.deleted.reset();
            r.deleted_applied_remote = Lsn();
            change.new_row = fresh;
        } else if (pick(6) == 0) {
            change.op = ChangeOp::Delete;
            Row old;
            for (const auto& c : r.columns) {
                old.push_back(c.value);
            }
            change.old_row = old;
            r.deleted_applied_remote = r.row_applied_remote();
            r.deleted = stamp;
            r.local_delete_writes = r.local_row_writes;
            retire_columns(r);
        } else {
            change.op = ChangeOp::Update;
            Row old;
            for (const auto& c : r.columns) {
                old.push_back(c.value);
            }
            Row next = old;
            const std::size_t column = 1 + static_cast<std::size_t>(pick(3));
            next[column] = text(s.name + std::to_string(pick(5)));
            if (next[column] == old[column]) {
                --s.lsn;
                return;  // nothing changed: no transaction
            }
            r.columns[column].value = next[column];
            r.columns[column].last_write = stamp;
            ++r.columns[column].local_writes;
            change.old_row = old;
            change.new_row = next;
        }
        // The version vectors after the write travel with the change (capture ships them).
        change.seen_row = r.seen_remote_row_writes;
        change.sender_row = r.local_row_writes;
        for (const auto& c : r.columns) {
            change.seen_columns.push_back(c.seen_remote_writes);
            change.sender_columns.push_back(c.local_writes);
        }
        s.outbox.push_back(Message{key, change});
    }

    // Delivers the oldest pending message of a random key (order kept per key, not across
    // keys), or now and then a message again that was delivered before.
    void deliver(SimSide& from, SimSide& to, const ConflictResolver& resolver) {
        if (!from.sent.empty() && pick(8) == 0) {
            const Message& again =
                from.sent[static_cast<std::size_t>(pick(static_cast<int>(from.sent.size())))];
            apply_to(to, resolver, again);
            return;
        }
        if (from.outbox.empty()) {
            return;
        }
        const int key =
            from.outbox[static_cast<std::size_t>(pick(static_cast<int>(from.outbox.size())))].key;
        auto it = std::find_if(from.outbox.begin(), from.outbox.end(),
                               [&](const Message& m) { return m.key == key; });
        const Message m = *it;
        from.outbox.erase(it);
        from.sent.push_back(m);
        apply_to(to, resolver, m);
    }

    void apply_to(SimSide& to, const ConflictResolver& resolver, const Message& m) {
        LocalRow& current = to.rows[m.key];
        LocalRow seen = current;
        if (row_times_only_ && seen.exists) {
            // The broken alternative: every column takes the row's last commit time.
            UnixMicros latest = 0;
            for (const auto& c : seen.columns) {
                latest = std::max(latest, c.last_write.time);
            }
            for (auto& c : seen.columns) {
                c.last_write.time = latest;
            }
        }
        const Resolution res = resolver.resolve(kTable, kColumns, m.change, seen);
        LocalRow next = apply_resolution(current, m.change, res);
        current = next;
    }

    ConflictResolver a_resolver_;
    ConflictResolver b_resolver_;
    std::mt19937 rng_;
    bool row_times_only_;
    UnixMicros clock_ = 1;
    SimSide a_;
    SimSide b_;
};

}  // namespace

TEST_CASE("random concurrent writes on two sides converge under every strategy but manual") {
    for (const auto& [name, config] : kStrategies) {
        if (name == "manual" || name == "field_a") {
            continue;  // manual keeps both values on purpose (field_a's default is manual)
        }
        CAPTURE(name);
        const ConflictRules r = rules(config);
        for (std::uint32_t seed = 1; seed <= 300; ++seed) {
            CAPTURE(seed);
            Simulation sim(r, seed, /*row_times_only=*/false);
            sim.run(200);
            std::string difference;
            REQUIRE_MESSAGE(sim.converged(&difference), difference);
        }
    }
}

TEST_CASE("the three-write example: per-column times converge, row times do not") {
    // a writes email at t=10; b writes email at t=5, then phone at t=15.
    const ConflictRules r = rules(kStrategies[0].second);
    for (const bool row_times : {false, true}) {
        CAPTURE(row_times);
        ConflictResolver on_a(r, "a");
        ConflictResolver on_b(r, "b");
        LocalRow side_a = row({"1", "a@10", "p", "s"}, local_at(1));
        side_a.columns[kEmail].last_write = local_at(10);
        LocalRow side_b = row({"1", "b@5", "p15", "s"}, local_at(1));
        side_b.columns[kEmail].last_write = local_at(5);
        side_b.columns[kPhone].last_write = local_at(15);
        auto seen = [&](LocalRow r2) {
            if (row_times) {
                UnixMicros latest = 0;
                for (const auto& c : r2.columns) {
                    latest = std::max(latest, c.last_write.time);
                }
                for (auto& c : r2.columns) {
                    c.last_write.time = latest;
                }
            }
            return r2;
        };
        const auto a_email = update("a", 100, 10, {"1", "o", "p", "s"}, {"1", "a@10", "p", "s"});
        const auto b_email = update("b", 200, 5, {"1", "o", "p", "s"}, {"1", "b@5", "p", "s"});
        const auto b_phone = update("b", 300, 15, {"1", "b@5", "p", "s"}, {"1", "b@5", "p15", "s"});
        side_b = apply_resolution(side_b, a_email,
                                  on_b.resolve(kTable, kColumns, a_email, seen(side_b)));
        side_a = apply_resolution(side_a, b_email,
                                  on_a.resolve(kTable, kColumns, b_email, seen(side_a)));
        side_a = apply_resolution(side_a, b_phone,
                                  on_a.resolve(kTable, kColumns, b_phone, seen(side_a)));
        if (!row_times) {
            CHECK(value_of(side_a, kEmail) == "a@10");
            CHECK(value_of(side_b, kEmail) == "a@10");
            CHECK(value_of(side_a, kPhone) == "p15");
        } else {
            CHECK(value_of(side_a, kEmail) != value_of(side_b, kEmail));
        }
    }
    // And the randomized simulation finds such a divergence on its own.
    int diverged = 0;
    for (std::uint32_t seed = 1; seed <= 300 && diverged == 0; ++seed) {
        Simulation sim(r, seed, /*row_times_only=*/true);
        sim.run(200);
        std::string difference;
        diverged += sim.converged(&difference) ? 0 : 1;
    }
    CHECK(diverged > 0);
}

TEST_CASE("a copied row (initial sync) settles only what nobody wrote since setup") {
    const ConflictResolver at_b(rules(""), "b");
    const std::vector<std::string> columns = kColumns;
    // B's row: id and phone older than pgbridge; email and status written on B since setup.
    LocalRow local = row({"1", "old@b", "555", "active"}, WriteStamp{});
    local.columns[kEmail].last_write = local_at(50);
    local.columns[kEmail].local_writes = 1;
    local.columns[kStatus].last_write = remote_at(40);
    RemoteChange copy = insert("a", 0x500, 0, {"1", "copy@a", "777", "stale"});
    copy.backfill = true;
    const Resolution r = at_b.resolve(kTable, columns, copy, local);
    // Only phone is settled: both unknown, a tie, won by source_priority's first side (a).
    CHECK(r.write_columns == std::vector<std::size_t>{kPhone});
    REQUIRE(r.column_conflicts.size() == 1);
    CHECK(r.column_conflicts[0].winner == "a");
    const LocalRow after = apply_resolution(local, copy, r);
    CHECK(after.columns[kPhone].value == text("777"));
    // The copy marks nothing applied and leaves the value "older than pgbridge": the live
    // change of a write made before the copy's snapshot still lands.
    CHECK(after.columns[kPhone].last_write.writer == WriteStamp::Writer::Unknown);
    CHECK(after.columns[kPhone].applied_remote == Lsn());
    const Resolution live =
        at_b.resolve(kTable, columns,
                     update("a", 0x400, 30, {"1", "x", "777", "y"}, {"1", "x", "888", "y"}), after);
    CHECK(std::find(live.write_columns.begin(), live.write_columns.end(), kPhone) !=
          live.write_columns.end());

    // A row B does not have is inserted whole, its values unknown-time too.
    const Resolution fresh = at_b.resolve(kTable, columns, copy, LocalRow{});
    CHECK(fresh.action == Resolution::Action::Insert);
    CHECK(apply_resolution(LocalRow{}, copy, fresh).columns[kEmail].last_write.writer ==
          WriteStamp::Writer::Unknown);
}
