// [history]: every change pgbridge captures or applies, kept on the side it changed, and
// `pgbridge history` telling one row's story on both sides (docs/history.md).

#include <csignal>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../support/bridge_run.hpp"

using namespace pgbridge;
using namespace pgbridge::test;
using nlohmann::json;

namespace {

constexpr const char* kHistory = R"(
[history]
retention = "7d"
)";

}  // namespace

TEST_SUITE("history") {
    TEST_CASE("history of one key across a conflict: both sides, oldest first, the decision") {
        BridgeRun run(kHistory, [](ScratchBridge& scratch) {
            rewrite_config(scratch, "name = \"public.notes\"",
                           "name = \"public.notes\"\nhistory = false");
        });
        run.start();
        auto a = run.scratch.admin(0);
        auto b = run.scratch.admin(1);
        // run made today's partition and the next two days' on both sides, beside the default
        // one; setup recorded the retention where the runtime role cannot change it.
        for (auto* conn : {&a, &b}) {
            CHECK(conn->exec("SELECT count(*) FILTER (WHERE c.relname ~ '^history_[0-9]{8}$'),"
                             " count(*) FILTER (WHERE c.relname = 'history_default')"
                             " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                             " WHERE i.inhparent = 'pgbridge.history'::regclass")
                      .value(0, 0) == "3");
            CHECK(conn->exec("SELECT retention FROM pgbridge.history_retention WHERE bridge = $1",
                             {run.scratch.name()})
                      .value(0, 0) == "7 days");
        }
        a.exec("INSERT INTO public.talents VALUES (1, 'Ann', 'ann@a', NULL, 'new', 1)");
        a.exec("INSERT INTO public.notes VALUES (1, 'not kept', true)");
        REQUIRE(eventually([&] { return run.differences().empty(); }));

        // Both sides change the email while pgbridge is stopped: a conflict, decided by the
        // later write (b's) on both sides.
        run.stop();
        a.exec("UPDATE public.talents SET email = 'ann@from-a', score = 2 WHERE id = 1");
        b.exec("UPDATE hr.candidates SET contact_email = 'ann@from-b' WHERE id = 1");
        run.start();
        REQUIRE(eventually([&] { return run.differences().empty(); }));
        CHECK(std::string(a.exec("SELECT email FROM public.talents WHERE id = 1").value(0, 0)) ==
              "ann@from-b");

        json records;
        REQUIRE(eventually([&] {
            const auto [code, doc] =
                run.pgbridge_json("history", {"--table", "public.talents", "--key", "1"});
            records = doc;
            return code == 0 && doc.is_array() && doc.size() >= 6;
        }));
        INFO(records.dump(2));
        // Oldest first.
        for (std::size_t i = 1; i < records.size(); ++i) {
            CHECK(records[i - 1]["changed_at"] <= records[i]["changed_at"]);
        }
        const auto find = [&](const std::string& side, const std::string& origin,
                              const std::string& operation) -> const json* {
            for (const auto& r : records) {
                if (r["side"] == side && r["origin"] == origin && r["operation"] == operation) {
                    return &r;
                }
            }
            return nullptr;
        };
        // The insert: a local write on a, applied on b (values in the table's own names).
        const json* inserted = find("a", "local", "insert");
        REQUIRE(inserted != nullptr);
        CHECK((*inserted)["new"]["email"] == "ann@a");
        const json* arrived = find("b", "applied", "insert");
        REQUIRE(arrived != nullptr);
        CHECK((*arrived)["from"] == "a");
        CHECK((*arrived)["new"]["email"] == "ann@a");
        CHECK((*arrived)["lsn"] == (*inserted)["lsn"]);
        // Each side's own update, before and after of the columns it wrote.
        const json* a_update = find("a", "local", "update");
        REQUIRE(a_update != nullptr);
        CHECK((*a_update)["old"] == json{{"email", "ann@a"}, {"score", "1"}});
        CHECK((*a_update)["new"] == json{{"email", "ann@from-a"}, {"score", "2"}});
        const json* b_update = find("b", "local", "update");
        REQUIRE(b_update != nullptr);
        CHECK((*b_update)["new"] == json{{"email", "ann@from-b"}});
        // Applied on a: b's email won, and a's score went to b. On b: a's email lost the
        // conflict (b kept its own), its score was written.
        const json* on_a = find("a", "applied", "update");
        REQUIRE(on_a != nullptr);
        CHECK((*on_a)["new"] == json{{"email", "ann@from-b"}});
        CHECK((*on_a)["old"] == json{{"email", "ann@from-a"}});
        REQUIRE((*on_a)["decision"].is_object());
        CHECK((*on_a)["decision"]["columns"][0]["winner"] == "b");
        const json* on_b = find("b", "applied", "update");
        REQUIRE(on_b != nullptr);
        CHECK((*on_b)["new"] == json{{"score", "2"}});
        REQUIRE((*on_b)["decision"].is_object());
        CHECK((*on_b)["decision"]["columns"][0]["column"] == "email");
        CHECK((*on_b)["decision"]["columns"][0]["winner"] == "b");

        // The text form: one line per change.
        const CommandResult text =
            run.scratch.pgbridge({"history", "--table", "public.talents", "--key", "1"});
        CHECK(text.exit_code == 0);
        CHECK(text.out.find("applied from a") != std::string::npos);
        CHECK(text.out.find("email=ann@from-b") != std::string::npos);
        // A window that ends before the update shows the insert only.
        const auto [code, before] =
            run.pgbridge_json("history", {"--table", "public.talents", "--key", "1", "--until",
                                          (*a_update)["changed_at"].get<std::string>()});
        CHECK(code == 0);
        CHECK(before.size() == 2);

        // A table with history = false keeps none.
        for (auto* conn : {&a, &b}) {
            CHECK(conn->exec("SELECT count(*) FROM pgbridge.history WHERE table_name = "
                             "'public.notes'")
                      .value(0, 0) == "0");
        }
        // The runtime role may add to the history, not rewrite it, nor drop its partitions.
        auto role = run.scratch.runtime(0);
        for (const char* statement :
             {"DELETE FROM pgbridge.history", "UPDATE pgbridge.history SET operation = 'insert'",
              "TRUNCATE pgbridge.history",
              "UPDATE pgbridge.history_retention SET retention = '1 minute'",
              "SELECT pgbridge.maintain_history('1 minute'::interval)"}) {
            CAPTURE(statement);
            CHECK_THROWS_AS(role.exec(statement), Error);
        }
        CHECK(a.exec("SELECT count(*) > 0 FROM pgbridge.history").value(0, 0) == "t");
        // A table the bridge does not sync is refused.
        const CommandResult unknown =
            run.scratch.pgbridge({"history", "--table", "public.nothing", "--key", "1"});
        CHECK(unknown.exit_code != 0);
        run.stop();
    }

    TEST_CASE(
        "rollback of a bad bulk write on a: both sides put back, rows b changed afterwards kept "
        "and reported; inserts deleted, deletes inserted again; --dry-run writes nothing") {
        BridgeRun run(kHistory);
        run.start();
        auto a = run.scratch.admin(0);
        auto b = run.scratch.admin(1);
        a.exec(
            "INSERT INTO public.talents SELECT g, 'n' || g, 'e' || g || '@x', NULL, 'new', g "
            "FROM generate_series(1, 10) g");
        REQUIRE(eventually([&] { return run.differences().empty(); }));
        const auto now = [&] { return std::string(a.exec("SELECT now()::text").value(0, 0)); };
        const std::string since = now();
        // The bad import: every row overwritten, one row inserted, one deleted.
        a.exec("UPDATE public.talents SET status = 'bad', email = 'bad@x' WHERE id <= 10");
        a.exec("INSERT INTO public.talents VALUES (11, 'stray', 'bad@x', NULL, 'bad', 0)");
        a.exec("DELETE FROM public.talents WHERE id = 10");
        REQUIRE(eventually([&] { return run.differences().empty(); }));
        const std::string until = now();
        // Afterwards b fixes one email by hand: that one must stay.
        b.exec("UPDATE hr.candidates SET contact_email = 'fixed@b' WHERE id = 3");
        REQUIRE(eventually([&] { return run.differences().empty(); }));
        const auto history_is_complete = [&] {
            return b.exec("SELECT count(*) FROM pgbridge.history WHERE origin = 'local'")
                       .value(0, 0) == "1";
        };
        REQUIRE(eventually(history_is_complete));

        const std::vector<std::string> args{"--source", "a", "--since", since, "--until", until};
        auto with = [&](std::vector<std::string> more) {
            std::vector<std::string> all = args;
            all.insert(all.end(), more.begin(), more.end());
            return all;
        };
        // Without --yes or --dry-run: refused.
        CHECK(run.scratch.pgbridge(with({})).exit_code != 0);
        // Dry run: the plan, nothing written.
        {
            std::vector<std::string> argv{"rollback"};
            for (auto& arg : with({"--dry-run"})) {
                argv.push_back(arg);
            }
            const auto [code, plan] = run.pgbridge_json(argv[0], {argv.begin() + 1, argv.end()});
            INFO(plan.dump(2));
            CHECK(code == 0);
            CHECK(plan["dry_run"] == true);
            CHECK(plan["restored"] == 11);  // 9 rows restored, 10 inserted again, 11 deleted
            CHECK(plan["skipped"] == 1);
            bool reported = false;
            for (const auto& k : plan["keys"]) {
                if (k["key"]["id"] == "3") {
                    REQUIRE(k["skipped"].size() == 1);
                    CHECK(k["skipped"][0]["column"] == "email");
                    CHECK(k["skipped"][0]["why"].get<std::string>().find("on b") !=
                          std::string::npos);
                    reported = true;
                }
            }
            CHECK(reported);
            CHECK(a.exec("SELECT count(*) FROM public.talents WHERE status = 'bad'").value(0, 0) ==
                  "10");
            CHECK(a.exec("SELECT count(*) FROM pgbridge.rollbacks").value(0, 0) == "0");
        }
        // The rollback itself.
        {
            std::vector<std::string> argv = with({"--yes"});
            const auto [code, done] = run.pgbridge_json("rollback", argv);
            INFO(done.dump(2));
            CHECK(code == 0);
            CHECK(done["restored"] == 11);
            // Recorded where it undid, with who ran it and what it did.
            const auto recorded = a.exec(
                "SELECT source_side, keys_restored, columns_skipped, run_by <> '' FROM "
                "pgbridge.rollbacks");
            REQUIRE(recorded.rows() == 1);
            CHECK(recorded.value(0, 0) == "a");
            CHECK(recorded.value(0, 1) == "11");
            CHECK(recorded.value(0, 2) == "1");
            CHECK(recorded.value(0, 3) == "t");
        }
        // Both sides as before the import, but b's later email.
        const auto expected = [&] {
            auto rows = all_rows(a, "public.talents", kTables[0].a_columns);
            if (rows.size() != 10 || rows.contains("11") || !rows.contains("10")) {
                return false;
            }
            for (int id = 1; id <= 10; ++id) {
                const auto& row = rows.at(std::to_string(id));
                const std::string email = id == 3 ? "fixed@b" : fmt::format("e{}@x", id);
                if (row[3] != std::optional<std::string>("new") || row[1] != email) {
                    return false;
                }
            }
            return run.differences().empty();
        };
        CHECK(eventually(expected));
        INFO(run.detail_);
        // The rollback's writes are a's local writes, in its history like any.
        CHECK(a.exec("SELECT count(*) FROM pgbridge.history WHERE origin = 'local' AND "
                     "changed_at > $1::timestamptz",
                     {until})
                  .value(0, 0) != "0");
        run.stop();
    }
}
