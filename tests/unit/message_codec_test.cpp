#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <pgbridge/core/error.hpp>
#include <pgbridge/pgoutput/transaction_assembler.hpp>
#include <pgbridge/transport/message_codec.hpp>

#include "../support/compare.hpp"
#include "../support/fixtures.hpp"

using namespace pgbridge;
using namespace pgbridge::transport;

namespace {

std::vector<SourceTransaction> fixture_transactions(const std::string& name) {
    return test::fixture_transactions(name, "looma_crm");
}

void check_same(const SourceTransaction& a, const SourceTransaction& b) {
    test::check_same_transaction(a, b);
}

ChangeBatch batch_of(std::vector<SourceTransaction> txns) {
    ChangeBatch b;
    b.bridge = "crm";
    b.source_side = "looma_crm";
    b.transactions = std::move(txns);
    return b;
}

}  // namespace

TEST_CASE("a batch survives encode and decode field for field") {
    auto txns = fixture_transactions("basic.hex");
    auto origin = fixture_transactions("origin.hex");
    txns.insert(txns.end(), origin.begin(), origin.end());
    REQUIRE(txns.size() == 8);
    const ChangeBatch batch = batch_of(txns);
    const ChangeBatch decoded = decode_body(encode_body(batch));
    CHECK(decoded.bridge == "crm");
    CHECK(decoded.source_side == "looma_crm");
    CHECK(decoded.kind == BatchKind::Live);
    REQUIRE(decoded.transactions.size() == txns.size());
    for (std::size_t i = 0; i < txns.size(); ++i) {
        CAPTURE(i);
        check_same(txns[i], decoded.transactions[i]);
    }
    // Changes of one table share one decoded description, as they did before encoding.
    CHECK(decoded.transactions[0].changes[0].table == decoded.transactions[2].changes[0].table);
}

TEST_CASE("NULL, unchanged TOAST, binary and non-UTF-8 text values round-trip") {
    auto table = std::make_shared<TableInfo>();
    table->schema = "public";
    table->name = "t";
    table->replica_identity = 'f';
    for (const char* name : {"a", "b", "c", "d", "e", "f"}) {
        table->columns.push_back(ColumnInfo{name, 25, -1, true, false});
    }
    ChangeEvent c;
    c.op = ChangeOp::Update;
    c.table = table;
    const Row row{Value{Value::Kind::Null, {}},
                  Value{Value::Kind::UnchangedToast, {}},
                  Value{Value::Kind::Binary, std::string("\0\x01\xff\x80", 4)},
                  Value{Value::Kind::Text, "caf\xc3\xa9 \xe2\x9c\x93"},
                  Value{Value::Kind::Text, "latin1 caf\xe9"},
                  Value{Value::Kind::Text, ""}};
    c.old_row = row;
    c.new_row = row;
    c.versions = RowVersions{VersionVector{7, 3}, {{"a", {1, 0}}, {"f", {4, 2}}}};
    SourceTransaction t;
    t.source_side = "looma_crm";
    t.xid = 42;
    t.commit_lsn = Lsn(0x100);
    t.end_lsn = Lsn(0x180);
    t.commit_time = 1764099601123456;
    t.changes.push_back(c);
    ChangeBatch batch = batch_of({t});
    batch.kind = BatchKind::Backfill;
    const std::string body = encode_body(batch);
    CHECK(nlohmann::json::parse(body)["transactions"][0]["changes"][0]["new"][4].contains(
        "text_base64"));
    const ChangeBatch decoded = decode_body(body);
    CHECK(decoded.kind == BatchKind::Backfill);
    check_same(t, decoded.transactions.at(0));
}

TEST_CASE("the body is the JSON a document with sorted keys prints, escapes included") {
    auto txns = fixture_transactions("basic.hex");
    auto origin = fixture_transactions("origin.hex");
    txns.insert(txns.end(), origin.begin(), origin.end());
    // Text that JSON must escape, and text it must not.
    auto& change = txns.at(0).changes.at(0);
    REQUIRE(change.new_row);
    change.new_row->at(1) =
        Value{Value::Kind::Text, std::string("q\"b\\s/\b\f\n\r\t\x01\x1f\x7f \xc3\xa9", 17)};
    change.versions = RowVersions{VersionVector{2, 1}, {{"", {1, 0}}, {"na\"me", {3, 2}}}};
    ChangeBatch batch = batch_of(txns);
    const std::string body = encode_body(batch);
    CHECK(nlohmann::json::parse(body).dump() == body);
    const ChangeBatch decoded = decode_body(body);
    // A part of a large transaction, with versions of changes of earlier parts.
    batch.transactions.resize(1);
    batch.transactions[0].late_versions.push_back(
        PlacedVersions{4, RowVersions{VersionVector{1, 0}, {{"id", {1, 0}}}}});
    batch.chunk = ChunkInfo{3, 120, true, 4};
    const std::string part = encode_body(batch);
    CHECK(nlohmann::json::parse(part).dump() == part);
    CHECK(decode_body(part).transactions.at(0).late_versions.at(0).place == 4);
    check_same(txns.at(0), decoded.transactions.at(0));
}

TEST_CASE("headers name the batch without parsing the body") {
    auto txns = fixture_transactions("basic.hex");
    const ChangeBatch batch = batch_of({txns[0], txns[4]});
    const auto headers = message_headers(batch);
    auto header = [&](const std::string& key) {
        for (const auto& [k, v] : headers) {
            if (k == key) {
                return v;
            }
        }
        FAIL("no header " << key);
        return std::string();
    };
    CHECK(header("x-pgbridge-version") == "1");
    CHECK(header("x-pgbridge-first-lsn") == txns[0].commit_lsn.to_string());
    CHECK(header("x-pgbridge-last-lsn") == txns[4].end_lsn.to_string());
    CHECK(header("x-pgbridge-tables") == "public.all_types,public.keyed");
    CHECK(header("x-pgbridge-changes") == "3");
    CHECK(header("x-pgbridge-kind") == "live");
    CHECK(message_id(batch) == "crm:looma_crm:" + txns[4].end_lsn.to_string());
}

TEST_CASE("malformed messages are protocol errors naming the field") {
    const std::string good = encode_body(batch_of(fixture_transactions("origin.hex")));
    auto error_of = [](const std::string& body) {
        try {
            decode_body(body);
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::Protocol);
            return std::string(e.what());
        }
        FAIL("decoded: " << body.substr(0, 80));
        return std::string();
    };
    auto mutate = [&](auto&& change) {
        auto j = nlohmann::json::parse(good);
        change(j);
        return j.dump();
    };
    CHECK(error_of("not json").find("not JSON") != std::string::npos);
    CHECK(error_of("[]").find("format") != std::string::npos);
    CHECK(error_of(mutate([](auto& j) { j["version"] = 9; })).find("version 9") !=
          std::string::npos);
    CHECK(error_of(mutate([](auto& j) { j.erase("bridge"); })).find("message.bridge") !=
          std::string::npos);
    CHECK(error_of(mutate([](auto& j) {
              j["transactions"][0]["end_lsn"] = "nope";
          })).find("transactions[0].end_lsn") != std::string::npos);
    CHECK(error_of(mutate([](auto& j) {
              j["transactions"][0]["changes"][0]["rel"] = 9;
          })).find("index into relations") != std::string::npos);
    CHECK(error_of(mutate([](auto& j) {
              j["transactions"][0]["changes"][0]["new"].erase(0);
          })).find("values") != std::string::npos);
    CHECK(error_of(mutate([](auto& j) {
              j["transactions"][0]["changes"][0]["op"] = "upsert";
          })).find(".op") != std::string::npos);
    CHECK(error_of(mutate([](auto& j) {
              j["transactions"][0]["changes"][0]["new"][0] = nlohmann::json{{"binary", "!!"}};
          })).find("base64") != std::string::npos);
    CHECK(error_of(mutate([](auto& j) {
              j["transactions"][0]["commit_time"] = "yesterday";
          })).find("commit_time") != std::string::npos);
    CHECK(error_of(mutate([](auto& j) {
              j["transactions"] = nlohmann::json::array();
          })).find("non-empty") != std::string::npos);
    CHECK(error_of(mutate([](auto& j) {
              j["relations"][0]["columns"][0]["type"] = -1;
          })).find("relations[0].columns[0].type must be in range") != std::string::npos);
    // Fields of the wrong JSON type, numbers beyond any range, NUL in text (libpq would cut
    // it short), ill-formed UTF-8, nesting deeper than any message: errors, never a crash.
    CHECK(error_of(R"({"format": 1})").find("format") != std::string::npos);
    CHECK(error_of("1e400").find("not JSON") != std::string::npos);
    CHECK(error_of(mutate([](auto& j) { j["version"] = 1e300; })).find("version") !=
          std::string::npos);
    CHECK(error_of(mutate([](auto& j) {
              j["bridge"] = nlohmann::json::object();
          })).find("bridge") != std::string::npos);
    CHECK(error_of(mutate([](auto& j) {
              j["transactions"][0]["changes"][0]["new"][0] = std::string("a\0b", 3);
          })).find("transactions[0].changes[0].new[0] must be text without NUL") !=
          std::string::npos);
    CHECK(error_of(mutate([](auto& j) {
              j["relations"][0]["name"] = std::string("t\0", 2);
          })).find("relations[0].name must be text without NUL") != std::string::npos);
    CHECK(error_of(std::string("{\"format\": \"\xff\"}")).find("not JSON") != std::string::npos);
    CHECK(error_of(std::string(100, '[')).find("nested") != std::string::npos);
    // An error never quotes the body's bytes: they may be row values.
    CHECK(error_of("{\"secret-value\" oops}").find("secret") == std::string::npos);
    // Every truncation of a real body fails cleanly.
    for (std::size_t n = 0; n < good.size(); n += 7) {
        CHECK_THROWS_AS(decode_body(good.substr(0, n)), Error);
    }
}

TEST_CASE("a part of a large transaction round-trips, and is refused where it does not fit") {
    auto txns = fixture_transactions("basic.hex");
    ChangeBatch part = batch_of({txns.front()});
    part.chunk = ChunkInfo{3, 300, true, 4};
    const std::string body = encode_body(part);
    CHECK(nlohmann::json::parse(body)["version"] == kChunkFormatVersion);
    const ChangeBatch decoded = decode_body(body);
    REQUIRE(decoded.chunk);
    CHECK(*decoded.chunk == *part.chunk);
    check_same(decoded.transactions.front(), part.transactions.front());
    CHECK(message_id(part) == "crm:looma_crm:" + part.first_commit_lsn().to_string() + ":part3");

    auto refused = [](nlohmann::json j) { CHECK_THROWS_AS(decode_body(j.dump()), Error); };
    auto j = nlohmann::json::parse(body);
    refused([&] {
        auto k = j;
        k.erase("chunk");
        return k;
    }());
    refused([&] {
        auto k = j;
        k["version"] = 1;
        return k;
    }());
    refused([&] {
        auto k = j;
        k["chunk"]["count"] = 9;  // the last part says how many there are: index + 1
        return k;
    }());
    refused([&] {
        auto k = j;
        k["transactions"].push_back(k["transactions"][0]);
        return k;
    }());
}
