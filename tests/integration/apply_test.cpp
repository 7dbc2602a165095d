// Apply against two real PostgreSQL 15 clusters: changes captured on one side are applied on
// the other by the Postgres applier, as the runtime (non-superuser) role; conflicts made by
// writing on both sides before either direction is delivered end the same on both sides and
// are logged; duplicates and reordering change nothing.

#include <map>
#include <set>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <pgbridge/apply/postgres_applier.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/config/conflict_rules.hpp>
#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/key_shard.hpp>
#include <pgbridge/core/stored_versions.hpp>

#include "../support/recording_sink.hpp"
#include "../support/test_environment.hpp"

using namespace pgbridge;
using namespace pgbridge::test;

namespace {

const std::string kSchemaA = R"(
CREATE TABLE public.talents (id bigint PRIMARY KEY, name text, email text, phone text,
                             status text, score numeric(8,2));
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed ""Case"" Table" ("Key Col" int PRIMARY KEY, "Value's" text);
)";
const std::string kSchemaB = R"(
CREATE SCHEMA hr;
CREATE TABLE hr.candidates (id bigint PRIMARY KEY, name text, contact_email text, phone text,
                            status text, score numeric(8,2) CHECK (score IS NULL OR score >= 0));
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed ""Case"" Table" ("Key Col" int PRIMARY KEY, "Value's" text);
)";

std::string tables_toml(const std::string& conflicts) {
    return std::string(kMappedTalentsToml) + R"(

[[tables]]
name = '"Odd Schema"."Mixed ""Case"" Table"'
)" + conflicts;
}

using Rows = std::map<std::string, std::vector<std::optional<std::string>>>;

// Every row of a table, keyed by id, columns in the given order.
Rows rows_of(pg::Connection& conn, const std::string& table, const std::string& columns) {
    const pg::Result r =
        conn.exec("SELECT id::text, " + columns + " FROM " + table + " ORDER BY 1");
    Rows out;
    for (int i = 0; i < r.rows(); ++i) {
        std::vector<std::optional<std::string>> row;
        for (int c = 1; c < r.columns(); ++c) {
            row.push_back(r.optional_value(i, c));
        }
        out[std::string(r.value(i, 0))] = row;
    }
    return out;
}

// Both directions of a bridge without the broker: capture runs on each side's slot; a test
// delivers what a side has committed to the other side's applier when it chooses, which is how
// it makes concurrent writes (write on both sides, then deliver both ways).
class Harness {
  public:
    explicit Harness(const std::string& conflicts = "")
        : scratch("apply", kSchemaA, kSchemaB, tables_toml(conflicts)) {
        scratch.setup();
        config = load_config(scratch.config_path());
        for (int side = 0; side < 2; ++side) {
            captures[side] = std::make_unique<CaptureThread>(
                scratch.versioned_capture_options(side, watermarks[side]), sinks[side]);
            appliers[side] = std::make_unique<apply::PostgresApplier>(applier_options(side),
                                                                      ConflictRules(config));
        }
        for (int side = 0; side < 2; ++side) {
            REQUIRE(eventually([&] { return captures[side]->stats().streaming.load(); }));
        }
    }

    apply::ApplierOptions applier_options(int target) const {
        apply::ApplierOptions o;
        o.bridge = scratch.name();
        o.source_side = scratch.side_name(1 - target);
        o.target_side = scratch.side_name(target);
        o.target.conninfo = scratch.runtime_conninfo(target);
        o.target.password = Secret(scratch.password());
        o.target.side = o.target_side;
        o.tables = config.tables;
        o.local_versions = watermarks[target];
        return o;
    }

    // The next `count` transactions committed on `from` (waits for them), as one batch.
    transport::ChangeBatch take(int from, std::size_t count) {
        const std::size_t want = taken[from] + count;
        REQUIRE(eventually([&] { return sinks[from].count() >= want; }));
        transport::ChangeBatch batch;
        batch.bridge = scratch.name();
        batch.source_side = scratch.side_name(from);
        const auto all = sinks[from].delivered();
        batch.transactions.assign(all.begin() + static_cast<std::ptrdiff_t>(taken[from]),
                                  all.begin() + static_cast<std::ptrdiff_t>(want));
        taken[from] = want;
        return batch;
    }

    void apply_to(int target, const transport::ChangeBatch& batch) {
        appliers[target]->apply(batch);
    }
    // Delivers the next `count` transactions of `from` to the other side.
    void deliver(int from, std::size_t count) { apply_to(1 - from, take(from, count)); }

    pg::Connection app(int side) const { return scratch.runtime(side); }

    Rows talents(int side) const {
        auto conn = scratch.admin(side);
        return rows_of(conn, side == 0 ? "public.talents" : "hr.candidates",
                       side == 0 ? "name, email, phone, status, score::text"
                                 : "name, contact_email, phone, status, score::text");
    }

    nlohmann::json conflicts(int side) const {
        auto conn = scratch.admin(side);
        const auto r = conn.exec(
            "SELECT coalesce(json_agg(json_build_object('kind', kind, 'columns', columns,"
            " 'key', key, 'strategy', strategy, 'winner', winner, 'status', status,"
            " 'local', local_values, 'remote', remote_values, 'table', table_name) ORDER BY id),"
            " '[]') FROM pgbridge.conflicts");
        return nlohmann::json::parse(r.value(0, 0));
    }

    ScratchBridge scratch;
    Config config;
    RecordingSink sinks[2]{RecordingSink(true), RecordingSink(true)};
    std::shared_ptr<VersionsWatermark> watermarks[2]{std::make_shared<VersionsWatermark>(),
                                                     std::make_shared<VersionsWatermark>()};
    std::unique_ptr<CaptureThread> captures[2];
    std::unique_ptr<apply::PostgresApplier> appliers[2];
    std::size_t taken[2] = {0, 0};
};

using Values = std::vector<std::optional<std::string>>;

}  // namespace

TEST_SUITE("apply") {
    TEST_CASE("inserts, updates and deletes arrive through the mapping, values intact") {
        Harness h;
        auto a = h.app(0);
        a.exec("INSERT INTO public.talents VALUES (1, 'Ann', 'ann@x.org', NULL, 'new', 1.5)");
        a.exec("INSERT INTO public.talents VALUES (2, $1, $2, '+1', 'new', NULL)",
               {"O'Brien \\ \"quoted\"", "back\\slash@x.org"});
        a.exec("UPDATE public.talents SET phone = '+44', score = 2.25 WHERE id = 1");
        a.exec("DELETE FROM public.talents WHERE id = 2");
        a.exec(R"(INSERT INTO "Odd Schema"."Mixed ""Case"" Table" VALUES (7, $1))",
               {"it's \\N and {braces}, \"q\""});
        h.deliver(0, 2);
        CHECK(h.talents(1) != h.talents(0));  // the update and delete are not there yet
        h.deliver(0, 3);
        CHECK(h.talents(1) == h.talents(0));
        CHECK(h.talents(1).at("1") == Values{"Ann", "ann@x.org", "+44", "new", "2.25"});
        auto b = h.scratch.admin(1);
        CHECK(
            b.exec(
                 R"(SELECT "Value's" FROM "Odd Schema"."Mixed ""Case"" Table" WHERE "Key Col" = 7)")
                .value(0, 0) == "it's \\N and {braces}, \"q\"");

        // Back the other way, from the mapped name to the canonical one.
        auto bw = h.app(1);
        bw.exec("UPDATE hr.candidates SET contact_email = 'ann@b.org' WHERE id = 1");
        h.deliver(1, 1);
        CHECK(h.talents(0).at("1") == Values{"Ann", "ann@b.org", "+44", "new", "2.25"});
        CHECK(h.conflicts(0).empty());
        CHECK(h.conflicts(1).empty());
    }

    TEST_CASE("applied rows carry the source commit time and the origin; nothing echoes back") {
        Harness h;
        auto a = h.app(0);
        a.exec("INSERT INTO public.talents VALUES (1, 'Ann', 'ann@x.org', NULL, 'new', 1)");
        const auto batch = h.take(0, 1);
        h.apply_to(1, batch);
        auto b = h.scratch.admin(1);
        const auto r = b.exec(
            "SELECT (extract(epoch FROM c.timestamp) * 1000000)::int8, o.roname"
            "  FROM hr.candidates t, pg_xact_commit_timestamp_origin(t.xmin) c"
            "  JOIN pg_replication_origin o ON o.roident = c.roident WHERE t.id = 1");
        REQUIRE(r.rows() == 1);
        CHECK(std::stoll(std::string(r.value(0, 0))) == batch.transactions[0].commit_time);
        CHECK(r.value(0, 1) == "pgbridge_" + h.scratch.name() + "_from_a");
        // B's capture drops the applied transaction: a local write on B is the next it sees.
        h.app(1).exec("UPDATE hr.candidates SET phone = '1' WHERE id = 1");
        const auto next = h.take(1, 1);
        CHECK(next.transactions[0].changes.at(0).op == ChangeOp::Update);
        CHECK(h.sinks[1].count() == 1);
    }

    TEST_CASE("a sharded direction's truncate: each shard removes its own rows, and only those") {
        Harness h;
        auto a = h.app(0);
        a.exec(
            "INSERT INTO public.talents SELECT g, 'n' || g, NULL, NULL, 'new', g "
            "FROM generate_series(1, 40) g");
        h.deliver(0, 1);
        REQUIRE(h.talents(1).size() == 40);
        h.scratch.admin(0).exec("TRUNCATE public.talents");  // the owner's right
        const transport::ChangeBatch truncate = h.take(0, 1);
        REQUIRE(truncate.transactions.at(0).changes.at(0).op == ChangeOp::Truncate);
        // Two shards of the direction to b, each with its own origin (setup makes them when
        // apply_workers is set).
        auto b_admin = h.scratch.admin(1);
        std::unique_ptr<apply::PostgresApplier> shards[2];
        for (std::uint32_t k = 0; k < 2; ++k) {
            b_admin.exec("SELECT pg_replication_origin_create($1)",
                         {names::shard_origin(h.scratch.name(), "a", k, 2)});
            auto o = h.applier_options(1);
            o.shard = k;
            o.shards = 2;
            shards[k] = std::make_unique<apply::PostgresApplier>(o, ConflictRules(h.config));
        }
        const auto ids = [&] {
            std::set<int> out;
            for (const auto& [id, row] : h.talents(1)) {
                out.insert(std::stoi(id));
            }
            return out;
        };
        shards[0]->apply(truncate);
        std::set<int> of_shard_two;
        for (int id = 1; id <= 40; ++id) {
            if (key_shard({std::to_string(id)}, 2) == 1) {
                of_shard_two.insert(id);
            }
        }
        REQUIRE(!of_shard_two.empty());
        REQUIRE(of_shard_two.size() < 40);
        CHECK(ids() == of_shard_two);  // shard 1 took its rows, and only them
        shards[1]->apply(truncate);
        CHECK(ids().empty());
        // Each shard recorded its own progress.
        CHECK(b_admin
                  .exec("SELECT string_agg(shard::text, ',' ORDER BY shard) FROM "
                        "pgbridge.apply_progress WHERE bridge = $1 AND source_side = 'a' AND "
                        "last_end_lsn >= $2::pg_lsn",
                        {h.scratch.name(), truncate.last_end_lsn().to_string()})
                  .value(0, 0) == "1,2");
    }

    TEST_CASE("the same batch applied twice, or late, changes nothing") {
        Harness h;
        auto a = h.app(0);
        a.exec("INSERT INTO public.talents VALUES (1, 'Ann', 'a@x', NULL, 'new', 1)");
        a.exec("UPDATE public.talents SET status = 'first' WHERE id = 1");
        a.exec("UPDATE public.talents SET status = 'second', phone = 'p' WHERE id = 1");
        a.exec("INSERT INTO public.talents VALUES (2, 'Bob', 'b@x', NULL, 'new', 1)");
        a.exec("DELETE FROM public.talents WHERE id = 2");
        const auto insert = h.take(0, 1);
        const auto first = h.take(0, 1);
        const auto second = h.take(0, 1);
        const auto insert2 = h.take(0, 1);
        const auto delete2 = h.take(0, 1);

        h.apply_to(1, insert);
        h.apply_to(1, insert);   // duplicate
        h.apply_to(1, second);   // a later transaction before an earlier one
        h.apply_to(1, first);    // the earlier one, late: superseded
        h.apply_to(1, delete2);  // delete before its insert
        h.apply_to(1, insert2);  // the insert, late: must not bring the row back
        h.apply_to(1, second);
        CHECK(h.talents(1) == h.talents(0));
        CHECK(h.talents(1).at("1") == Values{"Ann", "a@x", "p", "second", "1.00"});
        CHECK(h.talents(1).count("2") == 0);
        CHECK(h.conflicts(1).empty());
        CHECK(h.appliers[1]->stats().skipped.load() >= 4);
    }

    TEST_CASE(
        "update/update: the later write to a column wins on both sides; other columns merge") {
        Harness h;
        h.app(0).exec("INSERT INTO public.talents VALUES (1, 'Ann', 'a@x', NULL, 'new', 1)");
        h.deliver(0, 1);
        // Concurrent: both sides write before either is delivered. B writes status later.
        h.app(0).exec("UPDATE public.talents SET status = 'from a', phone = 'pa' WHERE id = 1");
        h.app(1).exec("UPDATE hr.candidates SET status = 'from b', name = 'Ann B' WHERE id = 1");
        h.deliver(0, 1);
        h.deliver(1, 1);
        CHECK(h.talents(0) == h.talents(1));
        CHECK(h.talents(0).at("1") == Values{"Ann B", "a@x", "pa", "from b", "1.00"});
        for (int side = 0; side < 2; ++side) {
            CAPTURE(side);
            const auto log = h.conflicts(side);
            REQUIRE(log.size() == 1);
            CHECK(log[0]["kind"] == "update_update");
            CHECK(log[0]["columns"] == nlohmann::json::array({"status"}));
            CHECK(log[0]["strategy"] == "last_write_wins");
            CHECK(log[0]["winner"] == "b");
            CHECK(log[0]["status"] == "resolved");
        }
        CHECK(h.conflicts(0)[0]["local"]["status"] == "from a");
        CHECK(h.conflicts(0)[0]["remote"]["status"] == "from b");
    }

    TEST_CASE("the three-write interleaving of docs/apply-design.md converges to A's email") {
        Harness h;
        h.app(0).exec("INSERT INTO public.talents VALUES (1, 'Ann', 'old', NULL, 'new', 1)");
        h.deliver(0, 1);
        // B writes email (t=5), A writes email (t=10), B writes phone (t=15).
        h.app(1).exec("UPDATE hr.candidates SET contact_email = 'b' WHERE id = 1");
        h.app(0).exec("UPDATE public.talents SET email = 'a' WHERE id = 1");
        h.app(1).exec("UPDATE hr.candidates SET phone = 'pb' WHERE id = 1");
        h.deliver(1, 2);
        h.deliver(0, 1);
        CHECK(h.talents(0) == h.talents(1));
        CHECK(h.talents(0).at("1") == Values{"Ann", "a", "pb", "new", "1.00"});
    }

    TEST_CASE(
        "a local write committed just before a remote change to the same key converges, "
        "many times, under every strategy") {
        // The applier reads the target's column versions, which the target's capture records
        // after the fact: a local write it has not recorded yet must not be overwritten as if
        // it were older than the remote change (docs/apply-design.md, "Local versions").
        const std::vector<std::string> rules = {
            "",
            "[conflicts]\ndefault_strategy = \"source_priority\"\nsource_priority = [\"b\", "
            "\"a\"]\n",
            "[conflicts]\n[conflicts.field_priority]\nemail = \"a\"\nstatus = \"b\"\n",
        };
        for (const auto& rule : rules) {
            CAPTURE(rule);
            Harness h(rule);
            h.app(0).exec(
                "INSERT INTO public.talents SELECT g, 'n', 'e', 'p', 's', 1 "
                "FROM generate_series(1, 4) g");
            h.deliver(0, 1);
            for (int round = 0; round < 24; ++round) {
                CAPTURE(round);
                const std::string id = std::to_string(1 + round % 4);
                const std::string r = std::to_string(round);
                h.app(0).exec("UPDATE public.talents SET email = 'a" + r + "', phone = 'pa" + r +
                              "' WHERE id = " + id);
                const auto from_a = h.take(0, 1);
                if (round % 6 == 5) {
                    // A delete just before: it wins, on both sides; the row comes back after.
                    h.app(1).exec("DELETE FROM hr.candidates WHERE id = " + id);
                } else {
                    h.app(1).exec("UPDATE hr.candidates SET contact_email = 'b" + r +
                                  "', status = 'sb" + r + "' WHERE id = " + id);
                }
                h.apply_to(1, from_a);
                h.deliver(1, 1);
                REQUIRE(h.talents(0) == h.talents(1));
                if (round % 6 == 5) {
                    CHECK(h.talents(0).count(id) == 0);
                    h.app(0).exec("INSERT INTO public.talents VALUES (" + id +
                                  ", 'n', 'e', 'p', 's', 1)");
                    h.deliver(0, 1);
                    REQUIRE(h.talents(0) == h.talents(1));
                }
            }
        }
    }

    TEST_CASE(
        "update, delete and insert of one key in one transaction: the target ends as the source "
        "left it, with the versions the source sent") {
        Harness h;
        h.app(0).exec("INSERT INTO public.talents VALUES (1, 'Ann', 'a@x', 'p', 'new', 1)");
        h.deliver(0, 1);
        h.app(0).exec(
            "BEGIN; UPDATE public.talents SET status = 'updated', phone = 'p2' WHERE id = 1;"
            " DELETE FROM public.talents WHERE id = 1;"
            " INSERT INTO public.talents VALUES (1, 'Ann 2', 'a2@x', NULL, 'again', 2); COMMIT");
        const auto batch = h.take(0, 1);
        REQUIRE(batch.transactions.size() == 1);
        const SourceTransaction& txn = batch.transactions[0];
        REQUIRE(txn.changes.size() == 3);
        CHECK(txn.changes[0].op == ChangeOp::Update);
        CHECK(txn.changes[1].op == ChangeOp::Delete);
        REQUIRE(txn.changes[2].op == ChangeOp::Insert);
        REQUIRE(txn.changes[2].versions);
        const RowVersions sent = *txn.changes[2].versions;
        h.apply_to(1, batch);
        CHECK(h.talents(1) == h.talents(0));
        CHECK(h.talents(1).at("1") == Values{"Ann 2", "a2@x", std::nullopt, "again", "2.00"});

        // The writer's count of a column, as the change carries it (default entry "").
        const auto sent_own = [&](const std::string& column) {
            const auto it = sent.columns.find(column);
            return (it != sent.columns.end() ? it->second : sent.columns.at("")).own;
        };
        // B stores A's writes as seen, column by column, stamped with A's commit: no
        // tombstone, nothing counted as B's own.
        auto b = h.scratch.admin(1);
        const auto on_b = b.exec(
            "SELECT columns::text, local_row_writes, seen_remote_row_writes, deleted IS NULL"
            "  FROM pgbridge.row_versions WHERE table_name = 'hr.candidates' AND key = '[1]'");
        REQUIRE(on_b.rows() == 1);
        CHECK(on_b.value(0, 1) == "0");
        CHECK(on_b.value(0, 2) == std::to_string(sent.row.own));
        CHECK(on_b.value(0, 3) == "t");
        const ColumnVersions b_columns = parse_column_versions(on_b.value(0, 0));
        const std::vector<std::pair<std::string, std::string>> columns = {
            {"id", "id"},       {"name", "name"},     {"email", "contact_email"},
            {"phone", "phone"}, {"status", "status"}, {"score", "score"}};
        for (const auto& [a_name, b_name] : columns) {
            CAPTURE(b_name);
            const StoredColumnVersion& v = column_entry(b_columns, b_name);
            CHECK(v.seen_remote_writes == sent_own(a_name));
            CHECK(v.local_writes == 0);
            CHECK(v.last_write.writer == VersionWriter::Remote);
            CHECK(v.last_write.remote_time == txn.commit_time);
        }
        // The columns the transaction wrote twice (update, then insert) count one write.
        CHECK(sent_own("status") == sent_own("name"));
        CHECK(sent_own("status") == sent.row.own);

        // What B writes next is a later write to the row A left, not a concurrent one.
        h.app(1).exec("UPDATE hr.candidates SET phone = 'pb' WHERE id = 1");
        h.deliver(1, 1);
        CHECK(h.talents(0).at("1") == Values{"Ann 2", "a2@x", "pb", "again", "2.00"});
        CHECK(h.talents(0) == h.talents(1));
        CHECK(h.conflicts(0).empty());
        CHECK(h.conflicts(1).empty());
    }

    TEST_CASE("an update of the primary key on either side arrives as the key change it is") {
        Harness h;
        h.app(0).exec("INSERT INTO public.talents VALUES (1, 'Ann', 'a@x', NULL, 'new', 1)");
        h.app(0).exec("INSERT INTO public.talents VALUES (9, 'Bob', 'b@x', NULL, 'new', 1)");
        h.deliver(0, 2);
        h.app(0).exec("UPDATE public.talents SET id = 2, status = 'moved' WHERE id = 1");
        h.deliver(0, 1);
        CHECK(h.talents(1).count("1") == 0);
        CHECK(h.talents(1).at("2") == Values{"Ann", "a@x", std::nullopt, "moved", "1.00"});
        // The other way, and two keys swapped through a third in one transaction.
        h.app(1).exec("UPDATE hr.candidates SET id = 3 WHERE id = 2");
        h.app(1).exec(
            "BEGIN; UPDATE hr.candidates SET id = 100 WHERE id = 3;"
            " UPDATE hr.candidates SET id = 3 WHERE id = 9;"
            " UPDATE hr.candidates SET id = 9 WHERE id = 100; COMMIT");
        h.deliver(1, 2);
        CHECK(h.talents(0) == h.talents(1));
        CHECK(h.talents(0).size() == 2);
        CHECK(h.talents(0).at("9") == Values{"Ann", "a@x", std::nullopt, "moved", "1.00"});
        CHECK(h.talents(0).at("3") == Values{"Bob", "b@x", std::nullopt, "new", "1.00"});
    }

    TEST_CASE("field priority decides a column whatever the times; source priority the rest") {
        Harness h(R"(
[conflicts]
default_strategy = "source_priority"
source_priority = ["b", "a"]
[conflicts.field_priority]
email = "b"
status = "a"
)");
        h.app(0).exec("INSERT INTO public.talents VALUES (1, 'Ann', 'e', 'p', 's', 1)");
        h.deliver(0, 1);
        h.app(1).exec(
            "UPDATE hr.candidates SET contact_email = 'eb', status = 'sb', phone = 'pb' WHERE id = "
            "1");
        h.app(0).exec(
            "UPDATE public.talents SET email = 'ea', status = 'sa', phone = 'pa' WHERE id = 1");
        h.deliver(0, 1);
        h.deliver(1, 1);
        CHECK(h.talents(0) == h.talents(1));
        CHECK(h.talents(0).at("1") == Values{"Ann", "eb", "pb", "sa", "1.00"});
        std::map<std::string, std::pair<std::string, std::string>> decided;
        for (const auto& c : h.conflicts(0)) {
            decided[c["columns"][0]] = {c["strategy"], c["winner"]};
        }
        CHECK(decided["email"] == std::pair<std::string, std::string>{"field_priority", "b"});
        CHECK(decided["status"] == std::pair<std::string, std::string>{"field_priority", "a"});
        CHECK(decided["phone"] == std::pair<std::string, std::string>{"source_priority", "b"});
    }

    TEST_CASE("insert/insert of one key is settled column by column") {
        Harness h;
        h.app(1).exec("INSERT INTO hr.candidates VALUES (5, 'Same', 'b@x', 'pb', 'new', 1)");
        h.app(0).exec("INSERT INTO public.talents VALUES (5, 'Same', 'a@x', NULL, 'new', 1)");
        h.deliver(0, 1);
        h.deliver(1, 1);
        CHECK(h.talents(0) == h.talents(1));
        // A wrote later: its values win where they differ.
        CHECK(h.talents(0).at("5") == Values{"Same", "a@x", std::nullopt, "new", "1.00"});
        const auto log = h.conflicts(1);
        REQUIRE(log.size() == 2);
        CHECK(log[0]["kind"] == "insert_insert");
    }

    TEST_CASE("delete wins over a concurrent update, on both sides") {
        Harness h;
        h.app(0).exec("INSERT INTO public.talents VALUES (1, 'Ann', 'a@x', NULL, 'new', 1)");
        h.deliver(0, 1);
        h.app(0).exec("UPDATE public.talents SET status = 'changed' WHERE id = 1");
        h.app(1).exec("DELETE FROM hr.candidates WHERE id = 1");
        h.deliver(0, 1);
        h.deliver(1, 1);
        CHECK(h.talents(0).empty());
        CHECK(h.talents(1).empty());
        CHECK(h.conflicts(0).at(0)["kind"] == "delete_changed");
        CHECK(h.conflicts(0).at(0)["winner"] == "b");
        CHECK(h.conflicts(1).at(0)["kind"] == "update_missing");
        CHECK(h.conflicts(1).at(0)["winner"] == "b");
        // An update of a row that was never there (nor deleted) is an insert of the whole row.
        h.app(0).exec("INSERT INTO public.talents VALUES (2, 'Bob', 'b@x', NULL, 'new', 1)");
        h.app(0).exec("UPDATE public.talents SET status = 'x' WHERE id = 2");
        h.take(0, 1);  // lost on the way
        h.deliver(0, 1);
        CHECK(h.talents(1).at("2") == Values{"Bob", "b@x", std::nullopt, "x", "1.00"});
    }

    TEST_CASE("manual keeps both values and records the conflict as pending on both sides") {
        Harness h(R"(
[conflicts]
default_strategy = "manual"
)");
        h.app(0).exec("INSERT INTO public.talents VALUES (1, 'Ann', 'a@x', NULL, 'new', 1)");
        h.deliver(0, 1);
        h.app(0).exec("UPDATE public.talents SET status = 'sa' WHERE id = 1");
        h.app(1).exec("UPDATE hr.candidates SET status = 'sb' WHERE id = 1");
        h.deliver(0, 1);
        h.deliver(1, 1);
        CHECK(h.talents(0).at("1")[3] == "sa");
        CHECK(h.talents(1).at("1")[3] == "sb");
        for (int side = 0; side < 2; ++side) {
            const auto log = h.conflicts(side);
            REQUIRE(log.size() == 1);
            CHECK(log[0]["status"] == "pending");
            CHECK(log[0]["winner"].is_null());
        }
        // The DBA sees both records and takes A's value.
        const auto listed = h.scratch.pgbridge({"conflicts", "list", "--pending", "--json"});
        REQUIRE(listed.exit_code == 0);
        const auto records = nlohmann::json::parse(listed.out);
        REQUIRE(records.size() == 2);
        const std::string id = records[0]["id"];
        const auto shown = h.scratch.pgbridge({"conflicts", "show", id});
        CHECK(shown.exit_code == 0);
        CHECK(shown.out.find("manual") != std::string::npos);
        const auto resolved = h.scratch.pgbridge({"conflicts", "resolve", id, "--take", "a"});
        REQUIRE_MESSAGE(resolved.exit_code == 0, resolved.err);
        // B now holds A's value as its own write, made after seeing A's: delivered to A it is
        // no conflict, and both sides agree.
        CHECK(h.talents(1).at("1")[3] == "sa");
        h.deliver(1, 1);
        CHECK(h.talents(0) == h.talents(1));
        CHECK(h.conflicts(0).size() == 1);
        for (int side = 0; side < 2; ++side) {
            CHECK(h.conflicts(side)[0]["status"] == "resolved");
            CHECK(h.conflicts(side)[0]["winner"] == "a");
        }
        CHECK(h.scratch.pgbridge({"conflicts", "list", "--pending"}).out.find("no pending") !=
              std::string::npos);
        CHECK(h.scratch.pgbridge({"conflicts", "resolve", id, "--take", "a"}).exit_code == 2);
    }

    TEST_CASE("a change the target refuses names table, key and LSN; the next one applies") {
        Harness h;
        h.app(0).exec("INSERT INTO public.talents VALUES (1, 'Ann', 'a@x', NULL, 'new', -1)");
        h.app(0).exec("INSERT INTO public.talents VALUES (2, 'Bob', 'b@x', NULL, 'new', 1)");
        const auto bad = h.take(0, 1);
        try {
            h.apply_to(1, bad);
            FAIL("the CHECK constraint on B should refuse the row");
        } catch (const Error& e) {
            CHECK(e.context_value("sqlstate") == "23514");
            CHECK(e.context_value("table") == "hr.candidates");
            CHECK(e.context_value("key") == R"({"id":"1"})");
            CHECK(e.context_value("lsn") == bad.transactions[0].commit_lsn.to_string());
            CHECK(std::string(e.what()).find("-1") == std::string::npos);  // no row values
        }
        h.deliver(0, 1);
        CHECK(h.talents(1).count("2") == 1);
        CHECK(h.talents(1).count("1") == 0);
    }
}
