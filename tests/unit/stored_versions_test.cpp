#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <pgbridge/core/error.hpp>
#include <pgbridge/core/stored_versions.hpp>

using namespace pgbridge;

namespace {

StoredColumnVersion entry(VersionWriter writer, UnixMicros time, std::uint64_t n, std::uint64_t s,
                          Lsn local = Lsn(), Lsn applied = Lsn()) {
    StoredColumnVersion v;
    v.last_write.writer = writer;
    v.last_write.remote_time = time;
    v.last_write.local_lsn = local;
    v.local_writes = n;
    v.seen_remote_writes = s;
    v.applied_remote = applied;
    return v;
}

}  // namespace

TEST_SUITE("stored versions") {
    TEST_CASE("every entry pgbridge writes reads back as it was") {
        ColumnVersions columns;
        columns.emplace("", entry(VersionWriter::Local, 1700, 3, 1, Lsn(0x1A)));
        columns.emplace("note", entry(VersionWriter::Remote, 1800, 0, 4, Lsn(), Lsn(0xAB)));
        // A tombstone's entry: counters and the last local write's LSN, no writer.
        columns.emplace("gone", entry(VersionWriter::Unknown, 0, 2, 0, Lsn(0x2B)));
        columns.emplace("with \"quote\"\n\\", entry(VersionWriter::Local, -5, 1, 0, Lsn(0x3C)));
        StoredColumnVersion old_local = entry(VersionWriter::Local, 0, 7, 2);
        old_local.last_write.local_xid = "901";
        columns.emplace("old", old_local);

        const std::string text = column_versions_document(columns);
        CHECK(parse_column_versions(text) == columns);
        // Text jsonb accepts: valid JSON, each entry an object.
        const auto doc = nlohmann::json::parse(text);
        CHECK(doc.size() == columns.size());
        CHECK(doc.at("gone").at("l") == "0/2B");
        CHECK_FALSE(doc.at("gone").contains("w"));
        CHECK_FALSE(doc.at("note").contains("l"));

        const StoredStamp deleted{VersionWriter::Local, {}, 1900, Lsn(0x4D)};
        CHECK(parse_stamp(stamp_document(deleted)) == deleted);
        CHECK(stamp_document(StoredStamp{}) == "{}");
    }

    TEST_CASE(
        "the most common entry becomes the default; a column without one of its own "
        "reads it") {
        const std::vector<std::string> names{"id", "email", "note", "region"};
        const auto same = entry(VersionWriter::Local, 100, 1, 0, Lsn(0x10));
        const auto other = entry(VersionWriter::Remote, 200, 0, 1);
        const ColumnVersions compacted = compact_columns(names, {other, same, same, same});
        REQUIRE(compacted.size() == 2);
        CHECK(compacted.at(std::string(kDefaultColumnEntry)) == same);
        CHECK(compacted.at("id") == other);
        for (const auto& name : names) {
            CHECK(column_entry(compacted, name) == (name == "id" ? other : same));
        }
        // No default when it would stand for one column; none known reads as zero counters.
        const ColumnVersions distinct = compact_columns({"a", "b"}, {same, other});
        CHECK(distinct.size() == 2);
        CHECK(column_entry(ColumnVersions{}, "a") == StoredColumnVersion{});
    }

    TEST_CASE("a negative counter is refused, never read as a huge one") {
        // The counters decide which side saw which writes: a wrapped -1 would claim every
        // write of the other side as seen.
        for (const std::string doc : {R"({"a": {"n": -1}})", R"({"a": {"s": -1}})",
                                      R"({"a": {"n": -9223372036854775808}})"}) {
            CAPTURE(doc);
            CHECK_THROWS_AS(parse_column_versions(doc), Error);
        }
        // The largest counter a document can hold still reads as itself.
        const auto big = parse_column_versions(R"({"a": {"n": 18446744073709551615, "s": 0}})");
        CHECK(big.at("a").local_writes == 18446744073709551615ULL);
        CHECK(big.at("a").seen_remote_writes == 0);
    }
}
