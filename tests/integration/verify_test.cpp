// pgbridge verify and repair on two real clusters with `pgbridge run` streaming: drift made
// behind the bridge's back is found key by key and column by column (through the mapping),
// repair mends it by the conflict rules without echo, a pending manual conflict is listed as
// such, and a write workload through the bridge produces no false difference.

#include <csignal>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/verify/postgres_row_source.hpp>
#include <pgbridge/verify/range_differ.hpp>

#include "../support/bridge_run.hpp"

using namespace pgbridge;
using namespace pgbridge::test;
using namespace pgbridge::verify;
using nlohmann::json;

namespace {

// A write the bridge never sees, as drift happens in life (a restore, a script run with
// replication off): committed under a pgbridge origin, so capture drops it and records no
// column version.
void write_behind_the_bridge(const ScratchBridge& scratch, int side, const std::string& sql) {
    auto conn = scratch.admin(side);
    conn.exec("SELECT pg_replication_origin_session_setup($1)",
              {names::repair_origin(scratch.name())});
    conn.exec(sql);
    conn.exec("SELECT pg_replication_origin_session_reset()");
}

// "table key kind [columns]" for every difference of a verify report, sorted.
std::set<std::string> listed(const json& report, const char* what = "differences") {
    std::set<std::string> out;
    for (const auto& t : report["tables"]) {
        for (const auto& d : t[what]) {
            std::string line =
                t["table"].get<std::string>() + " " + d["key"]["id"].get<std::string>();
            if (d["kind"] == "values") {
                for (const auto& c : d["columns"]) {
                    line += " " + c.get<std::string>();
                }
            } else {
                line += " only on " + d["present_on"].get<std::string>();
            }
            out.insert(line);
        }
    }
    return out;
}

long count(const ScratchBridge& scratch, int side, const std::string& sql) {
    return std::stol(std::string(scratch.admin(side).exec(sql).value(0, 0)));
}

}  // namespace

TEST_SUITE("verify") {
    TEST_CASE(
        "both row hashes, on real servers and through the mapping: equal rows, equal "
        "digests; one changed value, found") {
        ScratchBridge scratch("hashes", kSchemaA, kSchemaB, tables_toml(""));
        // Values whose text forms are easy to get wrong: NULL and empty, quotes, commas,
        // parentheses (the row constructor's own syntax), non-ASCII.
        const std::string rows =
            "SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'n' || g END,"
            " CASE WHEN g % 5 = 0 THEN '' ELSE 'a,\"b\"(' || g || ')' END, 'ü' || g, 'new', g"
            " FROM generate_series(1, 5000) g";
        scratch.admin(0).exec("INSERT INTO public.talents " + rows);
        scratch.admin(1).exec("INSERT INTO hr.candidates " + rows);
        const Config config = load_config(scratch.config_path());
        auto a = scratch.admin(0);
        auto b = scratch.admin(1);
        const ComparedTable table = describe_compared_table(config.tables[0], a, "a", b, "b");
        CHECK(table.columns ==
              std::vector<std::string>{"id", "name", "email", "phone", "status", "score"});
        CHECK(common_row_hash(a, b) == RowHash::HashTextExtended);  // same byte order here
        DifferOptions options;
        options.chunk_rows = 1000;
        options.leaf_rows = 50;
        for (const RowHash hash : {RowHash::Md5, RowHash::HashTextExtended}) {
            CAPTURE(to_string(hash));
            PostgresRowSource source_a(a, table, 0, hash);
            PostgresRowSource source_b(b, table, 1, hash);
            CHECK(source_a.digest({}) == source_b.digest({}));
            DifferResult found = find_differing_keys(source_a, source_b, options);
            CHECK(found.keys.empty());
            CHECK(found.rows_a == 5000);
            // NULL and '' must not hash alike (10 has email '', 2345 has name NULL).
            b.exec("UPDATE hr.candidates SET contact_email = NULL WHERE id = 10");
            b.exec("UPDATE hr.candidates SET name = '' WHERE id = 2345");
            found = find_differing_keys(source_a, source_b, options);
            CHECK(found.keys == std::set<Key>{{"10"}, {"2345"}});
            CHECK(found.mismatched_ranges >= 2);
            b.exec("UPDATE hr.candidates SET contact_email = '' WHERE id = 10");
            b.exec("UPDATE hr.candidates SET name = NULL WHERE id = 2345");
            CHECK(find_differing_keys(source_a, source_b, options).keys.empty());
        }
    }

    TEST_CASE("drift behind the bridge's back is found exactly, repaired by the rules, no echo") {
        BridgeRun run("");
        run.start();
        auto a = run.scratch.admin(0);
        auto b = run.scratch.admin(1);
        a.exec(
            "INSERT INTO public.talents SELECT g, 'n' || g, g || '@a', NULL, 'new', g"
            " FROM generate_series(1, 300) g");
        b.exec(
            "INSERT INTO public.notes SELECT g, 'body ' || g, g % 2 = 0"
            " FROM generate_series(1, 120) g");
        a.exec("DELETE FROM public.talents WHERE id = 50");  // a tombstone on both sides
        REQUIRE(eventually([&] { return run.differences().empty(); }));

        auto [code, report] = run.pgbridge_json("verify");
        INFO(report.dump());
        CHECK(code == 0);
        CHECK(report["identical"] == true);
        CHECK(report["consistent"] == true);
        CHECK(listed(report).empty());
        CHECK(report["tables"][0]["table"] == "public.talents");
        CHECK(report["tables"][0]["rows"]["a"] == 299);
        CHECK(report["tables"][0]["rows"]["b"] == 299);
        CHECK(report["tables"][1]["rows"]["b"] == 120);

        // Drift while the bridge is stopped, on both sides and through the mapping.
        run.stop();
        write_behind_the_bridge(run.scratch, 1, "DELETE FROM hr.candidates WHERE id = 10");
        write_behind_the_bridge(run.scratch, 1,
                                "UPDATE hr.candidates SET contact_email = 'drift@b' WHERE id = 20");
        write_behind_the_bridge(
            run.scratch, 1, "UPDATE hr.candidates SET phone = 'drift', score = 99 WHERE id = 30");
        write_behind_the_bridge(
            run.scratch, 1, "INSERT INTO hr.candidates VALUES (1000, 'x', 'x@b', NULL, 'new', 0)");
        write_behind_the_bridge(
            run.scratch, 1, "INSERT INTO hr.candidates VALUES (50, 'back', 'b@b', NULL, 'new', 0)");
        write_behind_the_bridge(run.scratch, 0,
                                "UPDATE public.talents SET status = 'drift' WHERE id = 40");
        write_behind_the_bridge(run.scratch, 0, "DELETE FROM public.notes WHERE id = 5");
        write_behind_the_bridge(run.scratch, 0, "UPDATE public.notes SET body = NULL WHERE id = 6");
        // And an ordinary write, which waits in the slot while the bridge is stopped.
        a.exec("UPDATE public.talents SET name = 'in the slot' WHERE id = 60");

        // Without the bridge the fence cannot pass: verify says so (exit 2) instead of
        // guessing; --no-fence compares the sides as they are, the waiting write included.
        const CommandResult no_bridge = run.scratch.pgbridge({"verify", "--wait", "1"});
        CHECK(no_bridge.exit_code == 2);
        CHECK(no_bridge.err.find("fence") != std::string::npos);
        CHECK(no_bridge.err.find("--no-fence") != std::string::npos);
        std::tie(code, report) = run.pgbridge_json("verify", {"--no-fence"});
        CHECK(code == 1);
        CHECK(report["consistent"] == false);
        CHECK(listed(report).count("public.talents 60 name") == 1);
        CHECK(listed(report).size() == 9);
        run.start();

        std::tie(code, report) = run.pgbridge_json("verify");
        INFO(report.dump());
        CHECK(code == 1);
        CHECK(report["identical"] == false);
        CHECK(listed(report) == std::set<std::string>{
                                    "public.talents 10 only on a",
                                    "public.talents 20 email",
                                    "public.talents 30 phone score",
                                    "public.talents 40 status",
                                    "public.talents 50 only on b",
                                    "public.talents 1000 only on b",
                                    "public.notes 5 only on b",
                                    "public.notes 6 body",
                                });
        // --table narrows it; the text output names the keys and columns too.
        std::tie(code, report) = run.pgbridge_json("verify", {"--table", "public.notes"});
        CHECK(code == 1);
        CHECK(report["tables"].size() == 1);
        CHECK(listed(report) ==
              std::set<std::string>{"public.notes 5 only on b", "public.notes 6 body"});
        const CommandResult text = run.scratch.pgbridge({"verify"});
        CHECK(text.exit_code == 1);
        CHECK(text.out.find("id=30") != std::string::npos);
        CHECK(text.out.find("values differ: phone, score") != std::string::npos);

        // --max-keys bounds what one run collects, and the report says so.
        std::tie(code, report) =
            run.pgbridge_json("verify", {"--table", "public.talents", "--max-keys", "2"});
        CHECK(code == 1);
        CHECK(report["tables"][0]["truncated"] == true);
        CHECK(report["tables"][0]["differences"].size() <= 2);

        // A dry run writes nothing.
        std::tie(code, report) = run.pgbridge_json("repair", {"--dry-run"});
        CHECK(code == 1);
        CHECK(report["written"] == 0);
        CHECK(run.differences().size() >= 8);

        std::tie(code, report) = run.pgbridge_json("repair");
        INFO(report.dump());
        CHECK(code == 0);
        CHECK(report["written"] == 8);
        CHECK(report["skipped"] == 0);
        CHECK(run.differences().empty());
        // The rules decided: a row missing without a tombstone is copied; the tombstone of 50
        // on a wins (the delete wins); equal write times go to the first side, a.
        CHECK(all_rows(a, "public.talents", kTables[0].a_columns).count("1000") == 1);
        CHECK(all_rows(b, "hr.candidates", kTables[0].b_columns).count("10") == 1);
        CHECK(all_rows(b, "hr.candidates", kTables[0].b_columns).count("50") == 0);
        CHECK(all_rows(b, "hr.candidates", kTables[0].b_columns).at("20")[1] == "20@a");
        CHECK(all_rows(b, "hr.candidates", kTables[0].b_columns).at("40")[3] == "drift");
        CHECK(all_rows(a, "public.notes", kTables[1].a_columns).count("5") == 1);
        // Each repair is in the conflict log of the side written.
        CHECK(count(run.scratch, 0,
                    "SELECT count(*) FROM pgbridge.conflicts WHERE kind = 'repair' AND strategy ="
                    " 'repair' AND status = 'resolved'") == 2);
        CHECK(count(run.scratch, 1,
                    "SELECT count(*) FROM pgbridge.conflicts WHERE kind = 'repair' AND strategy ="
                    " 'repair' AND status = 'resolved'") == 6);

        // Nothing echoed: after a fence (inside verify) the sides still agree, and no live
        // conflict came from a repair write travelling back.
        std::tie(code, report) = run.pgbridge_json("verify");
        CHECK(code == 0);
        CHECK(report["identical"] == true);
        CHECK(count(run.scratch, 0, "SELECT count(*) FROM pgbridge.conflicts") == 2);
        CHECK(count(run.scratch, 1, "SELECT count(*) FROM pgbridge.conflicts") == 6);
        CHECK(run.differences().empty());
        // Live sync still flows over the repaired rows.
        a.exec("UPDATE public.talents SET name = 'after repair' WHERE id = 1000");
        CHECK(eventually([&] { return run.differences().empty(); }));
        run.stop();
    }

    TEST_CASE("verify on a terminal draws a progress bar on stderr; piped or --json, nothing") {
        BridgeRun run("");
        run.start();
        auto a = run.scratch.admin(0);
        a.exec(
            "INSERT INTO public.talents SELECT g, 'n' || g, g || '@a', NULL, 'new', g"
            " FROM generate_series(1, 300) g");
        a.exec("ANALYZE public.talents");
        REQUIRE(eventually([&] { return run.differences().empty(); }));
        // script(1) gives the command a terminal and copies what it draws to its own output.
        const std::string command =
            fmt::format("{} --config {} verify", TestEnvironment::get().pgbridge_binary,
                        run.scratch.config_path());
        const CommandResult on_terminal = run_command({"script", "-qec", command, "/dev/null"});
        INFO(on_terminal.out << on_terminal.err);
        CHECK(on_terminal.exit_code == 0);
        CHECK(on_terminal.out.find("verify public.talents [") != std::string::npos);
        CHECK(on_terminal.out.find("of about 300 rows") != std::string::npos);
        const CommandResult piped = run.scratch.pgbridge({"verify"});
        CHECK(piped.exit_code == 0);
        CHECK(piped.err.find("of about") == std::string::npos);
        CHECK(piped.out.find("of about") == std::string::npos);
        const auto [code, report] = run.pgbridge_json("verify");
        CHECK(code == 0);
        run.stop();
    }

    TEST_CASE("a pending manual conflict is listed as such, not as drift; repair leaves it") {
        BridgeRun run("[conflicts]\ndefault_strategy = \"manual\"\n");
        run.start();
        auto a = run.scratch.admin(0);
        auto b = run.scratch.admin(1);
        a.exec("INSERT INTO public.talents VALUES (1, 'Ann', 'ann@a', NULL, 'new', 1)");
        REQUIRE(eventually([&] { return run.differences().empty(); }));
        b.exec("BEGIN");
        b.exec("UPDATE hr.candidates SET status = 'from b' WHERE id = 1");
        a.exec("UPDATE public.talents SET status = 'from a' WHERE id = 1");
        b.exec("COMMIT");
        REQUIRE(eventually([&] { return run.pending_columns().size() == 1; }));

        auto [code, report] = run.pgbridge_json("verify");
        INFO(report.dump());
        CHECK(code == 0);
        CHECK(listed(report).empty());
        CHECK(listed(report, "pending_conflicts") ==
              std::set<std::string>{"public.talents 1 status"});
        std::tie(code, report) = run.pgbridge_json("repair");
        CHECK(code == 0);
        CHECK(report["written"] == 0);
        CHECK(run.differences().size() == 1);
        run.stop();
    }

    TEST_CASE("verify while a write workload runs through the bridge reports no false difference") {
        BridgeRun run("");
        run.start();
        run.scratch.admin(0).exec(
            "INSERT INTO public.talents SELECT g, 'hot', 'hot@x', NULL, 'new', 0"
            " FROM generate_series(1, 2000) g");
        REQUIRE(eventually([&] { return run.differences().empty(); }));
        std::atomic<long> next_key{3000};
        std::vector<std::unique_ptr<Workload>> writers;
        for (int side = 0; side < 2; ++side) {
            writers.push_back(std::make_unique<Workload>(
                run.scratch, side, 150, static_cast<unsigned>(side + 5), next_key));
        }
        int runs = 0;
        std::uint64_t in_flight = 0;
        std::uint64_t candidates = 0;  // keys that differed when first read: changes in flight
        const auto until =
            std::chrono::steady_clock::now() + std::chrono::seconds(soak_seconds(12));
        while (std::chrono::steady_clock::now() < until || runs < 2) {
            const auto [code, report] = run.pgbridge_json("verify");
            INFO(report.dump());
            CHECK(code == 0);
            CHECK(listed(report).empty());
            for (const auto& t : report["tables"]) {
                in_flight += t["in_flight"].get<std::uint64_t>();
                candidates += t["candidates"].get<std::uint64_t>();
                CHECK(t["rows"]["a"].get<std::uint64_t>() > 0);
            }
            ++runs;
        }
        std::vector<std::set<std::string>> ledgers;
        for (auto& w : writers) {
            w->stop();
            CHECK(w->failure().empty());
            ledgers.push_back(w->ledger());
        }
        MESSAGE("verify ran " << runs << " times under load; keys caught in flight: " << candidates
                              << ", still moving after every re-read: " << in_flight);
        // The comparison did meet changes in flight, and judged none of them as drift.
        CHECK(candidates > 0);
        run.check_converged(ledgers, false);
        run.stop();
    }

    TEST_CASE("scheduled verify with auto_repair mends drift inside pgbridge run and reports it") {
        const int port = free_port();
        BridgeRun run(
            fmt::format("[verify]\nschedule = \"* * * * *\"\nauto_repair = true\n"
                        "[metrics]\nlisten = \"127.0.0.1:{}\"\n",
                        port));
        run.start();
        CHECK(run.daemon->output_contains("verify scheduled"));
        run.scratch.admin(0).exec(
            "INSERT INTO public.talents SELECT g, 'n', g || '@a', NULL,"
            " 'new', g FROM generate_series(1, 20) g");
        REQUIRE(eventually([&] { return run.differences().empty(); }));
        write_behind_the_bridge(run.scratch, 1,
                                "UPDATE hr.candidates SET contact_email = 'drift' WHERE id = 3");
        write_behind_the_bridge(run.scratch, 1, "DELETE FROM hr.candidates WHERE id = 4");
        REQUIRE(run.differences().size() == 2);
        // The schedule fires every minute: the next run repairs both keys.
        CHECK(eventually([&] { return run.differences().empty(); }, std::chrono::seconds(150)));
        const auto repaired = [&] {
            return sample(http_get(port, "/metrics"),
                          fmt::format(
                              "pgbridge_repairs_total{{bridge=\"{}\",table=\"public.talents\"}}",
                              run.scratch.name()))
                .value_or(0);
        };
        CHECK(eventually([&] { return repaired() == 2; }));
        CHECK(eventually([&] { return run.daemon->output_contains("scheduled verify finished"); }));
        CHECK(count(run.scratch, 1,
                    "SELECT count(*) FROM pgbridge.conflicts WHERE kind = 'repair'") == 2);
        INFO(run.daemon->output());
        CHECK(run.daemon->running());
        run.stop();
    }
}
