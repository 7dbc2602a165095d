// pgbridge run end to end on two real clusters and a real RabbitMQ: both directions at once,
// concurrent random writes on both sides under each strategy, faults during the stream (kill -9
// of pgbridge, a RabbitMQ restart, a PostgreSQL restart), then every row of every table
// compared on both sides, a ledger of committed writes checked on the other side, and nothing
// left bouncing.

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/byte_size.hpp>
#include <pgbridge/core/key_shard.hpp>

#include "../support/bridge_run.hpp"

using namespace pgbridge;
using namespace pgbridge::test;

TEST_SUITE("bridge") {
    TEST_CASE("rows written on either side arrive on the other; a conflict ends the same on both") {
        BridgeRun run("");
        run.start();
        auto a = run.scratch.admin(0);
        auto b = run.scratch.admin(1);
        a.exec("INSERT INTO public.talents VALUES (1, 'Ann', 'ann@a', NULL, 'new', 1)");
        b.exec("INSERT INTO hr.candidates VALUES (2, 'Bob', 'bob@b', NULL, 'new', 1)");
        CHECK(eventually([&] { return run.differences().empty(); }));
        CHECK(all_rows(b, "hr.candidates", kTables[0].b_columns).count("1") == 1);
        // Concurrent writes to one column: both commit before either is applied (the daemon is
        // paused between the two by holding the row on B).
        b.exec("BEGIN");
        b.exec("UPDATE hr.candidates SET status = 'from b' WHERE id = 1");
        a.exec("UPDATE public.talents SET status = 'from a' WHERE id = 1");
        b.exec("COMMIT");
        CHECK(eventually([&] { return run.differences().empty() && run.conflicts() == 2; }));
        CHECK(all_rows(a, "public.talents", kTables[0].a_columns).at("1")[3] == "from b");

        // SIGHUP re-reads the file: status now wins for a, whatever the times.
        {
            std::ofstream config(run.scratch.config_path(), std::ios::app);
            config << "\n[conflicts.field_priority]\nstatus = \"a\"\n";
        }
        run.daemon->signal(SIGHUP);
        REQUIRE(eventually([&] { return run.daemon->output_contains("configuration reloaded"); }));
        b.exec("BEGIN");
        b.exec("UPDATE hr.candidates SET status = 'b again' WHERE id = 1");
        a.exec("UPDATE public.talents SET status = 'a again' WHERE id = 1");
        b.exec("COMMIT");
        CHECK(eventually([&] { return run.differences().empty() && run.conflicts() == 4; }));
        CHECK(all_rows(b, "hr.candidates", kTables[0].b_columns).at("1")[3] == "a again");
        CHECK(run.daemon->running());
        run.stop();
    }

    TEST_CASE("last_write_wins: random concurrent writes on both sides converge") {
        BridgeRun run("");
        run.start();
        run_workload(run, soak_seconds(30), false);
        MESSAGE("conflicts: " << run.conflicts());
        CHECK(run.conflicts() > 0);
        run.stop();
    }

    TEST_CASE("source_priority, with kill -9 of pgbridge and a restart during the stream") {
        BridgeRun run(R"(
[conflicts]
default_strategy = "source_priority"
source_priority = ["b", "a"]
)");
        run.start();
        run_workload(run, soak_seconds(16), false, [&] {
            run.daemon->signal(SIGKILL);
            CHECK(run.daemon->wait(std::chrono::seconds(10)) == 128 + SIGKILL);
            run.start();
        });
        run.stop();
    }

    TEST_CASE(
        "field rules with manual default, with RabbitMQ stopped and started during the stream") {
        BridgeRun run(R"(
[conflicts]
default_strategy = "manual"
[conflicts.field_priority]
email = "b"
status = "a"
)");
        run.start();
        run_workload(run, soak_seconds(16), true, restart_rabbitmq);
        CHECK(run.daemon->running());
        run.stop();
    }

    TEST_CASE("quorum queues: priorities in bands, with RabbitMQ restarted during the stream") {
        BridgeRun run("", [](ScratchBridge& scratch) {
            rewrite_rabbitmq_url(
                scratch, fmt::format("url = \"{}\"\nqueue_type = \"quorum\"\npriority_bands = [5]",
                                     TestEnvironment::get().amqp_url));
        });
        // Setup declared quorum queues, the talents band (priority 8) on a queue of its own: a
        // classic declaration of it is refused as different.
        {
            transport::AmqpConnection broker(amqp_options());
            for (const char* side : {"a", "b"}) {
                for (const auto& queue : {names::band_queue(run.scratch.name(), side, 5),
                                          names::queue(run.scratch.name(), side)}) {
                    CAPTURE(queue);
                    REQUIRE(broker.inspect_queue(1, queue));
                    try {
                        broker.declare_queue(1, queue, transport::AmqpTable());
                        FAIL("a classic declaration of a quorum queue must be refused");
                    } catch (const Error& e) {
                        CHECK(e.context_value("reply_code") == "406");
                    }
                }
            }
        }
        run.start();
        run_workload(run, soak_seconds(16), false, restart_rabbitmq);
        CHECK(run.daemon->running());
        run.stop();
    }

    // [cluster]: the three-node cluster of scripts/testenv cluster-start (20-60 s to start the
    // first time), one node stopped and started again during the workload.
    TEST_CASE(
        "[cluster] quorum queues on three nodes: the node in use is lost and comes back "
        "during a two-way workload") {
        const ClusterEnvironment cluster = start_cluster();
        BridgeRun run("", [&](ScratchBridge& scratch) {
            std::vector<std::string> quoted;
            for (const auto& url : cluster.urls) {
                quoted.push_back("\"" + url + "\"");
            }
            rewrite_rabbitmq_url(scratch, fmt::format("urls = [{}]\nqueue_type = \"quorum\"",
                                                      fmt::join(quoted, ", ")));
        });
        run.start();
        std::optional<ClusterNodeOutage> outage;
        run_workload(run, soak_seconds(16), false, [&] {
            outage.emplace(1);
            // Every connection of the daemon was on node 1, the first of urls: each moves to
            // another node, and the changes keep flowing while node 1 is away.
            CHECK(eventually(
                [&] {
                    return run.daemon->output_contains(
                        "connected to another RabbitMQ node of [rabbitmq] urls");
                },
                std::chrono::seconds(60)));
            // B's origin for A's changes moves on: A's changes are applied meanwhile.
            auto b = run.scratch.admin(1);
            const std::string origin = names::origin(run.scratch.name(), "a");
            const std::string before(b.exec("SELECT coalesce(max(remote_lsn), '0/0')::text FROM "
                                            "pg_replication_origin_status WHERE external_id = $1",
                                            {origin})
                                         .value(0, 0));
            CHECK(eventually(
                [&] {
                    return b.exec(
                                "SELECT max(remote_lsn) > $2::pg_lsn FROM "
                                "pg_replication_origin_status WHERE external_id = $1",
                                {origin, before})
                               .value(0, 0) == "t";
                },
                std::chrono::seconds(60)));
            outage->end();
        });
        CHECK(run.daemon->running());
        run.stop();
    }

    TEST_CASE(
        "apply_workers = 3: sharded apply both ways, with kill -9 of pgbridge, a truncate and "
        "a large transaction") {
        BridgeRun run("", [](ScratchBridge& scratch) {
            rewrite_config(scratch, "timeout_ms = 10000", "timeout_ms = 10000\napply_workers = 3");
            rewrite_config(scratch, "name = \"public.notes\"",
                           "name = \"public.notes\"\natomic_transactions = true");
        });
        const std::string bridge = run.scratch.name();
        // Setup made three shards each way: their queues on the broker, their origins.
        {
            transport::AmqpConnection broker(amqp_options());
            for (const char* side : {"a", "b"}) {
                for (int shard = 1; shard <= 3; ++shard) {
                    const std::string queue =
                        fmt::format("pgbridge.{}.to.{}.s{}", bridge, side, shard);
                    CAPTURE(queue);
                    CHECK(broker.inspect_queue(1, queue));
                    CHECK(broker.inspect_queue(1, queue + ".retry"));
                }
                CHECK_FALSE(broker.inspect_queue(1, names::queue(bridge, side)));
            }
            auto b = run.scratch.admin(1);
            CHECK(b.exec("SELECT count(*) FROM pg_replication_origin WHERE roname LIKE $1",
                         {fmt::format("pgbridge\\_{}\\_from\\_a\\_s_", bridge)})
                      .value(0, 0) == "3");
        }
        run.start();
        run_workload(run, soak_seconds(16), false, [&] {
            run.daemon->signal(SIGKILL);
            CHECK(run.daemon->wait(std::chrono::seconds(10)) == 128 + SIGKILL);
            run.start();
        });
        // Every shard of each direction applied something: its progress row moved.
        for (int side = 0; side < 2; ++side) {
            auto conn = run.scratch.admin(side);
            CHECK(conn.exec("SELECT count(*) FROM pgbridge.apply_progress WHERE bridge = $1 AND "
                            "last_end_lsn > '0/0'",
                            {bridge})
                      .value(0, 0) == "3");
        }
        // A large transaction: in parts, each shard its own; and a truncate, which every shard
        // applies to its own rows.
        auto a = run.scratch.admin(0);
        a.exec(
            "INSERT INTO public.talents SELECT g, repeat('n', 100), 'e@x', NULL, 'bulk', 1 "
            "FROM generate_series(100000, 119999) g");
        CHECK(eventually([&] { return run.differences().empty(); }, std::chrono::seconds(90)));
        a.exec("TRUNCATE public.talents");
        auto b = run.scratch.admin(1);
        CHECK(eventually(
            [&] { return b.exec("SELECT count(*) FROM hr.candidates").value(0, 0) == "0"; },
            std::chrono::seconds(60)));
        CHECK(eventually([&] { return run.differences().empty(); }));
        CHECK(eventually([&] { return run.settled(); }, std::chrono::seconds(60)));
        CHECK(run.daemon->running());
        run.stop();
    }

    TEST_CASE(
        "apply-only workers: shards 2 and 3 in processes of their own, one killed with -9; a "
        "local write the target's capture has to record first is waited for across processes") {
        BridgeRun run("", [](ScratchBridge& scratch) {
            rewrite_config(scratch, "timeout_ms = 10000",
                           "timeout_ms = 10000\napply_workers = 3\nremote_apply_shards = [2, 3]");
        });
        const std::string config = run.scratch.config_path();
        const auto worker = [&](int shard, int start) {
            auto w = std::make_unique<DaemonProcess>(
                std::vector<std::string>{TestEnvironment::get().pgbridge_binary, "--config", config,
                                         "run", "--apply-only", "--shard",
                                         fmt::format("{}/3", shard)},
                fmt::format("{}/worker-{}-{}.log", run.scratch.dir(), shard, start));
            const bool applying = eventually([&] {
                return w->output_contains(fmt::format("applying shard {}/3 both ways", shard)) ||
                       !w->running();
            });
            INFO(w->output());
            REQUIRE(applying);
            return w;
        };
        // A shard pgbridge run applies itself, or a layout other than the file's: refused.
        for (const char* wrong : {"1/3", "2/4", "0/3", "2"}) {
            const CommandResult r = run.scratch.pgbridge({"run", "--apply-only", "--shard", wrong});
            CAPTURE(wrong);
            CHECK(r.exit_code == 2);
        }
        CHECK(run.scratch.pgbridge({"run", "--apply-only", "--shard", "1/3"})
                  .err.find("applied by pgbridge run itself") != std::string::npos);

        run.start();
        // pgbridge run applies shard 1 only; status says who is missing.
        {
            const CommandResult status = run.scratch.pgbridge({"status"});
            INFO(status.out << status.err);
            CHECK(status.exit_code == 1);
            CHECK(status.out.find("shard 2 has no consumer (is pgbridge run --apply-only "
                                  "--shard 2/3 running?)") != std::string::npos);
            CHECK(status.out.find("shard 1 has no consumer") == std::string::npos);
        }
        auto shard2 = worker(2, 1);
        auto shard3 = worker(3, 1);
        CHECK(eventually([&] { return run.scratch.pgbridge({"status"}).exit_code == 0; }));

        // A row updated on b inside a savepoint: its xmin is the subtransaction's, which
        // capture's record never names, so only the position the target's capture has
        // reached can clear it. That capture runs in pgbridge run; the workers ask it.
        auto a = run.scratch.admin(0);
        auto b = run.scratch.admin(1);
        std::vector<long> keys;  // one per shard
        for (long id = 500000; keys.size() < 3; ++id) {
            const std::string text = std::to_string(id);
            if (key_shard({text}, 3) == keys.size()) {
                keys.push_back(id);
            }
        }
        for (const long id : keys) {
            a.exec(
                fmt::format("INSERT INTO public.talents VALUES ({}, 'n', 'first@x', NULL, "
                            "'new', 0)",
                            id));
        }
        REQUIRE(eventually([&] { return run.differences().empty(); }));
        const auto started = std::chrono::steady_clock::now();
        for (const long id : keys) {
            b.exec(
                fmt::format("BEGIN; SAVEPOINT s; UPDATE hr.candidates SET phone = 'b-{}' "
                            "WHERE id = {}; RELEASE SAVEPOINT s; COMMIT",
                            id, id));
            a.exec(fmt::format("UPDATE public.talents SET email = 'a-{}@x' WHERE id = {}", id, id));
        }
        const bool merged = eventually(
            [&] {
                for (const long id : keys) {
                    const auto row = b.exec(fmt::format(
                        "SELECT contact_email, phone FROM hr.candidates WHERE id = {}", id));
                    if (row.rows() != 1 ||
                        std::string(row.value(0, 0)) != fmt::format("a-{}@x", id) ||
                        std::string(row.value(0, 1)) != fmt::format("b-{}", id)) {
                        return false;
                    }
                }
                return run.differences().empty();
            },
            std::chrono::seconds(30));
        CHECK(merged);
        // Each worker waits at most timeout_ms per read without the capture's answer, and
        // reads again up to 20 times: well past this.
        MESSAGE("savepoint writes merged on both sides in "
                << std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - started)
                       .count()
                << " ms");

        int restarts = 1;
        run_workload(run, soak_seconds(16), false, [&] {
            shard2->signal(SIGKILL);
            CHECK(shard2->wait(std::chrono::seconds(10)) == 128 + SIGKILL);
            shard2 = worker(2, ++restarts);
        });
        // Every shard of each direction applied something, each in its own process.
        for (int side = 0; side < 2; ++side) {
            auto conn = run.scratch.admin(side);
            CHECK(conn.exec("SELECT count(*) FROM pgbridge.apply_progress WHERE bridge = $1 AND "
                            "last_end_lsn > '0/0'",
                            {run.scratch.name()})
                      .value(0, 0) == "3");
        }
        CHECK(shard3->running());
        for (auto* w : {shard2.get(), shard3.get()}) {
            w->signal(SIGTERM);
            INFO(w->output());
            CHECK(w->wait(std::chrono::seconds(20)) == 0);
        }
        run.stop();
    }

    TEST_CASE(
        "two sites: each side's own broker, joined by shovels; what waits at a site while the "
        "shovels are away is counted by lag and arrives once") {
        const TestEnvironment& env = TestEnvironment::get();
        const char* node = std::getenv("PGBRIDGE_TEST_RABBITMQ_NODE");
        REQUIRE(node != nullptr);
        const auto ctl = [&](std::vector<std::string> args) {
            args.insert(args.begin(), {"rabbitmqctl", "-q", "-n", node});
            const CommandResult r = run_command(args, std::chrono::seconds(60));
            INFO(fmt::format("{}", fmt::join(args, " ")) << ": " << r.out << r.err);
            REQUIRE(r.exit_code == 0);
        };
        // Site b's broker: a virtual host of the test node, reached by its own URL as another
        // broker would be.
        struct SiteB {
            std::string vhost = fmt::format("pgbridge_site_b_{}", ::getpid());
            std::function<void(std::vector<std::string>)> ctl;
            ~SiteB() {
                try {
                    ctl({"delete_vhost", vhost});
                } catch (...) {
                }
            }
        } site_b{.ctl = ctl};
        ctl({"add_vhost", site_b.vhost});
        ctl({"set_permissions", "-p", site_b.vhost, "pgbridge", ".*", ".*", ".*"});
        const std::string site_a_url = env.amqp_url;
        const auto slash = site_a_url.rfind('/');
        const std::string site_b_url = site_a_url.substr(0, slash + 1) + site_b.vhost;
        BridgeRun run("", [&](ScratchBridge& scratch) {
            rewrite_config(scratch, "password_file = \"b.pass\"",
                           fmt::format("password_file = \"b.pass\"\nrabbitmq_url = \"{}\"\n"
                                       "rabbitmq_password_file = \"rabbit.pass\"",
                                       site_b_url));
        });
        const std::string bridge = run.scratch.name();
        // Setup declared everything at both sites.
        for (const std::string& url : {site_a_url, site_b_url}) {
            auto options = amqp_options();
            options.url = *AmqpUrl::parse(url, nullptr);
            options.url.password = Secret(env.amqp_password);
            transport::AmqpConnection broker(options);
            for (const char* side : {"a", "b"}) {
                CAPTURE(url);
                CHECK(broker.inspect_queue(1, names::queue(bridge, side)));
                CHECK(broker.inspect_queue(1, names::dead_letter_queue(bridge, side)));
            }
        }
        // The shovels, as docs/topologies.md sets them up: each carries the queue of changes
        // for the other site to that site's exchange, acknowledging at the source only what
        // the destination confirmed.
        const auto with_password = [&](const std::string& url) {
            const auto at = url.find('@');
            return url.substr(0, at) + ":" + env.amqp_password + url.substr(at);
        };
        const auto shovel = [&](const std::string& to_side, const std::string& from_url,
                                const std::string& to_url) {
            return nlohmann::json{{"src-protocol", "amqp091"},
                                  {"src-uri", with_password(from_url)},
                                  {"src-queue", names::queue(bridge, to_side)},
                                  {"dest-protocol", "amqp091"},
                                  {"dest-uri", with_password(to_url)},
                                  {"dest-exchange", names::exchange(bridge)},
                                  {"ack-mode", "on-confirm"}}
                .dump();
        };
        const auto start_shovels = [&] {
            ctl({"set_parameter", "shovel", bridge + "-to-b", shovel("b", site_a_url, site_b_url)});
            ctl({"set_parameter", "shovel", bridge + "-to-a", shovel("a", site_b_url, site_a_url)});
        };
        const auto stop_shovels = [&] {
            ctl({"clear_parameter", "shovel", bridge + "-to-b"});
            ctl({"clear_parameter", "shovel", bridge + "-to-a"});
        };
        start_shovels();
        struct ShovelsGone {
            std::function<void()> stop;
            ~ShovelsGone() {
                try {
                    stop();
                } catch (...) {
                }
            }
        } shovels_gone{stop_shovels};

        run.start();
        // What the extra hop costs: one row at a time from a to b, from the insert's commit
        // to the row seen on b (polled every millisecond).
        {
            auto a = run.scratch.admin(0);
            auto b = run.scratch.admin(1);
            std::vector<double> ms;
            for (int id = 800001; id <= 800020; ++id) {
                a.exec(fmt::format(
                    "INSERT INTO public.talents VALUES ({}, 'hop', 'hop@x', NULL, 'new', 0)", id));
                const auto committed = std::chrono::steady_clock::now();
                const auto deadline = committed + std::chrono::seconds(30);
                const std::string probe =
                    fmt::format("SELECT 1 FROM hr.candidates WHERE id = {}", id);
                while (b.exec(probe).rows() == 0 && std::chrono::steady_clock::now() < deadline) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(1));
                }
                REQUIRE(b.exec(probe).rows() == 1);
                ms.push_back(std::chrono::duration<double, std::milli>(
                                 std::chrono::steady_clock::now() - committed)
                                 .count());
            }
            std::sort(ms.begin(), ms.end());
            MESSAGE(
                fmt::format("two sites, one row at a time: commit on a to the row on b "
                            "median {:.1f} ms, max {:.1f} ms",
                            ms[ms.size() / 2], ms.back()));
        }
        bool held_at_site = false;
        run_workload(run, soak_seconds(16), false, [&] {
            // The link between the sites is down: what each capture publishes waits at its
            // own site, and lag counts it.
            stop_shovels();
            auto a = run.scratch.admin(0);
            a.exec("INSERT INTO public.talents VALUES (900001, 'held', 'held@x', NULL, 'new', 0)");
            held_at_site = eventually(
                [&] {
                    const auto [code, lag] = run.pgbridge_json("lag");
                    for (const auto& d : lag) {
                        if (d["source"] == "a" && d["queued_messages"].is_number() &&
                            d["queued_messages"] > 0) {
                            return true;
                        }
                    }
                    return false;
                },
                std::chrono::seconds(30));
            auto b = run.scratch.admin(1);
            CHECK(b.exec("SELECT count(*) FROM hr.candidates WHERE id = 900001").value(0, 0) ==
                  "0");
            start_shovels();
        });
        CHECK(held_at_site);
        CHECK(run.daemon->running());
        run.stop();
    }

    TEST_CASE("last_write_wins, with one PostgreSQL restarted during the stream") {
        BridgeRun run("");
        run.start();
        run_workload(run, soak_seconds(16), false, [&] {
            auto stopped =
                run_command({testenv_script(), "pg-stop", "b"}, std::chrono::seconds(60));
            REQUIRE(stopped.exit_code == 0);
            std::this_thread::sleep_for(std::chrono::seconds(2));  // the outage itself
            auto started =
                run_command({testenv_script(), "pg-start", "b"}, std::chrono::seconds(60));
            REQUIRE(started.exit_code == 0);
        });
        CHECK(run.daemon->running());
        run.stop();
    }

    TEST_CASE("last_write_wins, with a column added and dropped on both sides during the stream") {
        BridgeRun run("");
        run.start();
        run_workload(run, soak_seconds(16), false, [&] {
            auto a = run.scratch.admin(0);
            auto b = run.scratch.admin(1);
            // Added on a first: a's changes of the table wait until b has the column, while
            // b's keep flowing to a.
            a.exec("ALTER TABLE public.talents ADD COLUMN nickname text");
            a.exec("UPDATE public.talents SET nickname = 'nick ' || id WHERE id <= 3");
            std::this_thread::sleep_for(std::chrono::seconds(2));  // between the two sides' DDL
            b.exec("ALTER TABLE hr.candidates ADD COLUMN nickname text");
            CHECK(eventually(
                [&] {
                    return b.exec("SELECT count(*) FROM hr.candidates WHERE nickname LIKE 'nick %'")
                               .value(0, 0) == "3";
                },
                std::chrono::seconds(30)));
            // Dropped on b first: b's changes carry it no more; a's wait, then go without it.
            b.exec("ALTER TABLE hr.candidates DROP COLUMN nickname");
            std::this_thread::sleep_for(std::chrono::seconds(1));  // between the two sides' DDL
            a.exec("ALTER TABLE public.talents DROP COLUMN nickname");
        });
        CHECK(dead_letters_none(run.scratch));
        CHECK(run.daemon->output_contains("waiting for it"));
        CHECK(run.daemon->running());
        run.stop();
    }

    TEST_CASE(
        "lag and status: a stopped bridge shows its backlog and is degraded; resumed, "
        "it catches up and is healthy") {
        BridgeRun run("");
        run.start();
        run.stop();
        run.scratch.admin(0).exec(
            "INSERT INTO public.notes SELECT g, 'backlog', true FROM generate_series(1, 1000) g");
        const auto lag = run.scratch.pgbridge({"lag", "--json"});
        REQUIRE_MESSAGE(lag.exit_code == 0, lag.err);
        const auto directions = nlohmann::json::parse(lag.out);
        REQUIRE(directions.size() == 2);
        CHECK(directions[0]["source"] == "a");
        const std::uint64_t waiting = directions[0]["wal_bytes_not_captured"];
        CHECK(waiting > 64 * 1024);
        // The table shows the same number in the unit every command's text uses (give or take
        // the few bytes the server itself may log in between, such as its periodic snapshot of
        // running transactions).
        const auto table = run.scratch.pgbridge({"lag"});
        bool shown = false;
        for (std::uint64_t v = waiting; v <= waiting + 4096 && !shown; ++v) {
            shown = table.out.find("  " + format_bytes(static_cast<std::int64_t>(v)) + "  ") !=
                    std::string::npos;
        }
        INFO(table.out);
        CHECK(shown);
        const auto degraded = run.scratch.pgbridge({"status"});
        INFO(degraded.out);
        CHECK(degraded.exit_code == 1);
        CHECK(degraded.out.find("not in use") != std::string::npos);

        run.start();
        CHECK(eventually([&] {
            const auto now = run.scratch.pgbridge({"lag", "--json"});
            const auto d = nlohmann::json::parse(now.out);
            return d[0]["queued_messages"] == 0 && d[0]["seconds_behind"] == 0.0 &&
                   d[1]["seconds_behind"] == 0.0;
        }));
        CHECK(eventually([&] { return run.scratch.pgbridge({"status"}).exit_code == 0; }));
        const auto healthy = run.scratch.pgbridge({"status", "--json"});
        const auto verdict = nlohmann::json::parse(healthy.out);
        CHECK(verdict["health"] == "healthy");
        CHECK(verdict["problems"].empty());
        CHECK(run.differences().empty());
        run.stop();
    }

    TEST_CASE("with one PostgreSQL down, slots, lag and status answer in time and say so") {
        BridgeRun run("");
        const std::string testenv = testenv_script();
        REQUIRE(run_command({testenv, "pg-stop", "b"}, std::chrono::seconds(60)).exit_code == 0);
        struct Restart {
            std::string script;
            ~Restart() { run_command({script, "pg-start", "b"}, std::chrono::seconds(60)); }
        } restart{testenv};
        // engine.timeout_ms is 10 s in the test config: each must answer well within it.
        const auto deadline = std::chrono::seconds(10);
        const auto slots = run_command({TestEnvironment::get().pgbridge_binary, "--config",
                                        run.scratch.config_path(), "slots"},
                                       deadline);
        CHECK(slots.exit_code == 1);
        const auto lag = run_command(
            {TestEnvironment::get().pgbridge_binary, "--config", run.scratch.config_path(), "lag"},
            deadline);
        CHECK(lag.exit_code == 1);
        CHECK(lag.err.find("side b cannot be reached") != std::string::npos);
        const auto status = run_command({TestEnvironment::get().pgbridge_binary, "--config",
                                         run.scratch.config_path(), "status", "--json"},
                                        deadline);
        CHECK(status.exit_code == 2);
        const auto verdict = nlohmann::json::parse(status.out);
        CHECK(verdict["health"] == "down");
        CHECK(verdict["sides"][1]["reachable"] == false);
    }

    TEST_CASE("status and lag show a running initial copy: rows of the estimate, then none left") {
        // Rows that were there before the bridge: copied from a, one small message at a time,
        // so the copy runs long enough to be seen.
        BridgeRun run("", [](ScratchBridge& scratch) {
            auto a = scratch.admin(0);
            a.exec("INSERT INTO public.notes SELECT g, 'n', true FROM generate_series(1, 30000) g");
            a.exec("ANALYZE public.notes");
        });
        rewrite_config(run.scratch, "timeout_ms = 10000", "timeout_ms = 10000\nbatch_size = 5");
        run.start();
        nlohmann::json seen;
        REQUIRE(eventually(
            [&] {
                const auto [code, status] = run.pgbridge_json("status");
                for (const auto& side : status["sides"]) {
                    if (side["side"] == "a" && !side["copy"]["running"].empty()) {
                        seen = side["copy"];
                        return true;
                    }
                }
                return false;
            },
            std::chrono::seconds(60)));
        INFO(seen.dump());
        CHECK(seen["tables_left"].get<int>() >= 1);
        const auto& first = seen["running"][0];
        CHECK(first["table"].is_string());
        // The estimate is the planner's, from the ANALYZE above.
        CHECK(first["rows_estimated"].get<std::uint64_t>() == 30000);
        CHECK(first["rows_copied"].get<std::uint64_t>() <= 30000);
        CHECK(first["stalled"] == false);
        // Done: nothing left, nothing running, on both commands.
        REQUIRE(eventually(
            [&] {
                const auto [code, lag] = run.pgbridge_json("lag");
                for (const auto& direction : lag) {
                    if (direction["source"] == "a") {
                        return direction["copy"]["tables_left"] == 0 &&
                               direction["copy"]["running"].empty();
                    }
                }
                return false;
            },
            std::chrono::seconds(120)));
        const CommandResult text = run.scratch.pgbridge({"status"});
        CHECK(text.out.find("Initial copy from") == std::string::npos);
        CHECK(eventually([&] { return run.differences().empty(); }, std::chrono::seconds(60)));
        run.stop();
    }

    TEST_CASE("with [log] format = \"json\", every line the daemon logs is one JSON object") {
        BridgeRun run("\n[log]\nformat = \"json\"\nlevel = \"debug\"\n");
        run.start();
        auto a = run.scratch.admin(0);
        a.exec("INSERT INTO public.notes VALUES (1, 'a value never logged', true)");
        REQUIRE(eventually([&] {
            return run.scratch.admin(1)
                       .exec("SELECT count(*) FROM public.notes WHERE id = 1")
                       .value(0, 0) == "1";
        }));
        run.stop();
        const std::string output = run.daemon->output();
        std::istringstream lines(output);
        int parsed = 0;
        std::set<std::string> components;
        for (std::string line; std::getline(lines, line);) {
            CAPTURE(line);
            const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
            REQUIRE_FALSE(j.is_discarded());
            CHECK(j.at("time").is_string());
            CHECK(j.at("level").is_string());
            CHECK(j.at("message").is_string());
            CHECK(j.at("fields").is_object());
            components.insert(j.at("component").get<std::string>());
            ++parsed;
        }
        CHECK(parsed > 5);
        CHECK(components.count("capture") == 1);
        CHECK(components.count("run") == 1);
        CHECK(output.find("a value never logged") == std::string::npos);
    }

    TEST_CASE("the metrics endpoint counts what was actually written, and passes promtool") {
        const int port = free_port();
        BridgeRun run(fmt::format("\n[metrics]\nlisten = \"127.0.0.1:{}\"\n", port));
        run.start();
        const std::string bridge = run.scratch.name();
        std::string text;
        const auto series = [&](const std::string& name, const std::string& labels) {
            return sample(text, fmt::format("{}{{bridge=\"{}\",{}}}", name, bridge, labels));
        };
        // Before anything happened: every direction's counters are there, at zero.
        REQUIRE(eventually([&] {
            text = http_get(port, "/metrics");
            return !text.empty();
        }));
        CHECK(series("pgbridge_messages_dead_lettered_total", "source=\"b\",target=\"a\"") == 0.0);
        CHECK(series("pgbridge_changes_applied_total",
                     "op=\"delete\",source=\"a\",table=\"hr.candidates\",target=\"b\"") == 0.0);
        auto a = run.scratch.admin(0);
        a.exec(
            "INSERT INTO public.talents SELECT g, 'n', 'e', NULL, 'new', 1 "
            "FROM generate_series(1, 40) g");
        a.exec("UPDATE public.talents SET status = 'x' WHERE id <= 15");
        run.scratch.admin(1).exec("DELETE FROM public.notes");  // nothing there: no change
        run.scratch.admin(1).exec(
            "INSERT INTO public.notes SELECT g, 'b', true "
            "FROM generate_series(1, 7) g");
        REQUIRE(eventually([&] { return run.differences().empty(); }));
        const auto applied = [&](const std::string& source, const std::string& target,
                                 const std::string& table, const std::string& op) {
            return series("pgbridge_changes_applied_total",
                          fmt::format("op=\"{}\",source=\"{}\",table=\"{}\",target=\"{}\"", op,
                                      source, table, target));
        };
        CHECK(eventually([&] {
            text = http_get(port, "/metrics");
            return applied("a", "b", "hr.candidates", "update") == 15.0 &&
                   series("pgbridge_changes_captured_total", "source=\"a\",target=\"b\"") == 55.0;
        }));
        INFO(text);
        CHECK(applied("a", "b", "hr.candidates", "insert") == 40.0);
        CHECK(applied("b", "a", "public.notes", "insert") == 7.0);
        CHECK(series("pgbridge_apply_latency_seconds_count", "source=\"a\",target=\"b\"") == 2.0);
        CHECK(eventually([&] {
            text = http_get(port, "/metrics");
            return series("pgbridge_side_up", "side=\"b\"") == 1.0 &&
                   series("pgbridge_copy_tables_left", "side=\"a\"") == 0.0;
        }));
        CHECK(text.find("pgbridge_build_info{bridge=") != std::string::npos);
        CHECK(text.find("'n'") == std::string::npos);
        // The exposition is one Prometheus accepts, names and help included.
        const std::string scrape_file = run.scratch.dir() + "/scrape.txt";
        std::ofstream(scrape_file) << text;
        const CommandResult lint =
            run_command({"sh", "-c", "promtool check metrics < " + scrape_file});
        INFO(lint.out << lint.err);
        CHECK(lint.exit_code == 0);
        // Every metric the shipped dashboard and alert rules use is one a bridge exports.
        const auto read_source = [](const std::string& relative) {
            const char* root = std::getenv("PGBRIDGE_SOURCE_ROOT");
            REQUIRE(root != nullptr);
            std::ifstream in(std::filesystem::path(root) / relative);
            REQUIRE(in);
            return std::string((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
        };
        const std::string exporter = read_source("src/metrics/bridge_metrics.cpp");
        for (const char* file :
             {"packaging/grafana/pgbridge.json", "packaging/prometheus/pgbridge-rules.yml"}) {
            const std::string content = read_source(file);
            const std::regex name("pgbridge_[a-z_]+");
            int used = 0;
            for (auto it = std::sregex_iterator(content.begin(), content.end(), name);
                 it != std::sregex_iterator(); ++it, ++used) {
                std::string metric = it->str();
                for (const char* suffix : {"_bucket", "_count", "_sum"}) {
                    if (metric.ends_with(suffix) &&
                        text.find("# TYPE " +
                                  metric.substr(0, metric.size() - std::strlen(suffix)) +
                                  " histogram") != std::string::npos) {
                        metric.resize(metric.size() - std::strlen(suffix));
                    }
                }
                CAPTURE(file);
                CAPTURE(metric);
                // Series born of an event this bridge has not had (a conflict, a copy of rows,
                // a scheduled verify, max_slot_wal_keep_size set): registered by the exporter,
                // with no series yet, so absent from a scrape.
                const bool event_born = metric == "pgbridge_conflicts_total" ||
                                        metric == "pgbridge_copy_rows_estimated" ||
                                        metric == "pgbridge_verify_differences" ||
                                        metric == "pgbridge_slot_safe_wal_size_bytes";
                if (event_born) {
                    CHECK(exporter.find(".Name(\"" + metric + "\")") != std::string::npos);
                } else {
                    CHECK(text.find("# TYPE " + metric + " ") != std::string::npos);
                }
            }
            CHECK(used > 10);
        }
        run.stop();
    }

    TEST_CASE("the metrics endpoint over HTTPS with basic auth answers only who has the password") {
        const int port = free_port();
        const char* tls_dir = std::getenv("PGBRIDGE_TEST_TLS_DIR");
        REQUIRE(tls_dir != nullptr);
        const std::filesystem::path tls(tls_dir);
        const auto owner_only =
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write;
        BridgeRun run(
            fmt::format("\n[metrics]\nlisten = \"127.0.0.1:{}\"\nuser = \"prometheus\"\n"
                        "password_file = \"metrics.pass\"\ncert_file = \"metrics.pem\"\n"
                        "key_file = \"metrics.key\"\n",
                        port),
            [&](ScratchBridge& scratch) {
                const std::string file = scratch.dir() + "/metrics.pass";
                std::ofstream(file) << "scrape-secret\n";
                std::filesystem::permissions(file, owner_only);
                std::filesystem::copy_file(tls / "server.pem", scratch.dir() + "/metrics.pem");
                std::filesystem::copy_file(tls / "server.key", scratch.dir() + "/metrics.key");
                std::filesystem::permissions(scratch.dir() + "/metrics.key", owner_only);
            });
        run.start();
        const std::string url = fmt::format("https://127.0.0.1:{}/metrics", port);
        const std::string ca = (tls / "ca.pem").string();
        auto curl = [&](std::vector<std::string> extra) {
            std::vector<std::string> argv{"curl", "-s",           "-o",       "/dev/null",
                                          "-w",   "%{http_code}", "--cacert", ca};
            argv.insert(argv.end(), extra.begin(), extra.end());
            return run_command(argv, std::chrono::seconds(20)).out;
        };
        REQUIRE(eventually([&] { return curl({url}) == "401"; }, std::chrono::seconds(20)));
        CHECK(curl({"-u", "prometheus:wrong-secret", url}) == "401");
        CHECK(curl({"-u", "someone:scrape-secret", url}) == "401");
        CHECK(curl({"-u", "prometheus:scrape-secret", url}) == "200");
        // Plain HTTP to the HTTPS port gets no answer, and harms nothing.
        CHECK(curl({"-u", "prometheus:scrape-secret",
                    fmt::format("http://127.0.0.1:{}/metrics", port)}) == "000");
        // A certificate curl does not trust is refused by curl (the server is who it says).
        CHECK(run_command({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
                           (tls / "other-ca.pem").string(), url},
                          std::chrono::seconds(20))
                  .out == "000");
        const CommandResult body =
            run_command({"curl", "-s", "--cacert", ca, "-u", "prometheus:scrape-secret", url},
                        std::chrono::seconds(20));
        CHECK(body.out.find("pgbridge_broker_up") != std::string::npos);
        // A renewed certificate (here the CA's other one) is served without a restart.
        const auto overwrite = std::filesystem::copy_options::overwrite_existing;
        std::filesystem::copy_file(tls / "client.pem", run.scratch.dir() + "/metrics.pem",
                                   overwrite);
        std::filesystem::copy_file(tls / "client.key", run.scratch.dir() + "/metrics.key",
                                   overwrite);
        CHECK(eventually([&] {
            return run_command({"curl", "-s", "-v", "-k", "-o", "/dev/null", url},
                               std::chrono::seconds(20))
                       .err.find("CN=pgbridge") != std::string::npos;
        }));
        CHECK(run.daemon->running());
        run.stop();

        // The private key is a secret file: readable by others, it is refused.
        std::filesystem::permissions(run.scratch.dir() + "/metrics.key",
                                     owner_only | std::filesystem::perms::others_read);
        const CommandResult check = run.scratch.pgbridge({"check-config"});
        CHECK(check.exit_code == 2);
        CHECK(check.err.find("metrics.key_file") != std::string::npos);
    }

    TEST_CASE(
        "initial sync: rows both sides held before the first start end identical; a "
        "table added later is copied too") {
        // Rows both sides held before pgbridge was set up, overlapping on 40..60.
        BridgeRun run("", [](ScratchBridge& scratch) {
            scratch.admin(0).exec(
                "INSERT INTO public.talents SELECT g, 'a-' || g, 'e' || g, "
                "NULL, 'new', g FROM generate_series(1, 60) g");
            scratch.admin(0).exec(
                "INSERT INTO public.notes SELECT g, 'note', true FROM generate_series(1, 2500) g");
            scratch.admin(1).exec(
                "INSERT INTO hr.candidates SELECT g, 'b-' || g, 'e' || g, "
                "NULL, 'new', g FROM generate_series(40, 100) g");
            scratch.admin(0).exec(
                "INSERT INTO public.extra SELECT g, 'x' FROM generate_series(1, 30) g");
        });
        auto a = run.scratch.admin(0);
        auto b = run.scratch.admin(1);
        // Rows both sides wrote after setup but before the first start (B later): live changes
        // in the slots, and rows in the copies.
        a.exec(
            "INSERT INTO public.talents SELECT g, 'a-' || g, 'e', NULL, 'new', 1 "
            "FROM generate_series(200, 210) g");
        b.exec(
            "INSERT INTO hr.candidates SELECT g, 'b-' || g, 'e', NULL, 'new', 1 "
            "FROM generate_series(205, 215) g");
        run.start();
        // A live change made while the copy may still be on its way is not undone by it.
        a.exec("UPDATE public.talents SET status = 'live' WHERE id = 50");
        CHECK(eventually([&] { return run.differences().empty(); }, std::chrono::seconds(60)));
        INFO("differences: " << run.detail_);
        const Rows talents = all_rows(b, "hr.candidates", kTables[0].b_columns);
        CHECK(talents.size() == 116);
        // Rows both sides held: an unknown-time tie, settled by source_priority (a first).
        CHECK(talents.at("45")[0] == "a-45");

        CHECK(talents.at("50")[3] == "live");
        CHECK(talents.at("100")[0] == "b-100");
        // Written after setup: the later write wins, as for live changes.
        CHECK(talents.at("207")[0] == "b-207");
        CHECK(talents.at("201")[0] == "a-201");
        CHECK(all_rows(b, "public.notes", kTables[1].b_columns).size() == 2500);
        run.stop();

        // public.extra joins the bridge: setup again, restart; its rows are copied.
        {
            std::ofstream config(run.scratch.config_path(), std::ios::app);
            config << "\n[[tables]]\nname = \"public.extra\"\n";
        }
        run.scratch.setup();
        run.start();
        CHECK(eventually(
            [&] { return b.exec("SELECT count(*) FROM public.extra").value(0, 0) == "30"; }));
        // The tables copied before are not copied again.
        CHECK(a.exec("SELECT count(*) FROM pgbridge.sync_state").value(0, 0) == "4");
        run.stop();
    }
}
