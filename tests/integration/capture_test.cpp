// Capture against a real PostgreSQL 15: what is written is what is decoded; echo is dropped;
// the slot moves only as far as downstream durability allows; restarts lose and double nothing.

#include <map>
#include <set>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/apply/row_versions.hpp>
#include <pgbridge/core/key_shard.hpp>
#include <pgbridge/pgoutput/transaction_assembler.hpp>

#include "../support/recording_sink.hpp"
#include "../support/test_environment.hpp"

using namespace pgbridge;
using namespace pgbridge::test;

namespace {

// A column's vector as the receiver reads it: its own entry, else the default entry ("").
VersionVector column_vector(const RowVersions& versions, const std::string& column) {
    auto it = versions.columns.find(column);
    if (it == versions.columns.end()) {
        it = versions.columns.find("");
    }
    REQUIRE(it != versions.columns.end());
    return it->second;
}

const std::string kSchema = R"(
CREATE TABLE public.typed (
    id bigint PRIMARY KEY, i int, n numeric(14,4), t text, v varchar(32), b boolean,
    ts timestamptz, d date, u uuid, j jsonb, raw bytea, arr text[], nums int[], big text);
ALTER TABLE public.typed ALTER COLUMN big SET STORAGE EXTERNAL;  -- out of line, uncompressed
CREATE TABLE public.other (id int PRIMARY KEY, note text);
CREATE TABLE public.unsynced (id serial PRIMARY KEY, note text);
)";
const std::string kTables = R"(
[[tables]]
name = "public.typed"
[[tables]]
name = "public.other"
)";

const std::vector<std::string> kTypedColumns{"id", "i", "n", "t",   "v",   "b",    "ts",
                                             "d",  "u", "j", "raw", "arr", "nums", "big"};

struct Bridge {
    ScratchBridge scratch{"capture", kSchema, kSchema, kTables};

    Bridge() { scratch.setup(); }

    source::CaptureOptions capture_options() const { return scratch.capture_options(0); }
    Lsn confirmed_flush() const { return scratch.confirmed_flush(0); }
};

std::string text_of(const Value& v) {
    REQUIRE(v.kind == Value::Kind::Text);
    return v.data;
}

// The row as the source server prints it, column by column (NULL as nullopt).
std::map<std::string, std::vector<std::optional<std::string>>> rows_as_text(pg::Connection& conn) {
    // Casts to text use the type's output function, as pgoutput does; boolean's cast is the
    // exception ('true' where the output function says 't').
    std::string select = "SELECT id::text";
    for (std::size_t i = 1; i < kTypedColumns.size(); ++i) {
        select += kTypedColumns[i] == "b" ? ", CASE WHEN b THEN 't' WHEN NOT b THEN 'f' END"
                                          : ", " + kTypedColumns[i] + "::text";
    }
    auto r = conn.exec(select + " FROM public.typed ORDER BY id");
    std::map<std::string, std::vector<std::optional<std::string>>> rows;
    for (int row = 0; row < r.rows(); ++row) {
        std::vector<std::optional<std::string>> values;
        for (int col = 0; col < r.columns(); ++col) {
            values.push_back(r.optional_value(row, col));
        }
        rows[std::string(r.value(row, 0))] = values;
    }
    return rows;
}

std::vector<std::optional<std::string>> as_text(const Row& row) {
    std::vector<std::optional<std::string>> out;
    for (const auto& v : row) {
        if (v.kind == Value::Kind::Null) {
            out.emplace_back(std::nullopt);
        } else {
            out.emplace_back(v.data);
        }
    }
    return out;
}

bool wait_for_count(const RecordingSink& sink, std::size_t n,
                    std::chrono::milliseconds deadline = std::chrono::seconds(30)) {
    return eventually([&] { return sink.count() >= n; }, deadline);
}

}  // namespace

// Capture of side a keeping that side's column versions, as pgbridge run does, into a sink
// that says everything is durable at once.
struct VersionedCapture {
    Bridge bridge;
    RecordingSink sink{true};
    std::shared_ptr<VersionsWatermark> watermark = std::make_shared<VersionsWatermark>();
    CaptureThread capture{bridge.scratch.versioned_capture_options(0, watermark), sink};

    VersionedCapture() {
        REQUIRE(eventually([&] { return capture.stats().streaming.load(); }));
    }
};

TEST_SUITE("capture") {
    TEST_CASE("decoded changes equal what was written, for every type, NULLs and TOAST") {
        Bridge bridge;
        RecordingSink sink(/*auto_durable=*/true);
        CaptureThread capture(bridge.capture_options(), sink);
        REQUIRE(eventually([&] { return capture.stats().streaming.load(); }));

        auto db = bridge.scratch.admin(0);
        db.exec(R"(
INSERT INTO public.typed VALUES
 (1, 7, 1234.5678, 'it''s "text"', 'vc', true, '2026-01-02 03:04:05.678901+00', '2026-01-02',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": {"b": [1, null, "x"]}}', '\xdeadbeef',
  '{"with space","with,comma",NULL}', '{1,2,3}', repeat('big', 3000)),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, -2147483648, -0.0001, '', '', false, 'infinity', '0001-01-01 BC', '00000000-0000-0000-0000-000000000000',
  '[]', '\x', '{}', '{}', 'ünïcødé ✓'))");
        const auto written = rows_as_text(db);
        db.exec("UPDATE public.typed SET t = 'updated', i = i + 1 WHERE id = 1");  // big untouched
        db.exec("DELETE FROM public.typed WHERE id = 2");
        db.transaction([&] {  // one transaction over two tables
            db.exec("INSERT INTO public.other VALUES (1, 'one')");
            db.exec("UPDATE public.typed SET b = NULL WHERE id = 3");
            db.exec("INSERT INTO public.other VALUES (2, 'two')");
        });
        db.exec("TRUNCATE public.other");
        REQUIRE(wait_for_count(sink, 5));
        const auto txns = sink.delivered();
        REQUIRE(txns.size() == 5);

        // The insert: three rows, each column exactly as the server prints it.
        REQUIRE(txns[0].changes.size() == 3);
        for (const auto& change : txns[0].changes) {
            CHECK(change.op == ChangeOp::Insert);
            CHECK(change.table->name == "typed");
            const auto decoded = as_text(*change.new_row);
            const auto& expected = written.at(*decoded[0]);
            REQUIRE(decoded.size() == expected.size());
            for (std::size_t i = 0; i < decoded.size(); ++i) {
                CAPTURE(kTypedColumns[i]);
                CHECK(decoded[i].value_or("<NULL>") == expected[i].value_or("<NULL>"));
            }
        }
        const auto& columns = txns[0].changes[0].table->columns;
        REQUIRE(columns.size() == kTypedColumns.size());
        CHECK(columns[0].primary_key);
        for (std::size_t i = 1; i < columns.size(); ++i) {
            CHECK_FALSE(columns[i].primary_key);
        }

        // The update: the whole old row; the untouched TOASTed column is marked, not resent.
        const ChangeEvent& update = txns[1].changes.at(0);
        CHECK(update.op == ChangeOp::Update);
        REQUIRE(update.old_row);
        CHECK(as_text(*update.old_row) == written.at("1"));
        CHECK(text_of((*update.new_row)[3]) == "updated");
        CHECK(text_of((*update.new_row)[1]) == "8");
        CHECK((*update.new_row)[13].kind == Value::Kind::UnchangedToast);

        const ChangeEvent& del = txns[2].changes.at(0);
        CHECK(del.op == ChangeOp::Delete);
        CHECK(as_text(*del.old_row) == written.at("2"));

        const auto& multi = txns[3].changes;
        REQUIRE(multi.size() == 3);
        CHECK(multi[0].table->name == "other");
        CHECK(multi[1].table->name == "typed");
        CHECK(multi[2].table->name == "other");
        CHECK((*multi[1].new_row)[5].kind == Value::Kind::Null);

        CHECK(txns[4].changes.at(0).op == ChangeOp::Truncate);
        CHECK(txns[4].changes.at(0).truncated.at(0)->name == "other");
        CHECK(capture.failure().empty());
    }

    TEST_CASE("a 50,000-row transaction arrives whole, streamed in chunks by the server") {
        Bridge bridge;
        // Make the walsender stream in-progress chunks (protocol 2) early.
        bridge.scratch.admin(0).exec(fmt::format(
            "ALTER ROLE \"{}\" SET logical_decoding_work_mem = '64kB'", bridge.scratch.role()));
        RecordingSink sink(true);
        CaptureThread capture(bridge.capture_options(), sink);
        REQUIRE(eventually([&] { return capture.stats().streaming.load(); }));
        auto db = bridge.scratch.admin(0);
        db.exec("INSERT INTO public.other SELECT g, 'row ' || g FROM generate_series(1, 50000) g");
        db.exec("INSERT INTO public.other VALUES (50001, 'after')");
        REQUIRE(wait_for_count(sink, 2, std::chrono::seconds(60)));
        const auto txns = sink.delivered();
        REQUIRE(txns.size() == 2);
        CHECK(txns[0].streamed);
        REQUIRE(txns[0].changes.size() == 50000);
        for (std::size_t i = 0; i < txns[0].changes.size(); ++i) {
            REQUIRE(text_of((*txns[0].changes[i].new_row)[0]) == std::to_string(i + 1));
        }
        CHECK_FALSE(txns[1].streamed);
        CHECK(txns[0].end_lsn < txns[1].end_lsn);
    }

    TEST_CASE("transactions applied under a pgbridge origin are not sent back (no echo)") {
        Bridge bridge;
        RecordingSink sink(true);
        CaptureThread capture(bridge.capture_options(), sink);
        REQUIRE(eventually([&] { return capture.stats().streaming.load(); }));
        auto apply = bridge.scratch.runtime(0);
        apply.exec("SELECT pg_replication_origin_session_setup($1)",
                   {"pgbridge_" + bridge.scratch.name() + "_from_b"});
        apply.transaction([&] {
            apply.exec("SELECT pg_replication_origin_xact_setup('0/42', now())");
            apply.exec("INSERT INTO public.other VALUES (1, 'applied from b')");
        });
        // A session of its own, bound to no origin.
        bridge.scratch.runtime(0).exec("INSERT INTO public.other VALUES (2, 'written locally')");
        REQUIRE(wait_for_count(sink, 1));
        REQUIRE(eventually([&] { return capture.stats().echo_transactions_dropped.load() == 1; }));
        const auto txns = sink.delivered();
        REQUIRE(txns.size() == 1);
        CHECK(text_of((*txns[0].changes.at(0).new_row)[0]) == "2");
        CHECK_FALSE(txns[0].origin);
        // Both are behind the confirmed position: the echo does not hold WAL.
        REQUIRE(eventually([&] { return bridge.confirmed_flush() >= txns[0].end_lsn; }));
    }

    TEST_CASE("the slot is confirmed only as far as downstream is durable") {
        Bridge bridge;
        const Lsn start = bridge.confirmed_flush();
        RecordingSink sink(/*auto_durable=*/false);
        CaptureThread capture(bridge.capture_options(), sink);
        REQUIRE(eventually([&] { return capture.stats().streaming.load(); }));
        auto db = bridge.scratch.admin(0);
        for (int i = 1; i <= 3; ++i) {
            db.exec(fmt::format("INSERT INTO public.other VALUES ({}, 'x')", i));
        }
        REQUIRE(wait_for_count(sink, 3));
        const auto txns = sink.delivered();
        // Several status intervals pass: nothing durable, so the slot stays before the first
        // transaction (it may follow the server's position from before the writes).
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
        while (std::chrono::steady_clock::now() < deadline) {
            REQUIRE(bridge.confirmed_flush() < txns[0].end_lsn);
            REQUIRE(bridge.confirmed_flush() >= start);
        }
        sink.set_durable(txns[1].end_lsn);
        REQUIRE(eventually([&] { return bridge.confirmed_flush() == txns[1].end_lsn; }));
        sink.set_durable(txns[2].end_lsn);
        REQUIRE(eventually([&] { return bridge.confirmed_flush() >= txns[2].end_lsn; }));
    }

    TEST_CASE("an idle slot advances when only unsynced tables are written") {
        Bridge bridge;
        RecordingSink sink(true);
        CaptureThread capture(bridge.capture_options(), sink);
        REQUIRE(eventually([&] { return capture.stats().streaming.load(); }));
        auto db = bridge.scratch.admin(0);
        for (int i = 0; i < 20; ++i) {
            db.exec(
                "INSERT INTO public.unsynced (note) SELECT repeat('w', 1000) FROM "
                "generate_series(1, 50)");
        }
        const Lsn written = Lsn::parse(db.exec("SELECT pg_current_wal_lsn()").value(0, 0)).value();
        INFO("WAL written up to " << written.to_string());
        REQUIRE(eventually([&] { return bridge.confirmed_flush() >= written; },
                           std::chrono::seconds(30)));
        CHECK(sink.count() == 0);
    }

    TEST_CASE("after a dropped connection and after a restart nothing is lost or doubled") {
        Bridge bridge;
        auto db = bridge.scratch.admin(0);
        RecordingSink first_sink(false);
        std::vector<SourceTransaction> first;
        {
            CaptureThread capture(bridge.capture_options(), first_sink);
            REQUIRE(eventually([&] { return capture.stats().streaming.load(); }));
            for (int i = 1; i <= 10; ++i) {
                db.exec(fmt::format("INSERT INTO public.other VALUES ({}, 'first')", i));
            }
            REQUIRE(wait_for_count(first_sink, 10));
            first_sink.set_durable(first_sink.delivered()[4].end_lsn);  // 5 durable

            // Kill the walsender mid-stream; the capture reconnects by itself.
            db.exec(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name "
                "= $1",
                {"pgbridge_" + bridge.scratch.name() + "_a"});
            REQUIRE(eventually([&] { return capture.stats().reconnects.load() >= 1; }));
            for (int i = 11; i <= 15; ++i) {
                db.exec(fmt::format("INSERT INTO public.other VALUES ({}, 'first')", i));
            }
            REQUIRE(wait_for_count(first_sink, 15));
            first_sink.set_durable(first_sink.delivered()[11].end_lsn);  // 12 durable
            REQUIRE(eventually(
                [&] { return bridge.confirmed_flush() == first_sink.delivered()[11].end_lsn; }));
            capture.stop();
            first = first_sink.delivered();
        }
        // Within one process the reconnect resumed after what was received: each once, in order.
        REQUIRE(first.size() == 15);
        for (std::size_t i = 0; i < first.size(); ++i) {
            CHECK(text_of((*first[i].changes.at(0).new_row)[0]) == std::to_string(i + 1));
        }

        // A new process starts from the slot: everything after the last acknowledged LSN
        // (rows 13..15) comes again, exactly once, followed by new writes.
        for (int i = 16; i <= 18; ++i) {
            db.exec(fmt::format("INSERT INTO public.other VALUES ({}, 'second')", i));
        }
        RecordingSink second_sink(true);
        CaptureThread capture(bridge.capture_options(), second_sink);
        REQUIRE(wait_for_count(second_sink, 6));
        const auto second = second_sink.delivered();
        REQUIRE(second.size() == 6);
        for (std::size_t i = 0; i < second.size(); ++i) {
            CHECK(text_of((*second[i].changes.at(0).new_row)[0]) == std::to_string(i + 13));
        }
        CHECK(second[0].end_lsn == first[12].end_lsn);
    }

    TEST_CASE("a downstream failure replays from the durable position") {
        Bridge bridge;
        auto db = bridge.scratch.admin(0);
        RecordingSink sink(true);
        CaptureThread capture(bridge.capture_options(), sink);
        REQUIRE(eventually([&] { return capture.stats().streaming.load(); }));
        db.exec("INSERT INTO public.other VALUES (1, 'a')");
        REQUIRE(wait_for_count(sink, 1));
        sink.fail_next(2);  // the broker "goes away" for two attempts
        db.exec("INSERT INTO public.other VALUES (2, 'b')");
        db.exec("INSERT INTO public.other VALUES (3, 'c')");
        REQUIRE(wait_for_count(sink, 3));
        const auto txns = sink.delivered();
        REQUIRE(txns.size() == 3);
        for (std::size_t i = 0; i < txns.size(); ++i) {
            CHECK(text_of((*txns[i].changes.at(0).new_row)[0]) == std::to_string(i + 1));
        }
        CHECK(sink.rewinds().size() == 2);
        CHECK(capture.stats().reconnects.load() == 2);
    }

    TEST_CASE("pgbridge tail prints what streams and never moves the slot") {
        Bridge bridge;
        const Lsn before = bridge.confirmed_flush();
        auto db = bridge.scratch.admin(0);
        db.exec("INSERT INTO public.other VALUES (1, 'backlog')");

        // --from-start reads the bridge's slot from its confirmed position: the backlog.
        auto backlog = bridge.scratch.pgbridge(
            {"--json", "tail", "--side", "a", "--from-start", "--count", "1"});
        INFO(backlog.out << backlog.err);
        REQUIRE(backlog.exit_code == 0);
        auto line = nlohmann::json::parse(backlog.out.substr(0, backlog.out.find('\n')));
        CHECK(line["op"] == "INSERT");
        CHECK(line["table"] == "public.other");
        CHECK(line["key"]["id"] == "1");
        CHECK(line["new"]["note"] == "backlog");
        CHECK(line["echo"] == false);
        CHECK(bridge.confirmed_flush() == before);

        // Text mode: a second run shows the same backlog again (nothing was acknowledged).
        auto text =
            bridge.scratch.pgbridge({"tail", "--side", "a", "--from-start", "--count", "1"});
        CHECK(text.exit_code == 0);
        CHECK(text.out.find("INSERT public.other: id='1' note='backlog'") != std::string::npos);

        // An unknown side is a usage error.
        auto wrong = bridge.scratch.pgbridge({"tail", "--side", "c"});
        CHECK(wrong.exit_code == 2);
        CHECK(wrong.err.find("a or b") != std::string::npos);
    }

    TEST_CASE("capture keeps column versions of local writes and ships them with the change") {
        VersionedCapture versioned;
        Bridge& bridge = versioned.bridge;
        RecordingSink& sink = versioned.sink;
        // An application's own role, with rights on its table only.
        auto app = bridge.scratch.runtime(0);
        app.exec("INSERT INTO public.other VALUES (1, 'one')");
        app.exec("UPDATE public.other SET note = 'uno' WHERE id = 1");
        app.exec("UPDATE public.other SET note = 'one' WHERE id = 1");
        app.exec("DELETE FROM public.other WHERE id = 1");
        REQUIRE(wait_for_count(sink, 4));

        // Recorded once durable downstream (the sink says at once), with the watermark.
        auto db = bridge.scratch.admin(0);
        REQUIRE(eventually(
            [&] { return versioned.watermark->recorded() >= sink.delivered().back().end_lsn; }));
        auto v = db.exec(
            "SELECT local_row_writes, local_delete_writes, deleted ->> 'w', columns::text"
            "  FROM pgbridge.row_versions WHERE table_name = 'public.other' AND key = '[1]'");
        REQUIRE(v.rows() == 1);
        CHECK(v.value(0, 0) == "4");
        CHECK(v.value(0, 1) == "4");
        CHECK(v.value(0, 2) == "l");
        // The tombstone keeps the counters of the columns, not their stamps.
        const auto kept = parse_column_versions(v.value(0, 3));
        CHECK(kept.at("note").local_writes == 3);
        CHECK(kept.at("note").last_write.writer == apply::WriteStamp::Writer::Unknown);

        // Each change carries the row's version vectors after the write.
        const auto txns = sink.delivered();
        for (std::size_t i = 0; i < txns.size(); ++i) {
            CAPTURE(i);
            const ChangeEvent& change = txns[i].changes.at(0);
            REQUIRE(change.versions);
            CHECK(change.versions->row == VersionVector{i + 1, 0});
            if (i < 3) {
                CHECK(column_vector(*change.versions, "note") == VersionVector{i + 1, 0});
                CHECK(column_vector(*change.versions, "id") == VersionVector{1, 0});  // the insert
                if (i == 0) {
                    // An insert writes every column alike: one default entry stands for all.
                    CHECK(change.versions->columns.size() == 1);
                    CHECK(change.versions->columns.count("") == 1);
                }
            } else {
                // A delete keeps the columns' counters for the key's next incarnation.
                CHECK(column_vector(*change.versions, "note") == VersionVector{3, 0});
                CHECK(column_vector(*change.versions, "id") == VersionVector{1, 0});
            }
        }
        // One statement writing many rows: each change gets its own row's versions.
        app.exec("INSERT INTO public.other SELECT g, 'n' FROM generate_series(10, 14) g");
        app.exec("UPDATE public.other SET note = 'm' WHERE id IN (11, 13)");
        app.exec("UPDATE public.other SET note = 'k' WHERE id BETWEEN 10 AND 14");
        REQUIRE(wait_for_count(sink, 7));
        const auto many = sink.delivered();
        std::map<std::string, std::uint64_t> writes;
        for (std::size_t t = 4; t < 7; ++t) {
            for (const ChangeEvent& change : many[t].changes) {
                REQUIRE(change.versions);
                const std::string id = (*change.new_row)[0].data;
                CAPTURE(id);
                CHECK(change.versions->row.own == ++writes[id]);
                CHECK(column_vector(*change.versions, "note").own == writes[id]);
            }
        }
        CHECK(writes["11"] == 3);
        CHECK(writes["12"] == 2);
        // The next transaction, of two changes, as delivered.
        const auto two_changes = [&](const std::string& sql) {
            const std::size_t before = sink.delivered().size();
            app.exec(sql);
            REQUIRE(wait_for_count(sink, before + 1));
            const auto txn = sink.delivered().at(before);
            REQUIRE(txn.changes.size() == 2);
            return txn;
        };
        // Two writes of one key in one transaction count once.
        const auto twice = two_changes(
            "BEGIN; UPDATE public.other SET note = 'a' WHERE id = 10;"
            " UPDATE public.other SET note = 'b' WHERE id = 10; COMMIT");
        CHECK(column_vector(*twice.changes[1].versions, "note").own == 3);
        // Deleted and inserted again in one transaction: the new row counts on from the old
        // one's columns, once.
        const auto again = two_changes(
            "BEGIN; DELETE FROM public.other WHERE id = 10;"
            " INSERT INTO public.other VALUES (10, 'again'); COMMIT");
        CHECK(again.changes[1].versions->row.own == 4);
        CHECK(column_vector(*again.changes[1].versions, "id").own == 2);
        CHECK(column_vector(*again.changes[1].versions, "note").own == 4);
    }

    TEST_CASE("an application role can neither switch version tracking off nor forge versions") {
        VersionedCapture versioned;
        Bridge& bridge = versioned.bridge;
        RecordingSink& sink = versioned.sink;
        // An application's role: its table, nothing of pgbridge's.
        auto app = bridge.scratch.admin(0);
        const std::string role = "app_" + bridge.scratch.name();
        app.exec("CREATE ROLE " + role + " NOLOGIN");
        app.exec("GRANT SELECT, INSERT, UPDATE, DELETE ON public.other TO " + role);
        app.exec("SET ROLE " + role);
        // What used to make the trigger stand aside is just a setting now.
        app.exec("SET pgbridge.applying = 'on'");
        app.exec("INSERT INTO public.other VALUES (2, 'two')");
        // A message in the shape of the old trigger's, claiming the other side's writes seen.
        app.exec(
            "BEGIN; UPDATE public.other SET note = 'deux' WHERE id = 2;"
            " SELECT pg_logical_emit_message(true, 'pgbridge.versions', '{\"table\":"
            " \"public.other\", \"key\": [2], \"row\": [99, 99], \"columns\":"
            " {\"note\": [99, 99]}}'); COMMIT");
        REQUIRE(wait_for_count(sink, 2));
        const auto txns = sink.delivered();
        REQUIRE(txns[1].changes.at(0).versions);
        CHECK(txns[1].changes.at(0).versions->row == VersionVector{2, 0});
        CHECK(column_vector(*txns[1].changes.at(0).versions, "note") == VersionVector{2, 0});
        // The versions themselves are out of its reach.
        CHECK_THROWS(app.exec("UPDATE pgbridge.row_versions SET local_row_writes = 0"));
        CHECK_THROWS(app.exec("DELETE FROM pgbridge.row_versions"));
        CHECK_THROWS(app.exec("SELECT pg_replication_origin_session_setup('pgbridge_x')"));
    }

    TEST_CASE(
        "an update of the primary key travels as the delete of the old key and the insert "
        "of the new one") {
        VersionedCapture versioned;
        Bridge& bridge = versioned.bridge;
        RecordingSink& sink = versioned.sink;
        auto app = bridge.scratch.runtime(0);
        app.exec("INSERT INTO public.other VALUES (5, 'five')");
        app.exec("UPDATE public.other SET id = 6 WHERE id = 5");
        REQUIRE(wait_for_count(sink, 2));
        const auto moved = sink.delivered().at(1);
        REQUIRE(moved.changes.size() == 2);
        CHECK(moved.changes[0].op == ChangeOp::Delete);
        CHECK((*moved.changes[0].old_row)[0].data == "5");
        CHECK(moved.changes[1].op == ChangeOp::Insert);
        CHECK((*moved.changes[1].new_row)[0].data == "6");
        CHECK((*moved.changes[1].new_row)[1].data == "five");
        CHECK(moved.changes[0].versions->row == VersionVector{2, 0});
        CHECK(moved.changes[1].versions->row == VersionVector{1, 0});
    }
    TEST_CASE("the apply shard of a key is the same from captured values and in SQL") {
        // Truncates of a sharded direction find a shard's rows in SQL (key_shard_sql); the
        // publisher routes by the values pgoutput sends (key_shard): both must agree for every
        // kind of key, padded, accented, timestamped or composite.
        const std::string schema = R"(
CREATE TABLE public.keyed (c char(6), t text, ts timestamptz, n numeric(10,3), u uuid,
                           note text UNIQUE, PRIMARY KEY (c, t, ts, n, u));
CREATE TABLE public.single (id bigint PRIMARY KEY, note text);
)";
        ScratchBridge scratch{"keyshard", schema, schema,
                              "[[tables]]\nname = \"public.keyed\"\n"
                              "[[tables]]\nname = \"public.single\"\n"};
        scratch.setup();
        RecordingSink sink(true);
        CaptureThread capture(scratch.capture_options(0), sink);
        REQUIRE(eventually([&] { return capture.stats().streaming.load(); }));
        auto db = scratch.admin(0);
        // Session settings unlike pgbridge's: the values must not depend on them.
        db.exec("SET TimeZone = 'Asia/Kolkata'");
        db.exec("SET DateStyle = 'German, DMY'");
        db.exec(R"(
INSERT INTO public.keyed
SELECT CASE i % 3 WHEN 0 THEN 'ab' WHEN 1 THEN 'äö ' ELSE '' END,
       CASE i % 4 WHEN 0 THEN 'x' || i WHEN 1 THEN '' WHEN 2 THEN 'ünï ✓ ' || i ELSE 'a,b"c' END,
       timestamptz '2026-01-02 03:04:05.678901+00' + i * interval '37 minutes 1.5 seconds',
       i * 1.125 - 30,
       md5(i::text)::uuid,
       'row ' || i
  FROM generate_series(1, 60) AS i;
INSERT INTO public.single SELECT i, 'single ' || i FROM generate_series(-20, 40) AS i;
)");
        const std::uint32_t kShards = 5;
        // As the applier asks: a session with pgbridge's settings (pg/connection.cpp).
        auto applier_session = scratch.admin(0);
        std::map<std::string, std::int64_t> in_sql;
        for (const auto& [table, columns] :
             std::vector<std::pair<std::string, std::vector<std::string>>>{
                 {"public.keyed", {"k.c", "k.t", "k.ts", "k.n", "k.u"}},
                 {"public.single", {"k.id"}}}) {
            const pg::Result r = applier_session.exec(
                "SELECT note, " + key_shard_sql(columns, kShards) + " FROM " + table + " AS k");
            for (int i = 0; i < r.rows(); ++i) {
                in_sql[std::string(r.value(i, 0))] = std::stoll(std::string(r.value(i, 1)));
            }
        }
        REQUIRE(in_sql.size() == 121);
        REQUIRE(wait_for_count(sink, 1));  // one transaction: one multi-statement query
        std::map<std::string, std::uint32_t> captured;
        std::set<std::int64_t> shards_seen;
        for (const auto& txn : sink.delivered()) {
            for (const auto& change : txn.changes) {
                const Row& row = *change.new_row;
                std::vector<std::string_view> key;
                std::string note;
                for (std::size_t i = 0; i < row.size(); ++i) {
                    if (change.table->columns[i].primary_key) {
                        key.push_back(row[i].data);
                    }
                    if (change.table->columns[i].name == "note") {
                        note = row[i].data;
                    }
                }
                captured[note] = key_shard(key, kShards);
            }
        }
        REQUIRE(captured.size() == in_sql.size());
        for (const auto& [note, shard] : captured) {
            CAPTURE(note);
            CHECK(in_sql.at(note) == shard);
            shards_seen.insert(shard);
        }
        CHECK(shards_seen.size() == kShards);
    }
}
