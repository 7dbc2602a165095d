// No silent loss in operations (nothing committed is lost; bad input is dead-lettered, not
// dropped), against `pgbridge run` as a process, real clusters and a real broker: what a DBA
// does next to a running bridge (a second daemon started by mistake, ...) never makes rows go
// missing.

#include <array>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/transport/amqp_connection.hpp>

#include "../support/bridge_run.hpp"

using namespace pgbridge;
using namespace pgbridge::test;
using namespace pgbridge::transport;

namespace {

// public.events partitioned by region on one side, a plain table on the other: the two shapes
// a table configured by its partitioned root meets.
constexpr const char* kPartitionedEvents =
    "CREATE TABLE public.events (id bigint, region text, body text,"
    "                            PRIMARY KEY (id, region)) PARTITION BY LIST (region);"
    "CREATE TABLE public.events_eu PARTITION OF public.events FOR VALUES IN ('eu');"
    "CREATE TABLE public.events_us PARTITION OF public.events FOR VALUES IN ('us');";
constexpr const char* kPlainEvents =
    "CREATE TABLE public.events (id bigint, region text, body text,"
    "                            PRIMARY KEY (id, region));";

long count_of(pg::Connection& conn, const std::string& sql) {
    return std::stol(std::string(conn.exec(sql).value(0, 0)));
}

void insert_notes(ScratchBridge& scratch, int side, int first, int count) {
    auto conn = scratch.admin(side);
    conn.exec(
        fmt::format("INSERT INTO public.notes SELECT g, 'note ' || g, true"
                    " FROM generate_series({}, {}) g",
                    first, first + count - 1));
}

bool notes_arrived(ScratchBridge& scratch, int side, int first, int count) {
    auto conn = scratch.admin(side);
    return count_of(conn,
                    fmt::format("SELECT count(*) FROM public.notes WHERE id BETWEEN {} AND {}",
                                first, first + count - 1)) == count;
}

// The slot of `side`, dropped by hand (as a DBA cleaning up, or lost with a failed primary).
void drop_slot(ScratchBridge& scratch, int side) {
    auto conn = scratch.admin(side);
    conn.exec("SELECT pg_drop_replication_slot($1)",
              {names::slot(scratch.name(), scratch.side_name(side))});
}

// Changes on side a that no slot captures: inserts 100..109, an update of 1, a delete of 2.
void write_uncaptured(ScratchBridge& scratch) {
    insert_notes(scratch, 0, 100, 10);
    auto a = scratch.admin(0);
    a.exec("UPDATE public.notes SET body = 'changed while no slot' WHERE id = 1");
    a.exec("DELETE FROM public.notes WHERE id = 2");
}

bool same_notes(ScratchBridge& scratch) {
    auto a = scratch.admin(0);
    auto b = scratch.admin(1);
    const std::string sql =
        "SELECT coalesce(string_agg(id || ':' || body, ',' ORDER BY id), '')"
        "  FROM public.notes";
    return std::string(a.exec(sql).value(0, 0)) == std::string(b.exec(sql).value(0, 0));
}

// Both sides' initial copies are recorded (a stop before that copies again on the next start).
bool copies_done(ScratchBridge& scratch) {
    for (int side = 0; side < 2; ++side) {
        auto conn = scratch.admin(side);
        if (count_of(conn, "SELECT count(*) FROM pgbridge.sync_state") != 3) {
            return false;
        }
    }
    return true;
}

// run streams 20 notes from a to b and finishes its initial copies, then stops.
void stream_then_stop(BridgeRun& run) {
    run.start();
    insert_notes(run.scratch, 0, 1, 20);
    REQUIRE(
        eventually([&] { return notes_arrived(run.scratch, 1, 1, 20); }, std::chrono::seconds(30)));
    REQUIRE(eventually([&] { return copies_done(run.scratch); }, std::chrono::seconds(30)));
    run.stop();
}

// pgbridge's record of a side's slot is never behind the server's position for it.
void check_slot_recorded(ScratchBridge& scratch, int side) {
    auto conn = scratch.admin(side);
    const auto r = conn.exec(
        "SELECT s.confirmed_flush_lsn <= g.confirmed_lsn, s.confirmed_flush_lsn::text,"
        "       g.confirmed_lsn::text"
        "  FROM pg_replication_slots s JOIN pgbridge.slot_state g USING (slot_name)"
        " WHERE s.slot_name = $1",
        {names::slot(scratch.name(), scratch.side_name(side))});
    REQUIRE(r.rows() == 1);
    INFO("server " << r.value(0, 1) << ", recorded " << r.value(0, 2));
    CHECK(r.value(0, 0) == "t");
}

long bridge_slots(ScratchBridge& scratch) {
    long n = 0;
    for (int side = 0; side < 2; ++side) {
        auto conn = scratch.admin(side);
        n += count_of(conn, fmt::format("SELECT count(*) FROM pg_replication_slots"
                                        " WHERE slot_name LIKE 'pgbridge\\_{}\\_%'",
                                        scratch.name()));
    }
    return n;
}

// pgbridge run of the bridge, expected to end by itself within `deadline`: its exit code (-1
// when it did not end) and its output (in `err`).
CommandResult run_to_exit(ScratchBridge& scratch, const std::string& log_name,
                          std::chrono::seconds deadline = std::chrono::seconds(30)) {
    DaemonProcess daemon(
        {TestEnvironment::get().pgbridge_binary, "--config", scratch.config_path(), "run"},
        scratch.dir() + "/" + log_name);
    const int code = daemon.wait(deadline);
    return CommandResult{code, "", daemon.output()};
}

std::vector<std::string> setup_args(const ScratchBridge& scratch) {
    std::vector<std::string> args{"setup"};
    const auto flags = scratch.admin_flags();
    args.insert(args.end(), flags.begin(), flags.end());
    return args;
}

// Every row of public.notes on a side as "id:col1|col2|...", in key order.
std::string notes_columns(ScratchBridge& scratch, int side, const std::string& columns) {
    auto conn = scratch.admin(side);
    return std::string(
        conn.exec(fmt::format("SELECT coalesce(string_agg(id || ':' || concat_ws('|', {}), ',' "
                              "ORDER BY id), '') FROM public.notes",
                              columns))
            .value(0, 0));
}

std::string rows_of(ScratchBridge& scratch, int side, const std::string& sql) {
    auto conn = scratch.admin(side);
    return std::string(conn.exec(sql).value(0, 0));
}

// The owner of /proc/PID/status and the process's real uid (its "Uid:" line). The kernel
// gives a process that is not dumpable (PR_SET_DUMPABLE 0) /proc files owned by root, whatever
// user it runs as: the one outside view of that flag, which shows for a process not run by
// root.
std::pair<uid_t, uid_t> proc_owner_and_uid(pid_t pid) {
    const std::string path = fmt::format("/proc/{}/status", pid);
    struct stat info {};
    REQUIRE(::stat(path.c_str(), &info) == 0);
    std::ifstream status(path);
    std::string line;
    while (std::getline(status, line)) {
        if (line.starts_with("Uid:")) {
            return {info.st_uid, static_cast<uid_t>(std::stoul(line.substr(4)))};
        }
    }
    FAIL("no Uid line in " << path);
    return {};
}

std::string proc_comm(pid_t pid) {
    std::ifstream in(fmt::format("/proc/{}/comm", pid));
    std::string comm;
    std::getline(in, comm);
    return comm;
}

}  // namespace

TEST_SUITE("operations") {
    TEST_CASE(
        "a second pgbridge run of a running bridge exits 2 naming the first, touching "
        "nothing") {
        BridgeRun run("");
        run.start();
        insert_notes(run.scratch, 0, 1, 10);
        REQUIRE(eventually([&] { return notes_arrived(run.scratch, 1, 1, 10); },
                           std::chrono::seconds(30)));

        const CommandResult second =
            run_to_exit(run.scratch, "second-run.log", std::chrono::seconds(20));
        INFO(second.err);
        CHECK(second.exit_code == 2);
        CHECK(second.err.find("already running") != std::string::npos);
        CHECK(second.err.find(fmt::format("pid {}", run.daemon->pid())) != std::string::npos);
        CHECK(second.err.find("since ") != std::string::npos);
        // It stopped before any part started: no capture, no consumer, no copy.
        CHECK(second.err.find("streaming") == std::string::npos);
        CHECK(second.err.find("copy") == std::string::npos);

        // The first goes on alone: one consumer per queue, every change applied once, nothing
        // dead-lettered.
        CHECK(run.daemon->running());
        AmqpConnection broker(amqp_options());
        for (const char* side : {"a", "b"}) {
            const auto state = broker.inspect_queue(1, names::queue(run.scratch.name(), side));
            REQUIRE(state.has_value());
            CHECK(state->consumers == 1);
        }
        insert_notes(run.scratch, 1, 100, 10);
        CHECK(eventually([&] { return notes_arrived(run.scratch, 0, 100, 10); },
                         std::chrono::seconds(30)));
        CHECK(dead_letters_none(run.scratch));
        run.stop();
    }

    TEST_CASE("a direction's queue lets one consumer at a time receive") {
        BridgeRun run("");
        run.start();
        // A stray consumer on the queue pgbridge applies from (a second daemon whose lock
        // session is away, a DBA's script): it must receive nothing while pgbridge consumes.
        AmqpConnection stray(amqp_options());
        stray.open_channel(1);
        stray.qos(1, 100);
        stray.consume(1, names::queue(run.scratch.name(), "b"));
        for (int id = 1; id <= 40; ++id) {
            insert_notes(run.scratch, 0, id, 1);  // a transaction, a message each
        }
        int received = 0;
        const bool arrived = eventually(
            [&] {
                while (stray.next_delivery(std::chrono::milliseconds(50), 1 << 20)) {
                    ++received;
                }
                return notes_arrived(run.scratch, 1, 1, 40);
            },
            std::chrono::seconds(30));
        CHECK(arrived);
        CHECK(received == 0);
        run.stop();
    }

    TEST_CASE("run refuses a side whose setup is not complete, and copies nothing") {
        BridgeRun run("");
        drop_slot(run.scratch, 1);
        const CommandResult refused = run_to_exit(run.scratch, "refused-run.log");
        INFO(refused.err);
        CHECK(refused.exit_code == 2);
        CHECK(refused.err.find(names::slot(run.scratch.name(), "b") + " is missing") !=
              std::string::npos);
        CHECK(refused.err.find("pgbridge setup") != std::string::npos);
        for (int side = 0; side < 2; ++side) {
            auto conn = run.scratch.admin(side);
            CHECK(count_of(conn, "SELECT count(*) FROM pgbridge.sync_state") == 0);
        }
        // Setup creates what is missing; then run streams.
        run.scratch.setup();
        run.start();
        insert_notes(run.scratch, 0, 1, 5);
        CHECK(eventually([&] { return notes_arrived(run.scratch, 1, 1, 5); },
                         std::chrono::seconds(30)));
        run.stop();
    }

    TEST_CASE(
        "a slot created again: setup and status say so, and run repairs what the old "
        "slot never captured") {
        BridgeRun run("");
        stream_then_stop(run);
        check_slot_recorded(run.scratch, 0);
        check_slot_recorded(run.scratch, 1);

        drop_slot(run.scratch, 0);
        write_uncaptured(run.scratch);
        const CommandResult setup = run.scratch.pgbridge([&] {
            std::vector<std::string> args{"setup"};
            const auto flags = run.scratch.admin_flags();
            args.insert(args.end(), flags.begin(), flags.end());
            return args;
        }());
        INFO(setup.out << setup.err);
        CHECK(setup.exit_code == 0);
        CHECK(setup.out.find("created again") != std::string::npos);
        const CommandResult before = run.scratch.pgbridge({"status"});
        INFO(before.out << before.err);
        CHECK(before.exit_code == 1);
        CHECK(before.out.find("older slot") != std::string::npos);
        CHECK_FALSE(same_notes(run.scratch));

        run.start();
        CHECK(eventually([&] { return same_notes(run.scratch); }, std::chrono::seconds(90)));
        CHECK(eventually([&] { return run.scratch.pgbridge({"status"}).exit_code == 0; },
                         std::chrono::seconds(60)));
        CHECK(run.daemon->output_contains("repairing every synced table"));
        const auto [code, report] = run.pgbridge_json("verify");
        CHECK(code == 0);
        CHECK(report.value("identical", false));
        run.stop();
        check_slot_recorded(run.scratch, 0);
    }

    TEST_CASE(
        "a slot moved by hand is found, and with sync.recopy = ask status waits for "
        "pgbridge repair") {
        BridgeRun run("");
        std::ofstream(run.scratch.config_path(), std::ios::app) << "\n[sync]\nrecopy = \"ask\"\n";
        stream_then_stop(run);

        // Skipped past by hand: the changes in between are never streamed.
        write_uncaptured(run.scratch);
        {
            auto a = run.scratch.admin(0);
            a.exec("SELECT pg_replication_slot_advance($1, pg_current_wal_lsn())",
                   {names::slot(run.scratch.name(), "a")});
        }
        const CommandResult moved = run.scratch.pgbridge({"status"});
        INFO(moved.out << moved.err);
        CHECK(moved.exit_code == 1);
        CHECK(moved.out.find("ahead of the last position pgbridge reported") != std::string::npos);

        run.start();
        CHECK(run.daemon->output_contains("ahead of the last position"));
        // Streaming again, but not repaired: status names the command.
        insert_notes(run.scratch, 0, 200, 5);
        REQUIRE(eventually([&] { return notes_arrived(run.scratch, 1, 200, 5); },
                           std::chrono::seconds(30)));
        const CommandResult asking = run.scratch.pgbridge({"status"});
        INFO(asking.out << asking.err);
        CHECK(asking.exit_code == 1);
        CHECK(asking.out.find("run pgbridge repair") != std::string::npos);
        CHECK_FALSE(same_notes(run.scratch));

        const CommandResult repair = run.scratch.pgbridge({"repair"});
        INFO(repair.out << repair.err);
        CHECK(repair.exit_code == 0);
        CHECK(same_notes(run.scratch));
        CHECK(eventually([&] { return run.scratch.pgbridge({"status"}).exit_code == 0; },
                         std::chrono::seconds(60)));
        run.stop();
    }

    TEST_CASE(
        "run refuses a secret file others can read (exit 2, nothing started); the daemon "
        "writes no core file") {
        BridgeRun run("");
        for (const std::string file : {"a.pass", "rabbit.pass"}) {
            const std::string path = run.scratch.dir() + "/" + file;
            std::filesystem::permissions(
                path, std::filesystem::perms::group_read | std::filesystem::perms::others_read,
                std::filesystem::perm_options::add);
            const CommandResult refused = run.scratch.pgbridge({"run"});
            INFO(refused.out << refused.err);
            CHECK(refused.exit_code == 2);
            CHECK(refused.err.find(file + "' can be read or written by group or others (mode "
                                          "0644)") != std::string::npos);
            // (The test broker's password is a prefix of the scratch paths: the side's is not.)
            CHECK(refused.err.find(run.scratch.password()) == std::string::npos);
            std::filesystem::permissions(
                path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
        }
        run.start();
        std::ifstream limits(fmt::format("/proc/{}/limits", run.daemon->pid()));
        const std::string_view name = "Max core file size";
        std::string line;
        std::string soft;
        std::string hard;
        while (std::getline(limits, line)) {
            if (line.starts_with(name)) {
                std::istringstream(line.substr(name.size())) >> soft >> hard;
            }
        }
        CHECK(soft == "0");
        CHECK(hard == "0");
        run.stop();
    }

    TEST_CASE(
        "the daemon is not dumpable: its /proc files are root's although it runs as another "
        "user") {
        // Root's processes have root's /proc files anyway: run as root, the test runs the
        // daemon, and a dumpable process to compare with, as nobody.
        constexpr uid_t kNobody = 65534;
        const bool root = ::geteuid() == 0;
        const auto unprivileged = [&](std::vector<std::string> argv) {
            if (root) {
                argv.insert(argv.begin(),
                            {"setpriv", fmt::format("--reuid={}", kNobody),
                             fmt::format("--regid={}", kNobody), "--clear-groups", "--"});
            }
            return argv;
        };
        BridgeRun run("");
        if (root) {
            // Secret files are read by their owner only.
            for (const char* file : {"a.pass", "b.pass", "rabbit.pass"}) {
                REQUIRE(::chown((run.scratch.dir() + "/" + file).c_str(), kNobody, kNobody) == 0);
            }
        }
        DaemonProcess dumpable(unprivileged({"sleep", "60"}), run.scratch.dir() + "/sleep.log");
        REQUIRE(eventually([&] { return proc_comm(dumpable.pid()) == "sleep"; }));
        const auto [sleep_owner, sleep_uid] = proc_owner_and_uid(dumpable.pid());
        REQUIRE(sleep_uid != 0);
        CHECK(sleep_owner == sleep_uid);

        DaemonProcess daemon(unprivileged({TestEnvironment::get().pgbridge_binary, "--config",
                                           run.scratch.config_path(), "run"}),
                             run.scratch.dir() + "/run.log");
        const bool streaming = eventually(
            [&] {
                return daemon.output_contains("streaming both directions") || !daemon.running();
            },
            std::chrono::seconds(60));
        INFO(daemon.output());
        REQUIRE(streaming);
        REQUIRE(daemon.running());
        const auto [owner, uid] = proc_owner_and_uid(daemon.pid());
        CHECK(uid == sleep_uid);
        CHECK(owner == 0);
        stop_run(daemon);
    }

    TEST_CASE(
        "a refused login or a missing virtual host is named before setup creates a slot, "
        "and stops run with exit 2") {
        ScratchBridge scratch("opslogin", kSchemaA, kSchemaB, tables_toml(""));
        const std::string pass_file = scratch.dir() + "/rabbit.pass";
        std::ofstream(pass_file) << "not-the-password\n";
        CommandResult r = scratch.pgbridge(setup_args(scratch));
        INFO(r.out << r.err);
        CHECK(r.exit_code != 0);
        CHECK(r.err.find("refused the login of user") != std::string::npos);
        CHECK(bridge_slots(scratch) == 0);

        std::ofstream(pass_file) << TestEnvironment::get().amqp_password << "\n";
        const std::string url = TestEnvironment::get().amqp_url;
        const std::string vhost_url = url.substr(0, url.rfind('/')) + "/no_such_vhost";
        rewrite_config(scratch, url, vhost_url);
        r = scratch.pgbridge(setup_args(scratch));
        INFO(r.out << r.err);
        CHECK(r.exit_code != 0);
        CHECK(r.err.find("virtual host 'no_such_vhost'") != std::string::npos);
        CHECK(bridge_slots(scratch) == 0);

        rewrite_config(scratch, vhost_url, url);
        scratch.setup();
        CHECK(bridge_slots(scratch) == 2);

        // run: a wrong broker password, then a wrong database password.
        std::ofstream(pass_file) << "not-the-password\n";
        r = run_to_exit(scratch, "run-broker-login.log");
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("refused the login of user") != std::string::npos);
        std::ofstream(pass_file) << TestEnvironment::get().amqp_password << "\n";
        for (int side = 0; side < 2; ++side) {
            auto admin = scratch.admin(side);
            admin.exec(fmt::format("ALTER ROLE \"{}\" PASSWORD 'changed-behind-its-back'",
                                   scratch.role()));
        }
        r = run_to_exit(scratch, "run-pg-login.log");
        INFO(r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find("password authentication failed") != std::string::npos);
        CHECK(r.err.find(scratch.password()) == std::string::npos);
    }

    TEST_CASE(
        "setup and check-config refuse a field_priority rule for a column no synced table has") {
        ScratchBridge scratch("opsrule", kSchemaA, kSchemaB,
                              tables_toml("[conflicts.field_priority]\nemial = \"b\"\n"));
        const CommandResult r = scratch.pgbridge(setup_args(scratch));
        INFO(r.out << r.err);
        CHECK(r.exit_code != 0);
        CHECK(r.err.find("field_priority names column 'emial', which no synced table has") !=
              std::string::npos);
        CHECK(r.err.find("nothing was changed") != std::string::npos);
        CHECK(bridge_slots(scratch) == 0);

        // check-config says the same once the runtime role can read the tables, and accepts
        // the rule spelled right (mapped names included: contact_email is email on b).
        rewrite_config(scratch, "emial = \"b\"", "email = \"b\"");
        const CommandResult fixed = scratch.pgbridge(setup_args(scratch));
        INFO(fixed.out << fixed.err);
        REQUIRE(fixed.exit_code == 0);
        const CommandResult good = scratch.pgbridge({"check-config"});
        INFO(good.out << good.err);
        CHECK(good.exit_code == 0);
        CHECK(good.out.find("field_priority columns checked against the tables of side a") !=
              std::string::npos);
        rewrite_config(scratch, "email = \"b\"", "emial = \"b\"");
        const CommandResult typo = scratch.pgbridge({"check-config"});
        INFO(typo.out << typo.err);
        CHECK(typo.exit_code != 0);
        CHECK(typo.err.find("field_priority names column 'emial', which no synced table has") !=
              std::string::npos);
    }

    TEST_CASE(
        "a TRUNCATE never cascades on the target: a table the target does not sync keeps "
        "its rows") {
        // A key that refuses the deletes, and one whose ON DELETE would change the table
        // that refers (held before any delete: the reason names the table).
        std::string on_delete;
        SUBCASE("no action") {}
        SUBCASE("on delete cascade") {
            on_delete = " ON DELETE CASCADE";
        }
        SUBCASE("on delete set null") {
            on_delete = " ON DELETE SET NULL";
        }
        BridgeRun run("");
        run.scratch.admin(1).exec(
            "CREATE TABLE public.note_refs (id int PRIMARY KEY,"
            "                               note_id bigint REFERENCES public.notes (id)" +
            on_delete + ")");
        run.start();
        insert_notes(run.scratch, 0, 1, 3);
        REQUIRE(eventually([&] { return notes_arrived(run.scratch, 1, 1, 3); },
                           std::chrono::seconds(30)));
        auto b = run.scratch.admin(1);
        b.exec("INSERT INTO public.note_refs VALUES (1, 1)");
        run.scratch.admin(0).exec("TRUNCATE public.notes");
        // Refused on b (note_refs references notes): dead-lettered after its retries, with
        // the reason, and status says so.
        CHECK(eventually(
            [&] { return count_of(b, "SELECT count(*) FROM pgbridge.dead_letters") == 1; },
            std::chrono::seconds(60)));
        CHECK(count_of(b, "SELECT count(*) FROM public.note_refs WHERE note_id = 1") == 1);
        CHECK(count_of(b, "SELECT count(*) FROM public.notes") == 3);
        if (!on_delete.empty()) {
            CHECK(rows_of(run.scratch, 1, "SELECT reason FROM pgbridge.dead_letters")
                      .find("referenced_by=note_refs") != std::string::npos);
        }
        CHECK(run.scratch.pgbridge({"status"}).exit_code == 1);
        CHECK(run.daemon->running());
        run.stop();
    }

    TEST_CASE(
        "dead letters: listed, shown, replayed once the cause is fixed, discarded; the "
        "broker's copies go with them") {
        BridgeRun run("");
        auto b = run.scratch.admin(1);
        b.exec("ALTER TABLE public.notes ADD CONSTRAINT short_body CHECK (length(body) < 12)");
        run.start();
        insert_notes(run.scratch, 0, 1, 1);  // "note 1": fits
        run.scratch.admin(0).exec(
            "INSERT INTO public.notes VALUES (2, 'a body too long for b', true)");
        run.scratch.admin(0).exec(
            "INSERT INTO public.notes VALUES (3, 'another long body', false)");
        const auto dead_queue = names::dead_letter_queue(run.scratch.name(), "b");
        REQUIRE(eventually(
            [&] { return count_of(b, "SELECT count(*) FROM pgbridge.dead_letters") == 2; },
            std::chrono::seconds(60)));
        REQUIRE(eventually([&] { return run.queued(dead_queue) == 2; }, std::chrono::seconds(30)));

        auto [code, listed] = run.pgbridge_json("dead-letters", {"list"});
        CHECK(code == 0);
        REQUIRE(listed.size() == 2);
        const std::string second = listed[1]["id"];  // newest first: key 2 was first
        const std::string third = listed[0]["id"];
        CHECK(second.starts_with("b:"));
        CHECK(listed[1]["table"] == "public.notes");
        CHECK(listed[1]["key"].dump().find('2') != std::string::npos);
        CHECK(listed[1]["status"] == "new");
        auto [shown_code, shown] = run.pgbridge_json("dead-letters", {"show", second, "--payload"});
        CHECK(shown_code == 0);
        CHECK(shown["payload"].get<std::string>().find("a body too long for b") !=
              std::string::npos);

        // The cause fixed, the first replayed: applied by the rules, marked, out of the queue.
        b.exec("ALTER TABLE public.notes DROP CONSTRAINT short_body");
        CommandResult r = run.scratch.pgbridge({"dead-letters", "replay", "--id", second});
        INFO(r.out << r.err);
        CHECK(r.exit_code == 0);
        CHECK(eventually([&] { return notes_arrived(run.scratch, 1, 2, 1); },
                         std::chrono::seconds(30)));
        CHECK(count_of(b, "SELECT count(*) FROM pgbridge.dead_letters WHERE status = 'replayed'") ==
              1);
        CHECK(run.queued(dead_queue) == 1);

        // The other set aside: applied nowhere.
        r = run.scratch.pgbridge({"dead-letters", "discard", "--all"});
        INFO(r.out << r.err);
        CHECK(r.exit_code == 0);
        CHECK(count_of(b, "SELECT count(*) FROM pgbridge.dead_letters WHERE status = 'new'") == 0);
        CHECK(run.queued(dead_queue) == 0);
        CHECK(count_of(b, "SELECT count(*) FROM public.notes WHERE id = 3") == 0);
        r = run.scratch.pgbridge({"dead-letters", "list"});
        CHECK(r.out.find("no new dead letters") != std::string::npos);
        // Handled: nothing left for status to report (side a's row 3 is the DBA's choice).
        CHECK(eventually([&] {
            const auto s = run.scratch.pgbridge({"status"});
            return s.out.find("dead letters in") == std::string::npos &&
                   s.out.find("dead-letter queue") == std::string::npos;
        }));
        CHECK(run.scratch.pgbridge({"dead-letters", "replay", "--id", third}).exit_code == 2);
        run.stop();
    }

    TEST_CASE(
        "columns added and dropped on a running bridge, in either order: changes wait for the "
        "column, nothing is dead-lettered, no restart") {
        BridgeRun run("");
        run.start();
        insert_notes(run.scratch, 0, 1, 5);
        REQUIRE(eventually([&] { return notes_arrived(run.scratch, 1, 1, 5); },
                           std::chrono::seconds(30)));
        auto a = run.scratch.admin(0);
        auto b = run.scratch.admin(1);

        // On the source first: its changes wait until the target has the column.
        a.exec("ALTER TABLE public.notes ADD COLUMN tag text");
        a.exec(
            "INSERT INTO public.notes SELECT g, 'tagged ' || g, true, 'a' || g"
            "  FROM generate_series(6, 10) g");
        a.exec("UPDATE public.notes SET tag = 'set on a' WHERE id = 1");
        CommandResult waiting;
        CHECK(eventually(
            [&] {
                waiting = run.scratch.pgbridge({"status"});
                return waiting.out.find("waits since") != std::string::npos;
            },
            std::chrono::seconds(30)));
        INFO(waiting.out);
        CHECK(waiting.exit_code == 1);
        CHECK(waiting.out.find("column tag of public.notes") != std::string::npos);
        CHECK_FALSE(notes_arrived(run.scratch, 1, 6, 5));
        b.exec("ALTER TABLE public.notes ADD COLUMN tag text");
        CHECK(eventually(
            [&] {
                return notes_columns(run.scratch, 1, "body, tag") ==
                       notes_columns(run.scratch, 0, "body, tag");
            },
            std::chrono::seconds(30)));
        CHECK(rows_of(run.scratch, 1, "SELECT tag FROM public.notes WHERE id = 1") == "set on a");

        // On the target first: the source's changes go on; the target's own wait for the
        // source to have the column.
        b.exec("ALTER TABLE public.notes ADD COLUMN score int");
        a.exec("UPDATE public.notes SET body = 'a after b added score' WHERE id = 2");
        b.exec("UPDATE public.notes SET score = 7 WHERE id = 3");
        CHECK(eventually(
            [&] {
                return rows_of(run.scratch, 1, "SELECT body FROM public.notes WHERE id = 2") ==
                       "a after b added score";
            },
            std::chrono::seconds(30)));
        a.exec("ALTER TABLE public.notes ADD COLUMN score int");
        CHECK(eventually(
            [&] {
                return rows_of(run.scratch, 0, "SELECT score FROM public.notes WHERE id = 3") ==
                       "7";
            },
            std::chrono::seconds(30)));

        // A type widened on both sides, the receiving side first: the statements prepared
        // for the old type are made again, nothing waits or fails.
        b.exec("ALTER TABLE public.notes ALTER COLUMN score TYPE bigint");
        a.exec("ALTER TABLE public.notes ALTER COLUMN score TYPE bigint");
        a.exec("UPDATE public.notes SET score = 5000000000 WHERE id = 3");
        CHECK(eventually(
            [&] {
                return rows_of(run.scratch, 1, "SELECT score FROM public.notes WHERE id = 3") ==
                       "5000000000";
            },
            std::chrono::seconds(30)));

        // Dropped on one side, then on the other: what the second side wrote in between
        // waits, then goes without the column neither side has any more.
        a.exec("ALTER TABLE public.notes DROP COLUMN tag");
        insert_notes(run.scratch, 0, 11, 3);
        CHECK(eventually([&] { return notes_arrived(run.scratch, 1, 11, 3); },
                         std::chrono::seconds(30)));
        b.exec(
            "UPDATE public.notes SET tag = 'b wrote tag', body = 'b before its drop' WHERE id = 4");
        CHECK(eventually(
            [&] {
                return run.scratch.pgbridge({"status"}).out.find("waits since") !=
                       std::string::npos;
            },
            std::chrono::seconds(30)));
        b.exec("ALTER TABLE public.notes DROP COLUMN tag");
        CHECK(eventually(
            [&] {
                return notes_columns(run.scratch, 0, "body, flag, score") ==
                       notes_columns(run.scratch, 1, "body, flag, score");
            },
            std::chrono::seconds(30)));
        CHECK(rows_of(run.scratch, 0, "SELECT body FROM public.notes WHERE id = 4") ==
              "b before its drop");
        CHECK(eventually([&] { return run.scratch.pgbridge({"status"}).exit_code == 0; },
                         std::chrono::seconds(60)));
        CHECK(dead_letters_none(run.scratch));
        CHECK(run.daemon->output_contains("waiting for it"));
        CHECK(run.daemon->output_contains("neither side has any more"));
        const auto [code, report] = run.pgbridge_json("verify");
        CHECK(code == 0);
        run.stop();
    }

    TEST_CASE("a partitioned table configured by its root syncs both ways, partitioned or not") {
        // Side a partitions by region (one more partition attached while running); side b does
        // not.
        ScratchBridge scratch("parts", kPartitionedEvents, kPlainEvents,
                              "[[tables]]\nname = \"public.events\"\n");
        const CommandResult setup = scratch.pgbridge(setup_args(scratch));
        INFO(setup.out << setup.err);
        REQUIRE(setup.exit_code == 0);
        CHECK(setup.out.find("partition") != std::string::npos);
        auto daemon = start_run(scratch, scratch.dir() + "/run.log");
        auto a = scratch.admin(0);
        auto b = scratch.admin(1);
        a.exec(
            "INSERT INTO public.events SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END,"
            " 'from a ' || g FROM generate_series(1, 20) g");
        b.exec(
            "INSERT INTO public.events SELECT g, 'eu', 'from b ' || g"
            "  FROM generate_series(101, 110) g");
        a.exec("UPDATE public.events SET body = 'changed on a' WHERE id = 2 AND region = 'eu'");
        // Moves a row to another partition: published as a delete and an insert.
        a.exec("UPDATE public.events SET region = 'us' WHERE id = 4");
        REQUIRE(eventually(
            [&] {
                return rows_of(scratch, 1, "SELECT count(*) FROM public.events WHERE id <= 20") ==
                       "20";
            },
            std::chrono::seconds(30)));
        b.exec("UPDATE public.events SET body = 'changed on b' WHERE id = 6");
        b.exec("DELETE FROM public.events WHERE id = 8");
        const std::string sql =
            "SELECT coalesce(string_agg(id || ':' || region || ':' || body, ',' ORDER BY id),"
            " '') FROM public.events";
        CHECK(eventually([&] { return rows_of(scratch, 0, sql) == rows_of(scratch, 1, sql); },
                         std::chrono::seconds(30)));
        INFO(rows_of(scratch, 0, sql));
        CHECK(rows_of(scratch, 0, "SELECT count(*) FROM public.events") == "29");
        CHECK(rows_of(scratch, 0, "SELECT body FROM public.events WHERE id = 6") == "changed on b");
        CHECK(rows_of(scratch, 1, "SELECT region FROM public.events WHERE id = 4") == "us");
        // b's rows went into a's partitions; the versions of a's writes are kept under the
        // table's own name, so the conflict rules see them.
        CHECK(rows_of(scratch, 0, "SELECT count(*) FROM public.events_eu WHERE id > 100") == "10");
        CHECK(rows_of(scratch, 0,
                      "SELECT count(*) FROM pgbridge.row_versions WHERE table_name <> "
                      "'public.events'") == "0");
        // A partition attached while running: its rows sync at once (published through the
        // table's root); setup run again gives it the replica identity the others have.
        a.exec(
            "CREATE TABLE public.events_asia PARTITION OF public.events FOR VALUES IN "
            "('asia')");
        a.exec("INSERT INTO public.events VALUES (200, 'asia', 'new partition')");
        CHECK(eventually(
            [&] {
                return rows_of(scratch, 1,
                               "SELECT count(*) FROM public.events WHERE region = 'asia'") == "1";
            },
            std::chrono::seconds(30)));
        const CommandResult again = scratch.pgbridge(setup_args(scratch));
        INFO(again.out << again.err);
        CHECK(again.exit_code == 0);
        CHECK(again.out.find("partition events_asia of public.events  changed") !=
              std::string::npos);
        CHECK(dead_letters_none(scratch));
        const CommandResult verify = scratch.pgbridge({"verify"});
        INFO(verify.out << verify.err);
        CHECK(verify.exit_code == 0);
        stop_run(*daemon);
    }

    TEST_CASE(
        "a TRUNCATE of a partitioned table configured by its root empties it on the other "
        "side, both ways") {
        // Side a partitions by region; side b does not.
        ScratchBridge scratch("partstrunc", kPartitionedEvents, kPlainEvents,
                              "[[tables]]\nname = \"public.events\"\n");
        const CommandResult setup = scratch.pgbridge(setup_args(scratch));
        INFO(setup.out << setup.err);
        REQUIRE(setup.exit_code == 0);
        auto daemon = start_run(scratch, scratch.dir() + "/run.log");
        auto a = scratch.admin(0);
        auto b = scratch.admin(1);
        const std::string count = "SELECT count(*) FROM public.events";
        a.exec(
            "INSERT INTO public.events SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END,"
            " 'from a' FROM generate_series(1, 20) g");
        b.exec(
            "INSERT INTO public.events SELECT g, 'eu', 'from b' FROM generate_series(101, 105) g");
        REQUIRE(eventually(
            [&] {
                return rows_of(scratch, 0, count) == "25" && rows_of(scratch, 1, count) == "25";
            },
            std::chrono::seconds(30)));

        // The root on a: its partitions' rows go on b, b's own rows from before with them.
        a.exec("TRUNCATE public.events");
        CHECK(eventually([&] { return rows_of(scratch, 1, count) == "0"; },
                         std::chrono::seconds(30)));

        // The plain table on b: a's partitions are emptied.
        b.exec(
            "INSERT INTO public.events SELECT g, 'us', 'from b' FROM generate_series(200, 204) g");
        REQUIRE(eventually([&] { return rows_of(scratch, 0, count) == "5"; },
                           std::chrono::seconds(30)));
        b.exec("TRUNCATE public.events");
        CHECK(eventually([&] { return rows_of(scratch, 0, count) == "0"; },
                         std::chrono::seconds(30)));
        CHECK(rows_of(scratch, 1, count) == "0");
        CHECK(dead_letters_none(scratch));
        stop_run(*daemon);
    }

    TEST_CASE(
        "a TRUNCATE is resolved like deletes: what the other side wrote after it is kept on "
        "both sides, what it wrote before goes") {
        BridgeRun run("");
        run.start();
        insert_notes(run.scratch, 0, 1, 10);
        REQUIRE(eventually([&] { return notes_arrived(run.scratch, 1, 1, 10); },
                           std::chrono::seconds(30)));
        run.stop();
        // Concurrent, with the bridge stopped: b writes before and after a truncates.
        auto a = run.scratch.admin(0);
        auto b = run.scratch.admin(1);
        b.exec("UPDATE public.notes SET body = 'b before the truncate' WHERE id = 3");
        a.exec("TRUNCATE public.notes");
        b.exec(
            "INSERT INTO public.notes SELECT g, 'b after ' || g, true"
            "  FROM generate_series(100, 104) g");
        b.exec("UPDATE public.notes SET body = 'b after the truncate' WHERE id = 5");
        run.start();
        const std::string ids =
            "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM public.notes";
        CHECK(eventually(
            [&] {
                return same_notes(run.scratch) &&
                       rows_of(run.scratch, 0, ids) == "5,100,101,102,103,104";
            },
            std::chrono::seconds(30)));
        INFO(rows_of(run.scratch, 0, ids) << " / " << rows_of(run.scratch, 1, ids));
        CHECK(rows_of(run.scratch, 0, "SELECT body FROM public.notes WHERE id = 5") ==
              "b after the truncate");
        CHECK(dead_letters_none(run.scratch));
        const auto [code, report] = run.pgbridge_json("verify");
        CHECK(code == 0);
        run.stop();
    }

    TEST_CASE(
        "where: only the rows of a table's row filter sync, in the copy, the stream and "
        "verify") {
        BridgeRun run("", [](ScratchBridge& scratch) {
            rewrite_config(scratch, "name = \"public.notes\"",
                           "name = \"public.notes\"\nwhere = \"flag\"");
            // Before setup: the initial copy takes the filter's rows only.
            scratch.admin(0).exec(
                "INSERT INTO public.notes SELECT g, 'before ' || g, g % 2 = 1"
                "  FROM generate_series(1, 4) g");
        });
        const CommandResult again = run.scratch.pgbridge(setup_args(run.scratch));
        INFO(again.out << again.err);
        CHECK(again.exit_code == 0);
        CHECK(again.out.find("row filters: public.notes WHERE (flag)") != std::string::npos);
        CHECK(again.out.find("nothing to do") != std::string::npos);
        run.start();
        auto a = run.scratch.admin(0);
        auto b = run.scratch.admin(1);
        a.exec("INSERT INTO public.notes VALUES (10, 'a in', true), (11, 'a out', false)");
        b.exec("INSERT INTO public.notes VALUES (20, 'b out', false), (21, 'b in', true)");
        const std::string ids =
            "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM public.notes";
        REQUIRE(eventually([&] { return rows_of(run.scratch, 1, ids) == "1,3,10,20,21"; },
                           std::chrono::seconds(30)));
        CHECK(eventually([&] { return rows_of(run.scratch, 0, ids) == "1,2,3,4,10,11,21"; },
                         std::chrono::seconds(30)));
        // A row leaving the filter is deleted on the other side; one entering it, inserted.
        a.exec("UPDATE public.notes SET flag = false WHERE id = 10");
        a.exec("UPDATE public.notes SET flag = true WHERE id = 2");
        CHECK(eventually([&] { return rows_of(run.scratch, 1, ids) == "1,2,3,20,21"; },
                         std::chrono::seconds(30)));
        CHECK(rows_of(run.scratch, 0, ids) == "1,2,3,4,10,11,21");
        // A TRUNCATE removes on the other side only the rows the filter syncs.
        a.exec("TRUNCATE public.notes");
        CHECK(eventually([&] { return rows_of(run.scratch, 1, ids) == "20"; },
                         std::chrono::seconds(30)));
        CHECK(rows_of(run.scratch, 0, ids) == "");
        CHECK(dead_letters_none(run.scratch));
        const auto [code, report] = run.pgbridge_json("verify");
        CHECK(code == 0);
        run.stop();
    }

    TEST_CASE("a row filter that names its table (notes.flag) works for a TRUNCATE too") {
        // Qualified both ways PostgreSQL allows in a publication's WHERE: by table, and by
        // schema and table.
        BridgeRun run("", [](ScratchBridge& scratch) {
            rewrite_config(
                scratch, "name = \"public.notes\"",
                "name = \"public.notes\"\nwhere = \"notes.flag AND public.notes.id > 0\"");
        });
        run.start();
        auto a = run.scratch.admin(0);
        auto b = run.scratch.admin(1);
        a.exec("INSERT INTO public.notes VALUES (1, 'a in', true), (2, 'a out', false)");
        b.exec("INSERT INTO public.notes VALUES (3, 'b out', false)");
        const std::string ids =
            "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM public.notes";
        REQUIRE(eventually([&] { return rows_of(run.scratch, 1, ids) == "1,3"; },
                           std::chrono::seconds(30)));
        a.exec("TRUNCATE public.notes");
        CHECK(eventually([&] { return rows_of(run.scratch, 1, ids) == "3"; },
                         std::chrono::seconds(30)));
        CHECK(dead_letters_none(run.scratch));
        run.stop();
    }
}

// Keys written on both sides (docs/setup.md): key columns a sequence feeds on both sides.
namespace {

const std::string kSerialSchema = R"(
CREATE TABLE public.orders (id bigserial PRIMARY KEY, item text NOT NULL UNIQUE, side text);
CREATE TABLE public.tickets (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text);
CREATE TABLE public.tags (name text PRIMARY KEY, uses int);
)";

std::string serial_tables(const std::string& orders_extra = "",
                          const std::string& tickets_extra = "") {
    return "[[tables]]\nname = \"public.orders\"\n" + orders_extra +
           "\n[[tables]]\nname = \"public.tickets\"\n" + tickets_extra +
           "\n[[tables]]\nname = \"public.tags\"\n";
}

std::string sequence_state(ScratchBridge& scratch, int side, const std::string& sequence) {
    auto conn = scratch.admin(side);
    return std::string(
        conn.exec("SELECT s.seqincrement || '/' || q.last_value || '/' || q.is_called"
                  "  FROM pg_sequence s, " +
                  sequence + " q WHERE s.seqrelid = '" + sequence + "'::regclass")
            .value(0, 0));
}

bool setup_created_nothing(ScratchBridge& scratch) {
    for (int side = 0; side < 2; ++side) {
        auto conn = scratch.admin(side);
        if (count_of(conn, "SELECT count(*) FROM pg_publication WHERE pubname LIKE 'pgbridge%'") !=
                0 ||
            count_of(conn, "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgbridge'") != 0) {
            return false;
        }
    }
    return bridge_slots(scratch) == 0;
}

std::string rows_of(pg::Connection& conn, const std::string& table, const std::string& columns) {
    return std::string(
        conn.exec(fmt::format("SELECT coalesce(string_agg(concat_ws(':', {}), ',' ORDER BY id), "
                              "'') FROM {}",
                              columns, table))
            .value(0, 0));
}

}  // namespace

TEST_SUITE("operations") {
    TEST_CASE(
        "setup refuses key columns a sequence feeds on both sides, naming table, column and "
        "the ways out, before it creates anything") {
        ScratchBridge scratch("opskeys", kSerialSchema, kSerialSchema, serial_tables());
        const CommandResult r = scratch.pgbridge(setup_args(scratch));
        INFO(r.out << r.err);
        CHECK(r.exit_code != 0);
        CHECK(r.err.find("nothing was changed") != std::string::npos);
        CHECK(r.err.find("table public.orders: key column 'id' takes its values from a "
                         "sequence on both sides (public.orders_id_seq on a, "
                         "public.orders_id_seq on b)") != std::string::npos);
        CHECK(r.err.find("table public.tickets: key column 'id'") != std::string::npos);
        CHECK(r.err.find("--partition-sequences") != std::string::npos);
        CHECK(r.err.find("keys = \"disjoint\"") != std::string::npos);
        CHECK(r.err.find("public.tags") == std::string::npos);  // a text key is no concern
        CHECK(setup_created_nothing(scratch));
        CHECK(sequence_state(scratch, 0, "public.orders_id_seq") == "1/1/false");

        // A dry run with the flag says what it would do, and does nothing.
        std::vector<std::string> dry = setup_args(scratch);
        dry.push_back("--partition-sequences");
        dry.push_back("--dry-run");
        const CommandResult d = scratch.pgbridge(dry);
        INFO(d.out << d.err);
        CHECK(d.exit_code == 0);
        CHECK(d.out.find("would be INCREMENT BY 2 RESTART WITH 1: odd keys of "
                         "public.orders.id") != std::string::npos);
        CHECK(d.out.find("would be INCREMENT BY 2 RESTART WITH 2: even keys of "
                         "public.orders.id") != std::string::npos);
        CHECK(setup_created_nothing(scratch));
        CHECK(sequence_state(scratch, 1, "public.orders_id_seq") == "1/1/false");
    }

    TEST_CASE(
        "setup --partition-sequences: odd keys on a, even on b, above every key in use; a "
        "concurrent burst on both sides arrives whole") {
        ScratchBridge scratch("opspart", kSerialSchema, kSerialSchema, serial_tables());
        // Keys already used: a has rows 1..10, b's sequence has handed out up to 30 (rows
        // since deleted), the tickets sequence of b up to 7.
        scratch.admin(0).exec(
            "INSERT INTO public.orders (item, side) SELECT 'old-' || g, 'a' "
            "FROM generate_series(1, 10) g");
        scratch.admin(1).exec("SELECT setval('public.orders_id_seq', 30)");
        scratch.admin(1).exec("SELECT setval('public.tickets_id_seq', 7)");

        std::vector<std::string> args = setup_args(scratch);
        args.push_back("--partition-sequences");
        CommandResult r = scratch.pgbridge(args);
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(r.out.find("INCREMENT BY 2 RESTART WITH 31: odd keys of public.orders.id") !=
              std::string::npos);
        CHECK(r.out.find("INCREMENT BY 2 RESTART WITH 32: even keys of public.orders.id") !=
              std::string::npos);
        CHECK(r.out.find("INCREMENT BY 2 RESTART WITH 9: odd keys of public.tickets.id") !=
              std::string::npos);
        CHECK(r.out.find("INCREMENT BY 2 RESTART WITH 8: even keys of public.tickets.id") !=
              std::string::npos);
        CHECK(sequence_state(scratch, 0, "public.orders_id_seq") == "2/31/false");
        CHECK(sequence_state(scratch, 1, "public.orders_id_seq") == "2/32/false");

        // Again, with or without the flag: already kept apart, nothing to do.
        r = scratch.pgbridge(args);
        INFO(r.out << r.err);
        CHECK(r.exit_code == 0);
        CHECK(r.out.find("nothing to do") != std::string::npos);
        CHECK(r.out.find("kept apart from b's") != std::string::npos);
        r = scratch.pgbridge(setup_args(scratch));
        CHECK(r.exit_code == 0);
        CHECK(r.out.find("nothing to do") != std::string::npos);
        CHECK(sequence_state(scratch, 0, "public.orders_id_seq") == "2/31/false");

        const auto daemon = start_run(scratch, scratch.dir() + "/run.log");

        // 50 orders and 50 tickets on each side at once, one transaction each, keys from the
        // sequences.
        constexpr int kBurst = 50;
        std::vector<std::thread> writers;
        std::array<std::string, 2> failures;
        for (int side = 0; side < 2; ++side) {
            writers.emplace_back([&, side] {
                try {
                    auto conn = scratch.admin(side);
                    const std::string name = scratch.side_name(side);
                    for (int i = 1; i <= kBurst; ++i) {
                        conn.exec("INSERT INTO public.orders (item, side) VALUES ($1, $2)",
                                  {fmt::format("{}-{}", name, i), name});
                        conn.exec("INSERT INTO public.tickets (title) VALUES ($1)",
                                  {fmt::format("{}-{}", name, i)});
                    }
                } catch (const Error& e) {
                    failures[static_cast<std::size_t>(side)] = e.what();
                }
            });
        }
        for (auto& w : writers) {
            w.join();
        }
        CHECK(failures[0].empty());
        CHECK(failures[1].empty());

        const bool arrived = eventually(
            [&] {
                for (int side = 0; side < 2; ++side) {
                    auto conn = scratch.admin(side);
                    if (count_of(conn, "SELECT count(*) FROM public.orders") != 10 + 2 * kBurst ||
                        count_of(conn, "SELECT count(*) FROM public.tickets") != 2 * kBurst) {
                        return false;
                    }
                }
                return true;
            },
            std::chrono::seconds(60));
        auto a = scratch.admin(0);
        auto b = scratch.admin(1);
        CHECK(arrived);
        CHECK(rows_of(a, "public.orders", "id, item, side") ==
              rows_of(b, "public.orders", "id, item, side"));
        CHECK(rows_of(a, "public.tickets", "id, title") ==
              rows_of(b, "public.tickets", "id, title"));
        // Every row kept the key its side gave it: odd from a, even from b, none replaced.
        CHECK(count_of(a,
                       "SELECT count(*) FROM public.orders WHERE id > 10 AND"
                       " (id % 2 = 1) <> (side = 'a')") == 0);
        CHECK(count_of(a,
                       "SELECT count(*) FROM public.tickets WHERE"
                       " (id % 2 = 1) <> (title LIKE 'a-%')") == 0);
        for (int side = 0; side < 2; ++side) {
            auto conn = scratch.admin(side);
            CHECK(count_of(conn, "SELECT count(*) FROM pgbridge.dead_letters") == 0);
            CHECK(count_of(conn, "SELECT count(*) FROM pgbridge.conflicts") == 0);
        }
        const CommandResult verify = scratch.pgbridge({"verify"});
        INFO(verify.out << verify.err);
        CHECK(verify.exit_code == 0);

        stop_run(*daemon);
    }

    TEST_CASE("a key a sequence feeds on one side only is a warning, not a refusal") {
        const std::string plain_b =
            "CREATE TABLE public.orders (id bigint PRIMARY KEY, item text NOT NULL UNIQUE, "
            "side text);\n"
            "CREATE TABLE public.tickets (id int PRIMARY KEY, title text);\n"
            "CREATE TABLE public.tags (name text PRIMARY KEY, uses int);\n";
        ScratchBridge scratch("opsone", kSerialSchema, plain_b, serial_tables());
        const CommandResult r = scratch.pgbridge(setup_args(scratch));
        INFO(r.out << r.err);
        CHECK(r.exit_code == 0);
        CHECK(r.out.find("key public.orders.id takes its values from this sequence here but "
                         "not on b") != std::string::npos);
        CHECK(sequence_state(scratch, 0, "public.orders_id_seq") == "1/1/false");
    }

    TEST_CASE("keys = \"disjoint\": setup accepts the table and leaves its sequences alone") {
        ScratchBridge scratch("opsdisj", kSerialSchema, kSerialSchema,
                              serial_tables("keys = \"disjoint\"\n", "keys = \"disjoint\"\n"));
        const CommandResult check = scratch.pgbridge({"check-config"});
        INFO(check.out << check.err);
        CHECK(check.exit_code == 0);
        CHECK(check.out.find("public.orders (priority 1; keys disjoint") != std::string::npos);

        const CommandResult r = scratch.pgbridge(setup_args(scratch));
        INFO(r.out << r.err);
        CHECK(r.exit_code == 0);
        CHECK(r.out.find("left as it is: keys = \"disjoint\" for table public.orders") !=
              std::string::npos);
        CHECK(bridge_slots(scratch) == 2);
        for (int side = 0; side < 2; ++side) {
            CHECK(sequence_state(scratch, side, "public.orders_id_seq") == "1/1/false");
            CHECK(sequence_state(scratch, side, "public.tickets_id_seq") == "1/1/false");
        }
    }

    TEST_CASE(
        "exclude_columns: a column left out never reaches the other side, which may not even "
        "have it; the rest syncs and verifies") {
        BridgeRun run("", [](ScratchBridge& scratch) {
            rewrite_config(scratch, "name = \"public.notes\"",
                           "name = \"public.notes\"\nexclude_columns = [\"flag\", \"secret\"]");
            scratch.admin(0).exec("ALTER TABLE public.notes ADD COLUMN secret text");
            // Copied by the initial sync, without the excluded columns too.
            scratch.admin(0).exec("INSERT INTO public.notes VALUES (5, 'copied', true, 's5')");
        });
        run.start();
        auto a = run.scratch.admin(0);
        auto b = run.scratch.admin(1);
        a.exec("INSERT INTO public.notes VALUES (1, 'one', true, 'only on a')");
        b.exec("INSERT INTO public.notes VALUES (2, 'two', false)");
        const std::string rows =
            "SELECT coalesce(string_agg(concat_ws('|', id, body, flag), ',' ORDER BY id), '')"
            "  FROM public.notes";
        CHECK(eventually([&] { return rows_of(run.scratch, 1, rows) == "1|one,2|two|f,5|copied"; },
                         std::chrono::seconds(30)));
        CHECK(
            eventually([&] { return rows_of(run.scratch, 0, rows) == "1|one|t,2|two,5|copied|t"; },
                       std::chrono::seconds(30)));
        // b's write of the excluded column stays on b; its write of body arrives.
        b.exec("UPDATE public.notes SET flag = false, body = 'edited on b' WHERE id = 1");
        CHECK(eventually(
            [&] { return rows_of(run.scratch, 0, rows) == "1|edited on b|t,2|two,5|copied|t"; },
            std::chrono::seconds(30)));
        CHECK(rows_of(run.scratch, 0, "SELECT secret FROM public.notes WHERE id = 1") ==
              "only on a");
        CHECK(dead_letters_none(run.scratch));
        CHECK_FALSE(run.daemon->output_contains("waiting for it"));
        const auto [code, report] = run.pgbridge_json("verify");
        CHECK(code == 0);
        run.stop();
    }

    TEST_CASE("setup refuses exclude_columns naming a key column, or a column neither side has") {
        ScratchBridge scratch("opsexcl", kSchemaA, kSchemaB, tables_toml(""));
        rewrite_config(scratch, "name = \"public.notes\"",
                       "name = \"public.notes\"\nexclude_columns = [\"id\", \"flgx\"]");
        const CommandResult r = scratch.pgbridge(setup_args(scratch));
        INFO(r.out << r.err);
        CHECK(r.exit_code != 0);
        CHECK(r.err.find("names column 'id', which is part of its primary key") !=
              std::string::npos);
        CHECK(r.err.find("which neither side has") != std::string::npos);
        CHECK(r.err.find("nothing was changed") != std::string::npos);
        CHECK(bridge_slots(scratch) == 0);
    }
}

TEST_SUITE("operations") {
    TEST_CASE("every command's --help lists the global flags, which parse before or after it") {
        const std::string& binary = TestEnvironment::get().pgbridge_binary;
        for (const std::vector<std::string>& command : {std::vector<std::string>{"lag"},
                                                        {"status"},
                                                        {"slots"},
                                                        {"conflicts", "list"},
                                                        {"dead-letters", "replay"}}) {
            std::vector<std::string> argv{binary};
            argv.insert(argv.end(), command.begin(), command.end());
            argv.push_back("--help");
            const CommandResult help = run_command(argv);
            INFO(help.out << help.err);
            CHECK(help.exit_code == 0);
            CHECK(help.out.find("--config PATH") != std::string::npos);
            CHECK(help.out.find("--json") != std::string::npos);
            CHECK(help.out.find("-v,--verbose") != std::string::npos);
        }

        ScratchBridge scratch("opsflags", kSchemaA, kSchemaB, tables_toml(""));
        const CommandResult before = run_command(
            {binary, "--config", scratch.config_path(), "--json", "check-config", "--offline"});
        const CommandResult after = run_command(
            {binary, "check-config", "--offline", "--json", "--config", scratch.config_path()});
        INFO(before.out << before.err << after.out << after.err);
        CHECK(before.exit_code == 0);
        CHECK(after.exit_code == 0);
        CHECK(nlohmann::json::parse(before.out) == nlohmann::json::parse(after.out));
    }

    TEST_CASE("teardown --dry-run lists what it would drop without --yes, and drops nothing") {
        ScratchBridge scratch("opsdry", kSchemaA, kSchemaB, tables_toml(""));
        scratch.setup();
        REQUIRE(bridge_slots(scratch) == 2);
        std::vector<std::string> dry{"teardown", "--dry-run"};
        const auto flags = scratch.admin_flags();
        dry.insert(dry.end(), flags.begin(), flags.end());
        const CommandResult listed = scratch.pgbridge(dry);
        INFO(listed.out << listed.err);
        CHECK(listed.exit_code == 0);
        CHECK(listed.out.find("would be dropped") != std::string::npos);
        CHECK(bridge_slots(scratch) == 2);

        const CommandResult unconfirmed = scratch.pgbridge({"teardown"});
        CHECK(unconfirmed.exit_code == 2);
        CHECK(unconfirmed.err.find("--yes") != std::string::npos);
        CHECK(bridge_slots(scratch) == 2);
    }
}
