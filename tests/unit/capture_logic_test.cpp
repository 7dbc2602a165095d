// The pure parts of capture: the walsender's CopyBoth framing and the choice of the position
// confirmed to the server.

#include <doctest/doctest.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/core/stored_versions.hpp>
#include <pgbridge/source/feedback_position.hpp>
#include <pgbridge/source/version_keeper.hpp>
#include <pgbridge/source/walsender_protocol.hpp>

using namespace pgbridge;
using namespace pgbridge::source;

namespace {
std::string be64(std::uint64_t v) {
    std::string out;
    for (int shift = 56; shift >= 0; shift -= 8) {
        out += static_cast<char>((v >> shift) & 0xFF);
    }
    return out;
}
}  // namespace

TEST_CASE("XLogData and keepalive framing") {
    const std::string w = "w" + be64(0x16B3748) + be64(0x2000000) + be64(0) + "Bpayload";
    auto data = std::get<XLogData>(parse_stream_message(w));
    CHECK(data.wal_start == Lsn(0x16B3748));
    CHECK(data.server_wal_end == Lsn(0x2000000));
    CHECK(data.send_time == kPostgresEpochUnixMicros);
    CHECK(data.payload == "Bpayload");

    const std::string k = "k" + be64(0x5000) + be64(1) + std::string(1, '\1');
    auto keepalive = std::get<PrimaryKeepalive>(parse_stream_message(k));
    CHECK(keepalive.sent_up_to == Lsn(0x5000));
    CHECK(keepalive.reply_requested);

    CHECK_THROWS_AS(parse_stream_message("w" + be64(1)), Error);                      // truncated
    CHECK_THROWS_AS(parse_stream_message("w" + be64(1) + be64(2) + be64(3)), Error);  // empty
    CHECK_THROWS_AS(parse_stream_message(k + "x"), Error);  // trailing byte
    CHECK_THROWS_AS(parse_stream_message("x"), Error);
    CHECK_THROWS_AS(parse_stream_message(""), Error);
}

TEST_CASE("standby status update layout") {
    const std::string r =
        encode_standby_status(Lsn(0x10), Lsn(0x20), Lsn(0x30), kPostgresEpochUnixMicros + 7, true);
    REQUIRE(r.size() == 34);
    CHECK(r[0] == 'r');
    CHECK(r.substr(1, 8) == be64(0x10));
    CHECK(r.substr(9, 8) == be64(0x20));
    CHECK(r.substr(17, 8) == be64(0x30));
    CHECK(r.substr(25, 8) == be64(7));
    CHECK(r[33] == 1);
}

TEST_CASE("LSN text form round-trips") {
    CHECK(Lsn(0x16B3748).to_string() == "0/16B3748");
    CHECK(Lsn(0x100000000ULL).to_string() == "1/0");
    CHECK(Lsn::parse("1/0") == Lsn(0x100000000ULL));
    CHECK(Lsn::parse("0/16b3748") == Lsn(0x16B3748));
    for (const char* bad : {"", "/", "1/", "/1", "x/1", "1/1/1", "100000000/0", "1 /0"}) {
        CAPTURE(bad);
        CHECK_FALSE(Lsn::parse(bad));
    }
}

TEST_CASE("the confirmed position follows durability, never ahead of it") {
    FeedbackPosition f;
    f.delivered(Lsn(100));
    f.delivered(Lsn(200));
    // Downstream has made nothing durable: nothing may be confirmed.
    CHECK(f.flush_position(Lsn(), false) == Lsn());
    // Durable up to the first transaction only.
    CHECK(f.flush_position(Lsn(100), false) == Lsn(100));
    // A keepalive far ahead does not help while something is in flight.
    f.keepalive(Lsn(900), false);
    CHECK(f.flush_position(Lsn(100), false) == Lsn(100));
    // Once everything delivered is durable, the position follows the server.
    CHECK(f.flush_position(Lsn(200), false) == Lsn(900));
    // It never goes back.
    CHECK(f.flush_position(Lsn(100), false) == Lsn(900));
}

TEST_CASE("skipped (echo) transactions and idle periods advance the slot") {
    FeedbackPosition f;
    f.skipped(Lsn(50));
    CHECK(f.flush_position(Lsn(), false) == Lsn(50));
    f.keepalive(Lsn(80), false);
    CHECK(f.flush_position(Lsn(), false) == Lsn(80));
    CHECK(f.resume_position() == Lsn(50));
}

TEST_CASE("a half-received transaction pins the position") {
    FeedbackPosition f;
    f.delivered(Lsn(100));
    // The keepalive arrives while a transaction is half received: its position may be past
    // that transaction's commit, so it must not count.
    f.keepalive(Lsn(500), true);
    CHECK(f.flush_position(Lsn(100), false) == Lsn(100));
    // ... and the same holds while the data is partial at reporting time.
    f.keepalive(Lsn(600), false);
    CHECK(f.flush_position(Lsn(100), true) == Lsn(100));
    CHECK(f.flush_position(Lsn(100), false) == Lsn(600));
}

TEST_CASE("rewind after a downstream failure resumes from the durable position") {
    FeedbackPosition f;
    f.delivered(Lsn(100));
    f.delivered(Lsn(200));
    f.delivered(Lsn(300));
    CHECK(f.flush_position(Lsn(100), false) == Lsn(100));
    f.rewind_to(Lsn(100));
    CHECK(f.resume_position() == Lsn(100));
    // Redelivered after the rewind, then durable.
    f.delivered(Lsn(200));
    CHECK(f.flush_position(Lsn(200), false) == Lsn(200));
}

TEST_CASE("a stored tombstone the keeper cannot read stays a tombstone") {
    ColumnVersions columns;
    StoredColumnVersion counted;
    counted.local_writes = 3;
    columns.emplace("", counted);
    const std::string columns_doc = column_versions_document(columns);
    const StoredStamp stamp{VersionWriter::Local, {}, 1900, Lsn(0x4D)};
    const std::string deleted_doc = stamp_document(stamp);

    const StoredDocuments good = read_stored_documents(columns_doc, deleted_doc);
    CHECK(good.columns == columns);
    CHECK(good.deleted == stamp);
    CHECK(good.malformed.empty());
    // SQL NULL: the key is not deleted.
    CHECK_FALSE(read_stored_documents(columns_doc, std::nullopt).deleted);

    // jsonb that is not a stamp (JSON null is not SQL NULL): still deleted, writer and time
    // unknown; the columns beside it are read as they are.
    for (const std::string bad : {"null", "[]", "\"x\"", "1", "{"}) {
        CAPTURE(bad);
        const StoredDocuments read = read_stored_documents(columns_doc, bad);
        REQUIRE(read.deleted);
        CHECK(read.deleted->writer == VersionWriter::Unknown);
        CHECK(read.columns == columns);
        CHECK_FALSE(read.malformed.empty());
    }
    // Malformed columns count anew; the tombstone beside them is kept as it is.
    const StoredDocuments bad_columns = read_stored_documents(R"({"a": 1})", deleted_doc);
    CHECK(bad_columns.columns.empty());
    CHECK(bad_columns.deleted == stamp);
    CHECK_FALSE(bad_columns.malformed.empty());
}
