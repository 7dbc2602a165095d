// pgbridge setup / teardown / check-config against the real clusters of scripts/testenv.

#include <fstream>
#include <iterator>
#include <map>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <libpq-fe.h>
#include <nlohmann/json.hpp>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/error.hpp>

#include "../support/test_environment.hpp"

using namespace pgbridge;
using namespace pgbridge::test;

namespace {

// Side a calls the second table public.customers, side b hr.candidates with one column renamed.
const std::string kSchemaA = R"(
CREATE TABLE public.talents (id bigint PRIMARY KEY, name text, email text, status text);
CREATE TABLE public.customers (id bigint PRIMARY KEY, email text, phone text);
)";
const std::string kSchemaB = R"(
CREATE SCHEMA hr;
CREATE TABLE public.talents (id bigint PRIMARY KEY, name text, email text, status text);
CREATE TABLE hr.candidates (id bigint PRIMARY KEY, contact_email text, phone text);
)";
const std::string kTables = R"(
[[tables]]
name = "public.talents"
priority = 8

[[tables]]
name = "public.customers"
[tables.sides.b]
name = "hr.candidates"
columns = { email = "contact_email" }
)";

std::string scalar(pg::Connection& conn, const std::string& sql, const pg::Params& params = {}) {
    auto result = conn.exec(sql, params);
    REQUIRE(result.rows() == 1);
    return std::string(result.value(0, 0));
}

// Whether the server refuses sql for lack of a privilege.
bool denied(pg::Connection& conn, const std::string& sql) {
    try {
        conn.exec(sql);
        return false;
    } catch (const Error& e) {
        INFO(e.what());
        CHECK(e.context_value("sqlstate") == "42501");
        return true;
    }
}

// The steps of a JSON report for one side and object.
std::vector<nlohmann::json> steps_of(const nlohmann::json& report, const std::string& side,
                                     const std::string& object) {
    std::vector<nlohmann::json> out;
    for (const auto& step : report["steps"]) {
        if (step["side"] == side && step["object"] == object) {
            out.push_back(step);
        }
    }
    return out;
}

nlohmann::json parse_json(const CommandResult& r) {
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    return nlohmann::json::parse(r.out);
}

int database_changes(const nlohmann::json& report) {
    int changes = 0;
    for (const auto& step : report["steps"]) {
        if (step["side"] != "rabbitmq" && step["outcome"] == "changed") {
            ++changes;
        }
    }
    return changes;
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
    args.insert(args.end(), more.begin(), more.end());
    return args;
}

// Every object setup creates on one side, in a form two runs can compare.
std::string objects_on(const ScratchBridge& bridge, int side) {
    auto conn = bridge.admin(side);
    const std::string other = bridge.side_name(1 - side);
    return scalar(conn, R"(
SELECT concat_ws(' | ',
  (SELECT string_agg(format('%s:%s', p.pubname, pr.prrelid::regclass), ',' ORDER BY pr.prrelid)
     FROM pg_publication p JOIN pg_publication_rel pr ON pr.prpubid = p.oid
    WHERE p.pubname = 'pgbridge_' || $1),
  (SELECT string_agg(slot_name || ':' || plugin, ',') FROM pg_replication_slots
    WHERE slot_name = 'pgbridge_' || $1 || '_' || $2),
  (SELECT string_agg(roname, ',') FROM pg_replication_origin
    WHERE roname = 'pgbridge_' || $1 || '_from_' || $3),
  (SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class c
     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = 'pgbridge' AND relkind = 'r'),
  (SELECT string_agg(c.oid::regclass::text || '=' || relreplident::text, ',' ORDER BY c.oid)
     FROM pg_class c
     JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE relkind = 'r' AND nspname IN ('public', 'hr')))
)",
                  {bridge.name(), bridge.side_name(side), other});
}

}  // namespace

TEST_SUITE("setup") {
    TEST_CASE(
        "setup creates the bridge's objects (docs/setup.md), a second run changes nothing, "
        "teardown removes them") {
        ScratchBridge bridge("setup", kSchemaA, kSchemaB, kTables);
        const std::string& name = bridge.name();

        auto first = bridge.pgbridge(with({"setup"}, bridge.admin_flags()));
        INFO("stdout: " << first.out << "\nstderr: " << first.err);
        REQUIRE(first.exit_code == 0);
        CHECK(first.out.find("changes made") != std::string::npos);
        CHECK(first.out.find(bridge.password()) == std::string::npos);

        for (int side = 0; side < 2; ++side) {
            CAPTURE(side);
            auto conn = bridge.admin(side);
            const std::string me = bridge.side_name(side);
            const std::string other = bridge.side_name(1 - side);
            CHECK(scalar(conn, "SELECT plugin FROM pg_replication_slots WHERE slot_name = $1",
                         {fmt::format("pgbridge_{}_{}", name, me)}) == "pgoutput");
            CHECK(scalar(conn, "SELECT count(*) FROM pg_replication_origin WHERE roname = $1",
                         {fmt::format("pgbridge_{}_from_{}", name, other)}) == "1");
            CHECK(
                scalar(conn,
                       "SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY tablename) "
                       "FROM pg_publication_tables WHERE pubname = $1",
                       {"pgbridge_" + name}) ==
                (side == 0 ? "public.customers,public.talents" : "hr.candidates,public.talents"));
            CHECK(scalar(conn,
                         "SELECT string_agg(relreplident::text, '') FROM pg_class "
                         "WHERE oid IN ('public.talents'::regclass, $1::regclass)",
                         {side == 0 ? "public.customers" : "hr.candidates"}) == "ff");
            CHECK(scalar(conn,
                         "SELECT count(*) FROM pg_tables WHERE schemaname = 'pgbridge' "
                         "AND tablename IN ('conflicts', 'dead_letters')") == "2");
            CHECK(scalar(conn,
                         "SELECT rolsuper::text || rolreplication::text || "
                         "rolcanlogin::text FROM pg_roles WHERE rolname = $1",
                         {bridge.role()}) == "falsetruetrue");
        }

        // The second run is a no-op and says so.
        auto second = parse_json(bridge.pgbridge(with({"--json", "setup"}, bridge.admin_flags())));
        CHECK(second["changes"] == 0);
        const std::string before = objects_on(bridge, 0);
        CHECK(bridge.pgbridge(with({"setup"}, bridge.admin_flags())).out.find("nothing to do") !=
              std::string::npos);
        CHECK(objects_on(bridge, 0) == before);

        // The runtime role may drop its slot but not the origins: teardown says what to do.
        auto as_runtime = bridge.pgbridge({"teardown", "--yes"});
        CHECK(as_runtime.exit_code == 1);
        CHECK(as_runtime.err.find("--admin-conninfo") != std::string::npos);

        auto down = bridge.pgbridge(with({"teardown", "--yes"}, bridge.admin_flags()));
        INFO("teardown: " << down.out << down.err);
        REQUIRE(down.exit_code == 0);
        for (int side = 0; side < 2; ++side) {
            auto conn = bridge.admin(side);
            CHECK(scalar(conn, "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1",
                         {"pgbridge_" + name + "_%"}) == "0");
            CHECK(scalar(conn, "SELECT count(*) FROM pg_replication_origin WHERE roname LIKE $1",
                         {"pgbridge_" + name + "_%"}) == "0");
            CHECK(scalar(conn, "SELECT count(*) FROM pg_publication WHERE pubname = $1",
                         {"pgbridge_" + name}) == "0");
            CHECK(scalar(conn, "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgbridge'") ==
                  "0");
        }
        auto again = parse_json(
            bridge.pgbridge(with({"--json", "teardown", "--yes"}, bridge.admin_flags())));
        CHECK(again["changes"] == 0);
    }

    TEST_CASE("the least-privileged role can stream from its slot and apply under its origin") {
        ScratchBridge bridge("grants", kSchemaA, kSchemaB, kTables);
        auto setup = bridge.pgbridge(with({"setup"}, bridge.admin_flags()));
        INFO(setup.out << setup.err);
        REQUIRE(setup.exit_code == 0);

        // Capture: START_REPLICATION on its slot over a replication connection.
        auto replication = bridge.runtime(0, /*replication=*/true);
        auto identify = replication.exec("IDENTIFY_SYSTEM");
        CHECK(identify.rows() == 1);
        auto stream = replication.exec(
            fmt::format("START_REPLICATION SLOT pgbridge_{}_a LOGICAL 0/0 (proto_version '1', "
                        "publication_names 'pgbridge_{}')",
                        bridge.name(), bridge.name()));
        CHECK(PQresultStatus(PQgetResult(replication.native())) == PGRES_COPY_BOTH);

        // Apply: bind the session to the origin and write a synced table and the conflict log.
        auto apply = bridge.runtime(1);
        CHECK(scalar(apply, "SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user") ==
              "false");
        apply.exec("SELECT pg_replication_origin_session_setup($1)",
                   {fmt::format("pgbridge_{}_from_a", bridge.name())});
        apply.transaction([&] {
            apply.exec("SELECT pg_replication_origin_xact_setup('0/1234', now())");
            apply.exec("INSERT INTO hr.candidates (id, contact_email) VALUES (1, 'x@example.org')");
            apply.exec("UPDATE hr.candidates SET phone = '1' WHERE id = 1");
            apply.exec(
                "INSERT INTO pgbridge.conflicts (bridge, table_name, key, kind, local_side, "
                "remote_side, strategy, status) VALUES ($1, 'hr.candidates', '{\"id\": 1}', "
                "'update_update', 'b', 'a', 'manual', 'pending')",
                {bridge.name()});
        });
        auto admin = bridge.admin(1);
        CHECK(scalar(admin,
                     "SELECT remote_lsn FROM pg_replication_origin_status "
                     "JOIN pg_replication_origin ON roident = local_id WHERE roname = $1",
                     {fmt::format("pgbridge_{}_from_a", bridge.name())}) == "0/1234");

        // ... and nothing beyond its grants: it cannot rewrite what pgbridge's history and
        // schema say, nor truncate a synced table, nor manage origins.
        CHECK_THROWS_AS(apply.exec("CREATE TABLE public.not_allowed (id int)"), Error);
        for (const std::string sql : {
                 "UPDATE pgbridge.schema_version SET version = version",
                 "DELETE FROM pgbridge.schema_version",
                 "INSERT INTO pgbridge.schema_version (version) VALUES (99)",
                 "DELETE FROM pgbridge.conflicts",
                 "DELETE FROM pgbridge.dead_letters",
                 "DELETE FROM pgbridge.row_versions",
                 "DELETE FROM pgbridge.sync_state",
                 "DELETE FROM pgbridge.slot_state",
                 "UPDATE pgbridge.applied_transactions SET parts = parts",
                 "DELETE FROM pgbridge.applied_transactions",
                 "INSERT INTO pgbridge.truncations (table_name, xid) VALUES ('x', '1')",
                 "DELETE FROM pgbridge.truncations",
                 "TRUNCATE pgbridge.transaction_parts",
                 "TRUNCATE hr.candidates",
                 "SELECT pg_replication_origin_create('pgbridge_not_allowed')",
                 "SELECT pg_replication_origin_session_reset()",
                 "SELECT count(*) FROM pg_replication_origin_status",
             }) {
            CAPTURE(sql);
            CHECK(denied(apply, sql));
        }
        // What it needs of the metadata schema besides the above.
        CHECK_FALSE(denied(apply, "SELECT max(version) FROM pgbridge.schema_version"));
        CHECK_FALSE(denied(apply, "SELECT count(*) FROM pgbridge.truncations"));
        CHECK_FALSE(denied(apply, "DELETE FROM pgbridge.transaction_parts WHERE false"));
        CHECK_FALSE(denied(apply, "UPDATE pgbridge.conflicts SET note = note WHERE false"));
        CHECK_FALSE(denied(apply, "UPDATE pgbridge.dead_letters SET status = status WHERE false"));

        // Teardown refuses while the slot streams, and drops nothing.
        auto refused = bridge.pgbridge({"teardown", "--yes"});
        CHECK(refused.exit_code == 1);
        CHECK(refused.err.find("in use") != std::string::npos);
        auto side_a = bridge.admin(0);
        CHECK(scalar(side_a, "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1",
                     {"pgbridge_" + bridge.name() + "_%"}) == "1");
    }

    TEST_CASE(
        "setup takes back what an older setup granted on schema pgbridge and reports what else "
        "the runtime role holds") {
        ScratchBridge bridge("surplus", kSchemaA, kSchemaB, kTables);
        bridge.setup();
        const std::string role = "\"" + bridge.role() + "\"";
        auto admin = bridge.admin(0);
        auto has = [&](const std::string& object, const std::string& privilege) {
            return scalar(admin, "SELECT has_table_privilege($1, $2, $3)::text",
                          {bridge.role(), object, privilege});
        };
        REQUIRE(has("pgbridge.schema_version", "UPDATE") == "false");
        REQUIRE(has("public.talents", "TRUNCATE") == "false");
        // What an older setup (and 02_role.sql) granted, and what a DBA may have added.
        admin.exec("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA pgbridge TO " + role);
        admin.exec("GRANT DELETE ON pgbridge.schema_version TO " + role);
        admin.exec("GRANT TRUNCATE ON public.talents TO " + role);
        admin.exec("GRANT EXECUTE ON FUNCTION pg_replication_origin_session_reset() TO " + role);
        admin.exec("GRANT SELECT ON pg_replication_origin_status TO " + role);
        admin.exec("ALTER ROLE " + role + " CREATEDB");
        admin.exec("GRANT pg_read_all_data TO " + role);

        auto report = parse_json(bridge.pgbridge(with({"--json", "setup"}, bridge.admin_flags())));
        INFO(report.dump(2));
        const auto grants = steps_of(report, "a", "role " + bridge.role() + " grants");
        REQUIRE(grants.size() == 1);
        CHECK(grants[0]["outcome"] == "changed");
        const std::string detail = grants[0]["detail"];
        CHECK(detail.find("revoked what pgbridge does not need: ") != std::string::npos);
        CHECK(detail.find("INSERT, UPDATE, DELETE on pgbridge.schema_version") !=
              std::string::npos);
        CHECK(detail.find("INSERT, UPDATE on pgbridge.truncations") != std::string::npos);
        CHECK(detail.find("UPDATE on pgbridge.applied_transactions") != std::string::npos);
        CHECK(detail.find("pg_replication_origin_session_reset()") != std::string::npos);
        CHECK(detail.find("pg_replication_origin_status") != std::string::npos);
        CHECK(detail.find("conflicts") == std::string::npos);

        CHECK(has("pgbridge.schema_version", "SELECT") == "true");
        CHECK(has("pgbridge.schema_version", "UPDATE") == "false");
        CHECK(has("pgbridge.schema_version", "DELETE") == "false");
        CHECK(has("pgbridge.truncations", "INSERT") == "false");
        CHECK(has("pgbridge.conflicts", "UPDATE") == "true");
        CHECK(scalar(admin,
                     "SELECT has_function_privilege($1, "
                     "'pg_replication_origin_session_reset()', 'EXECUTE')::text",
                     {bridge.role()}) == "false");

        // A synced table's surplus is the DBA's to take back: reported, left as it is.
        const auto talents = steps_of(report, "a", "role " + bridge.role() + " on public.talents");
        REQUIRE(talents.size() == 1);
        CHECK(talents[0]["outcome"] == "warning");
        CHECK(talents[0]["detail"].get<std::string>().find("TRUNCATE") != std::string::npos);
        CHECK(has("public.talents", "TRUNCATE") == "true");
        const auto attributes = steps_of(report, "a", "role " + bridge.role());
        bool warned = false;
        for (const auto& step : attributes) {
            const std::string text = step["detail"];
            warned = warned ||
                     (step["outcome"] == "warning" && text.find("CREATEDB") != std::string::npos &&
                      text.find("member of pg_read_all_data") != std::string::npos);
        }
        CHECK(warned);
        CHECK(steps_of(report, "b", "role " + bridge.role() + " on hr.candidates").empty());

        // Taken back once: the next run changes nothing and still warns.
        auto again = parse_json(bridge.pgbridge(with({"--json", "setup"}, bridge.admin_flags())));
        CHECK(again["changes"] == 0);
        CHECK(steps_of(again, "a", "role " + bridge.role() + " on public.talents").size() == 1);
    }

    TEST_CASE("setup refuses a missing table or one without a primary key and changes nothing") {
        ScratchBridge bridge("refuse", kSchemaA + "CREATE TABLE public.nokey (id int, v text);",
                             kSchemaB, kTables + R"(
[[tables]]
name = "public.nokey"
)");
        auto result = bridge.pgbridge(with({"setup"}, bridge.admin_flags()));
        INFO(result.out << result.err);
        CHECK(result.exit_code == 1);
        CHECK(result.err.find("side a: table public.nokey has no primary key") !=
              std::string::npos);
        CHECK(result.err.find("side b: table public.nokey does not exist") != std::string::npos);
        CHECK(result.err.find("nothing was changed") != std::string::npos);
        for (int side = 0; side < 2; ++side) {
            auto conn = bridge.admin(side);
            CHECK(scalar(conn, "SELECT count(*) FROM pg_replication_slots") != "");
            CHECK(scalar(conn, "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1",
                         {"pgbridge_" + bridge.name() + "_%"}) == "0");
            CHECK(scalar(conn, "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgbridge'") ==
                  "0");
            CHECK(scalar(conn, "SELECT count(*) FROM pg_roles WHERE rolname = $1",
                         {bridge.role()}) == "0");
        }
    }

    TEST_CASE("setup refuses columns that do not match through the mapping") {
        ScratchBridge bridge("columns", kSchemaA,
                             "CREATE SCHEMA hr;"
                             "CREATE TABLE public.talents (id bigint PRIMARY KEY, name text, "
                             "  status text, extra int);"
                             "CREATE TABLE hr.candidates (id bigint PRIMARY KEY, email text, "
                             "  contact_email text, phone text);",
                             kTables);
        auto result = bridge.pgbridge(with({"setup"}, bridge.admin_flags()));
        INFO(result.out << result.err);
        CHECK(result.exit_code == 1);
        CHECK(result.err.find("column 'email' exists on a but not on b") != std::string::npos);
        CHECK(result.err.find("column 'extra' exists on b but not on a") != std::string::npos);
        CHECK(result.err.find("'email' and 'contact_email'") != std::string::npos);
    }

    TEST_CASE("dry run reports the work and changes nothing") {
        ScratchBridge bridge("dryrun", kSchemaA, kSchemaB, kTables);
        const std::string before = objects_on(bridge, 0);
        auto report = parse_json(
            bridge.pgbridge(with({"--json", "setup", "--dry-run"}, bridge.admin_flags())));
        CHECK(report["dry_run"] == true);
        CHECK(report["changes"].get<int>() >= 8);
        CHECK(objects_on(bridge, 0) == before);
        auto admin = bridge.admin(0);
        CHECK(scalar(admin, "SELECT count(*) FROM pg_roles WHERE rolname = $1", {bridge.role()}) ==
              "0");
    }

    TEST_CASE(
        "setup over an older pgbridge drops its row trigger: nothing runs for a row written") {
        ScratchBridge bridge("upgrade", kSchemaA, kSchemaB, kTables);
        // What metadata schema 2 left on a synced table (its function's body does not matter).
        auto admin = bridge.admin(0);
        admin.exec("CREATE SCHEMA pgbridge");
        admin.exec(
            "CREATE FUNCTION pgbridge.track_row_versions() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN RAISE EXCEPTION 'the old trigger ran'; END$$");
        admin.exec(
            "CREATE TRIGGER pgbridge_row_versions AFTER INSERT OR UPDATE OR DELETE ON "
            "public.talents FOR EACH ROW EXECUTE FUNCTION pgbridge.track_row_versions('id')");
        auto report = parse_json(bridge.pgbridge(with({"--json", "setup"}, bridge.admin_flags())));
        INFO(report.dump(2));
        bool reported = false;
        for (const auto& step : report["steps"]) {
            reported = reported || step["object"].get<std::string>().find(
                                       "version trigger of an older pgbridge") != std::string::npos;
        }
        CHECK(reported);
        CHECK(scalar(admin,
                     "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                     "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                     "AND NOT t.tgisinternal AND t.tgname <> 'pgbridge_truncations'") == "0");
        CHECK(scalar(admin, "SELECT to_regproc('pgbridge.track_row_versions') IS NULL") == "t");
        admin.exec("INSERT INTO public.talents (id) VALUES (1)");
        admin.exec("UPDATE public.talents SET id = 2 WHERE id = 1");  // a key update works too
    }

    TEST_CASE("setup names every local write of an older pgbridge by its commit time") {
        ScratchBridge bridge("xids", kSchemaA, kSchemaB, kTables);
        bridge.setup();
        auto admin = bridge.admin(0);
        admin.exec("INSERT INTO public.talents (id) VALUES (5)");
        const std::string xid = scalar(admin, "SELECT xmin::text FROM public.talents WHERE id = 5");
        const std::string micros =
            scalar(admin,
                   "SELECT (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000000)::bigint "
                   "FROM public.talents WHERE id = 5");
        // What a pgbridge before metadata schema 3 wrote: local writes named by transaction id
        // (as text or as a number), on a row and on a tombstone.
        admin.exec(fmt::format(
            R"(INSERT INTO pgbridge.row_versions (table_name, key, columns, deleted) VALUES
               ('public.talents', '[5]', '{{"email": {{"w": "l", "x": "{0}", "n": 1, "s": 0}},
                 "name": {{"w": "r", "t": 7, "n": 0, "s": 1}}}}', NULL),
               ('public.talents', '[6]', '{{"": {{"n": 2, "s": 0}}}}',
                '{{"w": "l", "x": {0}}}'))",
            xid));
        admin.exec("DELETE FROM pgbridge.schema_version WHERE version = 4");
        bridge.setup();
        CHECK(scalar(admin,
                     "SELECT columns -> 'email' ->> 't' FROM pgbridge.row_versions "
                     "WHERE key = '[5]'") == micros);
        CHECK(scalar(admin,
                     "SELECT columns -> 'email' ? 'x' FROM pgbridge.row_versions "
                     "WHERE key = '[5]'") == "f");
        CHECK(scalar(admin,
                     "SELECT columns -> 'name' ->> 't' FROM pgbridge.row_versions "
                     "WHERE key = '[5]'") == "7");
        CHECK(scalar(admin,
                     "SELECT deleted ->> 't' FROM pgbridge.row_versions "
                     "WHERE key = '[6]'") == micros);
        CHECK(scalar(admin,
                     "SELECT deleted ? 'x' FROM pgbridge.row_versions "
                     "WHERE key = '[6]'") == "f");
        CHECK(scalar(admin, "SELECT max(version) FROM pgbridge.schema_version") ==
              std::to_string(names::kMetadataSchemaVersion));
    }

    TEST_CASE("the psql scripts in sql/ set up exactly what pgbridge setup would") {
        ScratchBridge bridge("sqlscripts", kSchemaA, kSchemaB, kTables);
        const auto& env = TestEnvironment::get();
        for (int side = 0; side < 2; ++side) {
            const std::string tables =
                side == 0 ? "public.talents,public.customers" : "public.talents,hr.candidates";
            for (const std::string script : {"01_metadata_schema.sql", "02_role.sql",
                                             "03_publication.sql", "04_slot_and_origin.sql"}) {
                auto r = run_command(
                    {"psql", bridge.admin_conninfo(side), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v",
                     "bridge=" + bridge.name(), "-v", "side=" + bridge.side_name(side), "-v",
                     "other_side=" + bridge.side_name(1 - side), "-v", "role=" + bridge.role(),
                     "-v", "tables=" + tables, "-f", env.sql_dir + "/" + script});
                INFO(script << ": " << r.out << r.err);
                REQUIRE(r.exit_code == 0);
            }
            auto admin = bridge.admin(side);
            admin.exec(
                fmt::format("ALTER ROLE \"{}\" PASSWORD '{}'", bridge.role(), bridge.password()));
        }
        auto report = parse_json(bridge.pgbridge(with({"--json", "setup"}, bridge.admin_flags())));
        INFO(report.dump(2));
        // The SQL scripts cover the databases; RabbitMQ objects are pgbridge setup's alone.
        CHECK(database_changes(report) == 0);

        // And 99_teardown.sql removes it all again.
        for (int side = 0; side < 2; ++side) {
            auto r = run_command({"psql", bridge.admin_conninfo(side), "-X", "-q", "-v",
                                  "ON_ERROR_STOP=1", "-v", "bridge=" + bridge.name(), "-v",
                                  "side=" + bridge.side_name(side), "-v",
                                  "other_side=" + bridge.side_name(1 - side), "-f",
                                  env.sql_dir + "/99_teardown.sql"});
            INFO(r.out << r.err);
            REQUIRE(r.exit_code == 0);
        }
        auto down = parse_json(
            bridge.pgbridge(with({"--json", "teardown", "--yes"}, bridge.admin_flags())));
        CHECK(database_changes(down) == 0);
    }

    TEST_CASE("setup without admin rights says what it could not do") {
        ScratchBridge bridge("noadmin", kSchemaA, kSchemaB, kTables);
        auto result = bridge.pgbridge({"setup"});
        // The runtime role does not exist yet, so it cannot even log in.
        CHECK(result.exit_code == 1);
        CHECK(result.err.find("cannot connect") != std::string::npos);
        CHECK(result.err.find(bridge.password()) == std::string::npos);
    }
}

TEST_SUITE("setup") {
    TEST_CASE("pgbridge slots lists the bridge's slots and any other slot holding WAL") {
        ScratchBridge bridge("slots", kSchemaA, kSchemaB, kTables);
        bridge.setup();
        const std::string other = "other_" + bridge.name();
        auto side_a = bridge.admin(0);
        side_a.exec("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", {other});

        auto json = parse_json(bridge.pgbridge({"--json", "slots"}));
        REQUIRE(json["sides"].size() == 2);
        std::map<std::string, nlohmann::json> by_name;
        for (const auto& side : json["sides"]) {
            CHECK(side["reachable"] == true);
            for (const auto& slot : side["slots"]) {
                by_name[slot["slot"].get<std::string>()] = slot;
            }
        }
        const std::string mine = "pgbridge_" + bridge.name() + "_a";
        REQUIRE(by_name.contains(mine));
        CHECK(by_name[mine]["owner"] == "this bridge");
        CHECK(by_name[mine]["active"] == false);
        CHECK(by_name[mine]["plugin"] == "pgoutput");
        CHECK(by_name[mine]["lag_bytes"].get<long long>() >= 0);
        CHECK(by_name[mine]["wal_status"] == "reserved");
        REQUIRE(by_name.contains(other));
        CHECK(by_name[other]["owner"] == "other");
        CHECK(by_name.contains("pgbridge_" + bridge.name() + "_b"));

        auto text = bridge.pgbridge({"slots"});
        CHECK(text.exit_code == 0);
        CHECK(text.out.find(mine) != std::string::npos);
        CHECK(text.out.find("this bridge") != std::string::npos);
        // Sizes in binary units, as lag and status show them (core/byte_size.hpp).
        CHECK(text.out.find(" kB") == std::string::npos);
        CHECK(text.out.find(" MB") == std::string::npos);
        side_a.exec("SELECT pg_drop_replication_slot($1)", {other});

        // A side that cannot be reached: said plainly, the other side still listed, exit 1.
        std::ifstream in(bridge.config_path());
        std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const std::string port = "port=" + TestEnvironment::get().pg_port[1];
        config.replace(config.find(port), port.size(), "port=1");
        const std::string broken = bridge.config_path() + ".broken.toml";
        std::ofstream(broken) << config;
        auto down =
            run_command({TestEnvironment::get().pgbridge_binary, "--config", broken, "slots"});
        CHECK(down.exit_code == 1);
        CHECK(down.err.find("cannot reach side b") != std::string::npos);
        CHECK(down.out.find(mine) != std::string::npos);
    }

    TEST_CASE("check-config prints the resolved rules and never the password") {
        ScratchBridge bridge("checkconfig", kSchemaA, kSchemaB, kTables + R"(
[conflicts]
default_strategy = "manual"
source_priority = ["b"]
[conflicts.field_priority]
email = "b"
"public.customers.phone" = "a"
)");
        auto text = bridge.pgbridge({"check-config"});
        INFO(text.out << text.err);
        REQUIRE(text.exit_code == 0);
        CHECK(text.out.find("column email: b wins") != std::string::npos);
        CHECK(text.out.find("column phone: a wins") != std::string::npos);
        CHECK(text.out.find("on b: hr.candidates; columns email -> contact_email") !=
              std::string::npos);
        CHECK(text.out.find("other columns: local value kept, conflict recorded as pending") !=
              std::string::npos);
        CHECK(text.out.find(bridge.password()) == std::string::npos);

        auto json = parse_json(bridge.pgbridge({"--json", "check-config"}));
        CHECK(json["tables"][1]["conflict_rules"]["columns"]["phone"]["winner"] == "a");
        CHECK(json["conflicts"]["source_priority"] == nlohmann::json({"b", "a"}));
        CHECK(json.dump().find(bridge.password()) == std::string::npos);

        // An invalid file: exit 2, file:line:column on stderr.
        std::ofstream(bridge.config_path(), std::ios::app) << "\n[engine]\nbatch_size = -1\n";
        auto bad = bridge.pgbridge({"check-config"});
        CHECK(bad.exit_code == 2);
        CHECK(bad.err.find(bridge.config_path() + ":") != std::string::npos);
        // Each error says where once: no context repeating the first one's place at the end.
        CHECK(bad.err.find("line=") == std::string::npos);
        CHECK(bad.out.empty());
    }

    TEST_CASE("--version names libpq and rabbitmq-c") {
        auto r = run_command({TestEnvironment::get().pgbridge_binary, "--version"});
        CHECK(r.exit_code == 0);
        CHECK(r.out.find("libpq 15.") != std::string::npos);
        CHECK(r.out.find("rabbitmq-c 0.") != std::string::npos);
    }
}
