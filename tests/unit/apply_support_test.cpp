// The applier's pure parts: the row_versions documents, the SQL it generates, array
// parameters, and the translation of a source change into the target's columns.

#include <doctest/doctest.h>

#include <pgbridge/apply/apply_statements.hpp>
#include <pgbridge/apply/remote_change.hpp>
#include <pgbridge/apply/row_versions.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/error_policy.hpp>
#include <pgbridge/pg/array_literal.hpp>

using namespace pgbridge;
using namespace pgbridge::apply;

namespace {

TargetTable candidates() {
    TargetTable t;
    t.side = "b";
    t.canonical = {"public", "talents"};
    t.name = {"hr", "Candidates \"2\""};
    t.versions_name = "hr.\"Candidates \"\"2\"\"\"";
    t.columns = {{"id", "id", "bigint", true},
                 {"contact_email", "email", "text", false},
                 {"note", "note", "character varying(20)", false},
                 {"region", "region", "text", true}};
    t.key = {0, 3};
    return t;
}

TableConfig talents_config() {
    TableConfig c;
    c.name = {"public", "talents"};
    TableSideConfig b;
    b.name = {"hr", "Candidates \"2\""};
    b.columns = {{"email", "contact_email"}};
    c.sides.emplace("b", b);
    return c;
}

Value text(std::string s) {
    return {Value::Kind::Text, std::move(s)};
}

}  // namespace

TEST_SUITE("apply support") {
    TEST_CASE("array parameters quote every element; NULL stays NULL") {
        CHECK(pg::array_literal({}) == "{}");
        CHECK(pg::array_literal({"a", std::nullopt, "NULL", "x\"y\\z", "{,}"}) ==
              R"({"a",NULL,"NULL","x\"y\\z","{,}"})");
    }

    TEST_CASE("statements quote identifiers and take values as parameters") {
        const TargetTable t = candidates();
        CHECK(
            insert_statement(t, {0, 1, 3}) ==
            R"(INSERT INTO "hr"."Candidates ""2""" ("id", "contact_email", "region") OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3))");
        CHECK(
            update_statement(t, {1, 2}) ==
            R"(UPDATE "hr"."Candidates ""2""" SET "contact_email" = $1, "note" = $2 WHERE "id" = $3 AND "region" = $4)");
        CHECK(delete_statement(t) ==
              R"(DELETE FROM "hr"."Candidates ""2""" WHERE "id" = $1 AND "region" = $2)");
        const std::string lock = lock_rows_statement(t);
        CHECK(lock.find("unnest($1::int4[], $2::text[], $3::text[]) AS k(ord, k0, k1)") !=
              std::string::npos);
        CHECK(
            lock.find(
                R"(WHERE "id" = CAST(k.k0 AS bigint) AND "region" = CAST(k.k1 AS text) FOR UPDATE)") !=
            std::string::npos);
        CHECK(lock_versions_statement(t).find(
                  "jsonb_build_array(CAST(k.k0 AS bigint), CAST(k.k1 AS text))") !=
              std::string::npos);
        CHECK(insert_versions_statement(t).find(
                  "$2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[], "
                  "$8::text[], $9::text[]") != std::string::npos);
        CHECK(update_versions_statement(t).ends_with(
            "WHERE table_name = $1 AND key = jsonb_build_array(CAST($2::text AS bigint), "
            "CAST($3::text AS text))"));
    }

    TEST_CASE("a source change lands on the target's columns through the mapping") {
        const TargetTable target = candidates();
        auto source = std::make_shared<TableInfo>();
        source->schema = "public";
        source->name = "talents";
        source->columns = {{"region", 25}, {"id", 20}, {"email", 25}};  // no "note" on the source
        SourceTransaction txn;
        txn.source_side = "a";
        txn.commit_lsn = Lsn(0x100);
        txn.commit_time = 42;
        ChangeEvent e;
        e.op = ChangeOp::Update;
        e.table = source;
        e.old_row = Row{text("eu"), text("7"), text("old@x")};
        e.new_row = Row{text("eu"), text("7"), text("new@x")};
        e.versions = RowVersions{{3, 1}, {{"email", {2, 1}}}};
        const MappedChange m = map_change(e, txn, talents_config(), target);
        CHECK(m.key == std::vector<std::string>{"7", "eu"});
        REQUIRE(m.change.new_row);
        CHECK((*m.change.new_row)[1] == text("new@x"));
        CHECK((*m.change.new_row)[2].kind == Value::Kind::UnchangedToast);  // never overwritten
        CHECK(m.change.sender_column(1) == 2);
        CHECK(m.change.seen_column(1) == 1);
        CHECK(m.change.sender_row == 3);
        CHECK(m.change.commit_lsn == Lsn(0x100));
        CHECK(key_json(target, m.key) == R"({"id":"7","region":"eu"})");

        // A source column the target lacks is a setup problem named with table and column.
        source->columns.push_back({"extra", 25});
        e.new_row->push_back(text("x"));
        e.old_row->push_back(text("x"));
        try {
            map_change(e, txn, talents_config(), target);
            FAIL("expected an error");
        } catch (const Error& err) {
            CHECK(err.kind() == ErrorKind::Setup);
            CHECK(err.context_value("column") == "extra");
            CHECK(err.context_value("lsn") == "0/100");
            // ...that waits for the target's schema, never spends the message's attempts.
            CHECK(err.context_value("waiting_for") == "column");
            CHECK(classify_apply_failure(err) == FailureAction::WaitInPlace);
        }
        // A column neither side has any more is left out, with its versions.
        const MappedChange without = map_change(e, txn, talents_config(), target, {"extra"});
        REQUIRE(without.change.new_row);
        CHECK(without.change.new_row->size() == target.columns.size());
        CHECK(without.key == m.key);
        // A change without a key value cannot be placed.
        source->columns.pop_back();
        e.new_row->pop_back();
        e.old_row->pop_back();
        (*e.new_row)[1] = Value{};
        CHECK_THROWS_AS(map_change(e, txn, talents_config(), target), Error);
    }

    TEST_CASE("row_versions documents round-trip and keep a local write's transaction id") {
        const auto columns = parse_column_versions(
            R"({"email": {"w": "l", "x": "901", "n": 2, "s": 1},
                "note": {"w": "r", "t": 1700, "n": 0, "s": 4, "m": "0/AB"}})");
        REQUIRE(columns.size() == 2);
        CHECK(columns.at("email").last_write.writer == WriteStamp::Writer::Local);
        CHECK(columns.at("email").last_write.local_xid == "901");
        CHECK(columns.at("note").applied_remote == Lsn(0xAB));
        CHECK(parse_column_versions(column_versions_document(columns))
                  .at("note")
                  .seen_remote_writes == 4);

        StoredRowVersions stored;
        stored.found = true;
        stored.columns = columns;
        stored.local_row_writes = 3;
        const std::vector<std::string> names{"id", "email", "note"};
        const LocalRow local =
            to_local_row(stored, Row{text("1"), text("e"), text("n")}, names, {{"901", 555}});
        CHECK(local.columns[1].last_write == WriteStamp{WriteStamp::Writer::Local, 555});
        CHECK(local.columns[2].last_write == WriteStamp{WriteStamp::Writer::Remote, 1700});
        CHECK(local.columns[0].last_write.writer == WriteStamp::Writer::Unknown);

        // The applier overwrote "note" and kept "email": email keeps its transaction id.
        LocalRow after = local;
        after.columns[2].last_write = {WriteStamp::Writer::Remote, 1800};
        after.columns[2].applied_remote = Lsn(0xCD);
        const StoredRowVersions next = to_stored(after, stored, names);
        CHECK(next.columns.at("email").last_write.local_xid == "901");
        CHECK(next.columns.at("note").last_write.remote_time == 1800);
        CHECK(next.columns.at("note").applied_remote == Lsn(0xCD));

        // A delete keeps the tombstone, and of the columns only their counters: the key's next
        // incarnation counts on from them.
        LocalRow gone = local;
        retire_columns(gone);
        gone.deleted = WriteStamp{WriteStamp::Writer::Remote, 1900};
        gone.deleted_applied_remote = Lsn(0xEF);
        const StoredRowVersions tomb = to_stored(gone, stored, names);
        REQUIRE(tomb.deleted);
        CHECK(parse_stamp(stamp_document(*tomb.deleted)).remote_time == 1900);
        CHECK(tomb.deleted_applied_remote == Lsn(0xEF));
        const auto kept = parse_column_versions(column_versions_document(tomb.columns));
        CHECK(kept.at("email").local_writes == 2);
        CHECK(kept.at("email").last_write.writer == WriteStamp::Writer::Unknown);
        CHECK_FALSE(kept.at("note").applied_remote.valid());
        const LocalRow absent = to_local_row(tomb, std::nullopt, names, {});
        CHECK_FALSE(absent.exists);
        REQUIRE(absent.columns.size() == 3);
        CHECK(absent.columns[1].local_writes == 2);
        CHECK(absent.columns[2].seen_remote_writes == 4);
        // A tombstone written before incarnations were kept has no columns.
        StoredRowVersions old_tomb = tomb;
        old_tomb.columns.clear();
        CHECK(to_local_row(old_tomb, std::nullopt, names, {}).columns.empty());
    }

    TEST_CASE("a row written whole keeps one default entry; a column that differs its own") {
        const std::vector<std::string> names{"id", "email", "note"};
        LocalRow inserted;
        inserted.exists = true;
        for (std::size_t i = 0; i < names.size(); ++i) {
            inserted.columns.push_back(
                LocalColumn{text("v"), {WriteStamp::Writer::Remote, 100}, Lsn(0x10), 0, 1});
        }
        StoredRowVersions stored = to_stored(inserted, StoredRowVersions{}, names);
        REQUIRE(stored.columns.size() == 1);
        CHECK(stored.columns.count(std::string(kDefaultColumnEntry)) == 1);
        // Read back, every column has the default's version.
        const LocalRow back = to_local_row(stored, Row(3, text("v")), names, {});
        CHECK(back.columns[2].last_write == WriteStamp{WriteStamp::Writer::Remote, 100});
        CHECK(back.columns[2].seen_remote_writes == 1);

        // A later change of one column lists that column alone.
        LocalRow updated = back;
        updated.columns[1].last_write = {WriteStamp::Writer::Remote, 200};
        updated.columns[1].applied_remote = Lsn(0x20);
        stored = to_stored(updated, stored, names);
        CHECK(stored.columns.size() == 2);
        CHECK(stored.columns.at("email").applied_remote == Lsn(0x20));
        CHECK(to_local_row(stored, Row(3, text("v")), names, {}).columns[0].applied_remote ==
              Lsn(0x10));
    }

    TEST_CASE("the sender's default entry stands for every column it does not list") {
        const TargetTable target = candidates();
        auto source = std::make_shared<TableInfo>();
        source->schema = "public";
        source->name = "talents";
        source->columns = {{"id", 20}, {"email", 25}, {"note", 25}, {"region", 25}};
        SourceTransaction txn;
        txn.source_side = "a";
        ChangeEvent e;
        e.op = ChangeOp::Insert;
        e.table = source;
        e.new_row = Row{text("1"), text("e"), text("n"), text("eu")};
        e.versions = RowVersions{{1, 0}, {{"", {1, 2}}, {"email", {3, 4}}}};
        const MappedChange m = map_change(e, txn, talents_config(), target);
        CHECK(m.change.sender_column(0) == 1);
        CHECK(m.change.seen_column(2) == 2);
        CHECK(m.change.sender_column(1) == 3);
        CHECK(m.change.seen_column(1) == 4);
    }

    TEST_CASE("malformed row_versions documents are errors, not crashes") {
        CHECK_THROWS_AS(parse_column_versions("not json"), Error);
        CHECK_THROWS_AS(parse_column_versions("[]"), Error);
        CHECK_THROWS_AS(parse_column_versions(R"({"a": 1})"), Error);
        CHECK_THROWS_AS(parse_column_versions(R"({"a": {"n": "x"}})"), Error);
        CHECK_THROWS_AS(parse_stamp("{"), Error);
    }
}
