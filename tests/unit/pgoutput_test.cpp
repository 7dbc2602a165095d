// The pgoutput decoder and transaction assembler: fixtures captured from a real PostgreSQL 15
// (tests/fixtures/pgoutput/capture.sh), messages built by hand, and malformed input.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/pgoutput/decoder.hpp>
#include <pgbridge/pgoutput/transaction_assembler.hpp>

#include "../support/fixtures.hpp"

using namespace pgbridge;
using namespace pgbridge::pgoutput;

namespace {

std::vector<std::string> load_fixture(const std::string& name) {
    return test::load_pgoutput_fixture(name);
}

std::vector<SourceTransaction> assemble(const std::vector<std::string>& messages,
                                        TransactionAssembler& assembler) {
    std::vector<SourceTransaction> out;
    for (const auto& m : messages) {
        if (auto txn = assembler.feed(m)) {
            out.push_back(std::move(*txn));
        }
    }
    return out;
}

std::vector<SourceTransaction> assemble(const std::vector<std::string>& messages) {
    TransactionAssembler assembler("a");
    auto out = assemble(messages, assembler);
    CHECK_FALSE(assembler.holds_partial_data());
    return out;
}

std::size_t column_index(const TableInfo& table, const std::string& name) {
    for (std::size_t i = 0; i < table.columns.size(); ++i) {
        if (table.columns[i].name == name) {
            return i;
        }
    }
    FAIL("no column " << name);
    return 0;
}

const Value& column(const ChangeEvent& c, const Row& row, const std::string& name) {
    return row.at(column_index(*c.table, name));
}

Value text(std::string s) {
    return Value{Value::Kind::Text, std::move(s)};
}
const Value kNull{Value::Kind::Null, {}};

// Builds pgoutput messages byte by byte, big-endian, as the server does.
class Bytes {
  public:
    Bytes& u8(std::uint8_t v) {
        s_ += static_cast<char>(v);
        return *this;
    }
    Bytes& ch(char c) { return u8(static_cast<std::uint8_t>(c)); }
    Bytes& u16(std::uint16_t v) { return u8(static_cast<std::uint8_t>(v >> 8)).u8(v & 0xFF); }
    Bytes& u32(std::uint32_t v) { return u16(static_cast<std::uint16_t>(v >> 16)).u16(v & 0xFFFF); }
    Bytes& u64(std::uint64_t v) {
        return u32(static_cast<std::uint32_t>(v >> 32)).u32(v & 0xFFFFFFFFu);
    }
    Bytes& str(const std::string& v) {
        s_ += v;
        s_ += '\0';
        return *this;
    }
    Bytes& text_value(const std::string& v) {
        ch('t').u32(static_cast<std::uint32_t>(v.size()));
        s_ += v;
        return *this;
    }
    const std::string& bytes() const { return s_; }

  private:
    std::string s_;
};

std::string begin_msg(std::uint32_t xid, std::uint64_t final_lsn = 0x100) {
    return Bytes().ch('B').u64(final_lsn).u64(1000000).u32(xid).bytes();
}
std::string commit_msg(std::uint64_t commit_lsn, std::uint64_t end_lsn) {
    return Bytes().ch('C').u8(0).u64(commit_lsn).u64(end_lsn).u64(2000000).bytes();
}
// A two-column relation (id int4 key, note text).
std::string relation_msg(std::uint32_t oid, std::optional<std::uint32_t> xid = {}) {
    Bytes b;
    b.ch('R');
    if (xid) {
        b.u32(*xid);
    }
    return b.u32(oid)
        .str("")  // pg_catalog is sent as the empty string
        .str("t")
        .ch('d')
        .u16(2)
        .u8(1)
        .str("id")
        .u32(23)
        .u32(0xFFFFFFFF)
        .u8(0)
        .str("note")
        .u32(25)
        .u32(0xFFFFFFFF)
        .bytes();
}
std::string insert_msg(std::uint32_t oid, const std::string& id,
                       std::optional<std::uint32_t> xid = {}) {
    Bytes b;
    b.ch('I');
    if (xid) {
        b.u32(*xid);
    }
    return b.u32(oid).ch('N').u16(2).text_value(id).ch('n').bytes();
}

Error protocol_error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Protocol);
        return e;
    }
    FAIL("expected a protocol error");
    return Error(ErrorKind::Internal, "");
}

}  // namespace

TEST_CASE("fixture: every row operation and data type from a real server") {
    const auto txns = assemble(load_fixture("basic.hex"));
    REQUIRE(txns.size() == 6);
    for (std::size_t i = 0; i < txns.size(); ++i) {
        CAPTURE(i);
        CHECK(txns[i].source_side == "a");
        CHECK(txns[i].commit_lsn < txns[i].end_lsn);
        CHECK_FALSE(txns[i].origin);
        CHECK(txns[i].commit_time > 1700000000LL * 1000000);  // a plausible 2023+ time
        if (i > 0) {
            CHECK(txns[i - 1].end_lsn <= txns[i].commit_lsn);
        }
    }

    // INSERT of every type.
    REQUIRE(txns[0].changes.size() == 1);
    const ChangeEvent& insert = txns[0].changes[0];
    CHECK(insert.op == ChangeOp::Insert);
    const TableInfo& table = *insert.table;
    CHECK(table.schema == "public");
    CHECK(table.name == "all_types");
    CHECK(table.replica_identity == 'f');
    REQUIRE(table.columns.size() == 13);
    const std::vector<std::pair<std::string, std::uint32_t>> types{
        {"id", 20},  {"i", 23},   {"n", 1700}, {"t", 25},   {"v", 1043},   {"b", 16},  {"ts", 1184},
        {"d", 1082}, {"u", 2950}, {"j", 3802}, {"raw", 17}, {"arr", 1007}, {"big", 25}};
    for (std::size_t i = 0; i < types.size(); ++i) {
        CAPTURE(i);
        CHECK(table.columns[i].name == types[i].first);
        CHECK(table.columns[i].type_oid == types[i].second);
        CHECK(table.columns[i].key);  // REPLICA IDENTITY FULL flags every column
    }
    CHECK(table.columns[2].type_modifier == ((12 << 16) | 3) + 4);  // numeric(12,3)
    CHECK(table.columns[4].type_modifier == 20 + 4);                // varchar(20)
    const Row& row = *insert.new_row;
    CHECK(column(insert, row, "id") == text("1"));
    CHECK(column(insert, row, "i") == text("-42"));
    CHECK(column(insert, row, "n") == text("12345.678"));
    CHECK(column(insert, row, "t") == text("plain 'quoted' text"));
    CHECK(column(insert, row, "v") == text("varchar"));
    CHECK(column(insert, row, "b") == text("t"));
    CHECK(column(insert, row, "ts") == text("2026-11-25 10:00:00.123456+00"));
    CHECK(column(insert, row, "d") == text("2026-11-25"));
    CHECK(column(insert, row, "u") == text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    CHECK(column(insert, row, "j") == text("{\"k\": [1, 2]}"));
    CHECK(column(insert, row, "raw") == text("\\x00ff10"));
    CHECK(column(insert, row, "arr") == text("{1,NULL,3}"));
    std::string toast;
    for (int i = 0; i < 450; ++i) {
        toast += "toast";
    }
    CHECK(column(insert, row, "big") == text(toast));
    CHECK_FALSE(insert.old_row);

    // INSERT of NULLs.
    const ChangeEvent& nulls = txns[1].changes.at(0);
    CHECK(column(nulls, *nulls.new_row, "id") == text("2"));
    for (std::size_t i = 1; i < 13; ++i) {
        CHECK((*nulls.new_row)[i] == kNull);
    }

    // UPDATE under REPLICA IDENTITY FULL: the whole old row; the untouched TOASTed column is
    // not sent again.
    const ChangeEvent& update = txns[2].changes.at(0);
    CHECK(update.op == ChangeOp::Update);
    REQUIRE(update.old_row);
    CHECK_FALSE(update.old_is_key_only);
    CHECK(column(update, *update.old_row, "t") == text("plain 'quoted' text"));
    CHECK(column(update, *update.old_row, "i") == text("-42"));
    CHECK(column(update, *update.old_row, "big") == text(toast));
    CHECK(column(update, *update.new_row, "t") == text("changed"));
    CHECK(column(update, *update.new_row, "i") == kNull);
    CHECK(column(update, *update.new_row, "big").kind == Value::Kind::UnchangedToast);
    CHECK(update.table == insert.table);  // the same description, shared

    // DELETE: the whole old row.
    const ChangeEvent& del = txns[3].changes.at(0);
    CHECK(del.op == ChangeOp::Delete);
    CHECK_FALSE(del.new_row);
    CHECK_FALSE(del.old_is_key_only);
    CHECK(column(del, *del.old_row, "id") == text("2"));

    // A multi-statement transaction on a default-identity table: the key change sends the old
    // key only; a transactional logical message rides along.
    const SourceTransaction& multi = txns[4];
    REQUIRE(multi.changes.size() == 2);
    CHECK(multi.changes[0].table->name == "keyed");
    CHECK(multi.changes[0].table->replica_identity == 'd');
    const ChangeEvent& key_change = multi.changes[1];
    CHECK(key_change.op == ChangeOp::Update);
    REQUIRE(key_change.old_row);
    CHECK(key_change.old_is_key_only);
    CHECK(column(key_change, *key_change.old_row, "id") == text("10"));
    CHECK(column(key_change, *key_change.old_row, "note") == kNull);  // not part of the key
    CHECK(column(key_change, *key_change.new_row, "id") == text("11"));
    REQUIRE(multi.messages.size() == 1);
    CHECK(multi.messages[0].prefix == "pgbridge-test");
    CHECK(multi.messages[0].content == "hello");

    // TRUNCATE of two tables with options.
    const ChangeEvent& truncate = txns[5].changes.at(0);
    CHECK(truncate.op == ChangeOp::Truncate);
    REQUIRE(truncate.truncated.size() == 2);
    CHECK(truncate.truncate_cascade);
    CHECK(truncate.truncate_restart_identity);
}

TEST_CASE("fixture: a transaction applied under a replication origin is marked as such") {
    const auto txns = assemble(load_fixture("origin.hex"));
    REQUIRE(txns.size() == 2);
    REQUIRE(txns[0].origin);
    CHECK(*txns[0].origin == "pgbridge_fx_from_b");
    CHECK(names::is_pgbridge_origin(*txns[0].origin));
    CHECK(txns[0].origin_lsn == Lsn(0xABCDEF));
    // pg_replication_origin_xact_setup sets the commit time the subscriber sees.
    CHECK(format_timestamp(txns[0].commit_time) == "2026-11-25T12:00:00.000000Z");
    CHECK_FALSE(txns[1].origin);
    CHECK_FALSE(names::is_pgbridge_origin("pg_16384"));
}

TEST_CASE("a transaction of a skipped origin comes out without its changes, undecoded") {
    TransactionAssembler assembler("a");
    assembler.set_skipped_origins(names::is_pgbridge_origin);
    const std::string origin = Bytes().ch('O').u64(0xABCDEF).str("pgbridge_fx_from_b").bytes();
    const std::string malformed_insert = Bytes().ch('I').u32(16400).ch('N').u16(9).bytes();
    // The relation described inside the skipped transaction serves the next one.
    const auto txns = assemble({begin_msg(700), origin, relation_msg(16400), malformed_insert,
                                insert_msg(16400, "1"), commit_msg(0x100, 0x108), begin_msg(701),
                                insert_msg(16400, "2"), commit_msg(0x200, 0x208)},
                               assembler);
    REQUIRE(txns.size() == 2);
    CHECK(*txns[0].origin == "pgbridge_fx_from_b");
    CHECK(txns[0].changes.empty());
    CHECK(txns[0].end_lsn == Lsn(0x108));
    REQUIRE(txns[1].changes.size() == 1);
    CHECK(column(txns[1].changes[0], *txns[1].changes[0].new_row, "id") == text("2"));
    // Another origin (a native subscription's) is decoded as always.
    const std::string other = Bytes().ch('O').u64(0x10).str("pg_16384").bytes();
    const auto decoded = assemble(
        {begin_msg(702), other, insert_msg(16400, "3"), commit_msg(0x300, 0x308)}, assembler);
    REQUIRE(decoded.size() == 1);
    CHECK(decoded[0].changes.size() == 1);
}

TEST_CASE("fixture: streamed transactions (protocol 2) with a subtransaction and a full abort") {
    const auto messages = load_fixture("streamed.hex");
    const auto txns = assemble(messages);
    // The aborted transaction never comes out; the streamed one comes out whole, then the
    // small one committed after the abort.
    REQUIRE(txns.size() == 2);
    const SourceTransaction& big = txns[0];
    CHECK(big.streamed);
    REQUIRE(big.changes.size() == 1000);
    for (std::size_t i = 0; i < big.changes.size(); ++i) {
        const int expected =
            i < 700 ? 1000 + static_cast<int>(i) : 4000 + static_cast<int>(i) - 700;
        const ChangeEvent& c = big.changes[i];
        REQUIRE(column(c, *c.new_row, "id") == text(std::to_string(expected)));
    }
    CHECK_FALSE(txns[1].streamed);
    CHECK(column(txns[1].changes.at(0), *txns[1].changes.at(0).new_row, "id") == text("9999"));

    // Mid-stream the assembler holds partial data, so the capture must not confirm ahead.
    TransactionAssembler assembler("a");
    assembler.feed(messages[0]);
    CHECK(assembler.holds_partial_data());
}

TEST_CASE("hand-built messages: type, binary values, relation in a stream") {
    TransactionAssembler assembler("b");
    CHECK_FALSE(assembler.feed(Bytes().ch('Y').u32(90000).str("public").str("mood").bytes()));
    CHECK(assembler.types().at(90000) == "public.mood");
    CHECK_FALSE(assembler.feed(relation_msg(7)));
    REQUIRE(assembler.find_relation(7) != nullptr);
    CHECK((*assembler.find_relation(7))->schema == "pg_catalog");

    CHECK_FALSE(assembler.feed(begin_msg(5)));
    CHECK(assembler.holds_partial_data());
    const std::string binary =
        Bytes().ch('I').u32(7).ch('N').u16(2).ch('b').u32(4).u32(42).ch('u').bytes();
    CHECK_FALSE(assembler.feed(binary));
    auto txn = assembler.feed(commit_msg(0x200, 0x210));
    REQUIRE(txn);
    CHECK(txn->xid == 5);
    CHECK(txn->end_lsn == Lsn(0x210));
    CHECK(txn->commit_time == from_postgres_time(2000000));
    const Row& row = *txn->changes.at(0).new_row;
    CHECK(row[0].kind == Value::Kind::Binary);
    CHECK(row[0].data == std::string("\0\0\0\x2a", 4));
    CHECK(row[1].kind == Value::Kind::UnchangedToast);

    // A stream block: data messages carry the (sub)transaction id.
    CHECK_FALSE(assembler.feed(Bytes().ch('S').u32(9).u8(1).bytes()));
    CHECK_FALSE(assembler.feed(relation_msg(8, 9)));
    CHECK_FALSE(assembler.feed(insert_msg(8, "1", 9)));
    CHECK_FALSE(assembler.feed(insert_msg(8, "2", 10)));  // subtransaction 10
    CHECK_FALSE(assembler.feed(Bytes().ch('E').bytes()));
    CHECK(assembler.streamed_transactions_open() == 1);
    CHECK_FALSE(assembler.feed(Bytes().ch('A').u32(9).u32(10).bytes()));  // abort subxact 10
    auto streamed =
        assembler.feed(Bytes().ch('c').u32(9).u8(0).u64(0x300).u64(0x310).u64(5).bytes());
    REQUIRE(streamed);
    CHECK(streamed->streamed);
    REQUIRE(streamed->changes.size() == 1);
    CHECK((*streamed->changes[0].new_row)[0] == text("1"));
    CHECK_FALSE(assembler.holds_partial_data());
}

TEST_CASE("a logical message outside any transaction is handed out on its own, in order") {
    TransactionAssembler assembler("a");
    assembler.feed(relation_msg(7));
    // Non-transactional: flags 0, no xid in protocol 1.
    const auto standalone = [](std::uint64_t lsn, const std::string& content) {
        return Bytes()
                   .ch('M')
                   .u8(0)
                   .u64(lsn)
                   .str("pgbridge.versions_wanted")
                   .u32(static_cast<std::uint32_t>(content.size()))
                   .bytes() +
               content;
    };
    CHECK_FALSE(assembler.feed(standalone(0x100, "crm")));
    CHECK_FALSE(assembler.feed(standalone(0x180, "other")));
    CHECK_FALSE(assembler.holds_partial_data());
    auto first = assembler.take_standalone_messages();
    REQUIRE(first.size() == 2);
    CHECK(first[0].lsn == Lsn(0x100));
    CHECK(first[0].prefix == "pgbridge.versions_wanted");
    CHECK(first[0].content == "crm");
    CHECK(first[1].content == "other");
    CHECK(assembler.take_standalone_messages().empty());
    // A transaction around the next one does not take it in.
    CHECK_FALSE(assembler.feed(begin_msg(3, 0x200)));
    CHECK_FALSE(assembler.feed(insert_msg(7, "1")));
    auto txn = assembler.feed(commit_msg(0x200, 0x210));
    REQUIRE(txn);
    CHECK(txn->messages.empty());
    CHECK_FALSE(assembler.feed(standalone(0x220, "crm")));
    CHECK(assembler.take_standalone_messages().size() == 1);
    // A new connection forgets what was not taken.
    CHECK_FALSE(assembler.feed(standalone(0x230, "crm")));
    assembler.reset();
    CHECK(assembler.take_standalone_messages().empty());
}

TEST_CASE("a large transaction comes out in pieces: bounded, in order, messages with them") {
    TransactionAssembler assembler("a");
    constexpr std::size_t kPieceBytes = 10000;
    assembler.set_piece_bytes(kPieceBytes);
    assembler.feed(relation_msg(7));
    const auto message = [](const std::string& prefix, const std::string& content) {
        return Bytes()
                   .ch('M')
                   .u8(1)
                   .u64(0x150)
                   .str(prefix)
                   .u32(static_cast<std::uint32_t>(content.size()))
                   .bytes() +
               content;
    };
    std::vector<SourceTransaction> pieces;
    const auto collect = [&] {
        for (auto& piece : assembler.take_pieces()) {
            pieces.push_back(std::move(piece));
        }
    };
    CHECK_FALSE(assembler.feed(begin_msg(3, 0x200)));
    constexpr int kRows = 1000;
    for (int i = 0; i < kRows; ++i) {
        CHECK_FALSE(assembler.feed(insert_msg(7, std::to_string(i))));
        if (i % 10 == 9) {
            // Whatever its prefix, a logical message is the application's: it stays one,
            // in its place (pgbridge's own versions are capture's business, not the decoder's).
            CHECK_FALSE(assembler.feed(message("pgbridge.versions", std::to_string(i))));
        }
        collect();
    }
    auto last = assembler.feed(commit_msg(0x200, 0x210));
    collect();
    REQUIRE(last);
    CHECK(last->in_pieces);
    CHECK(last->end_lsn == Lsn(0x210));
    pieces.push_back(std::move(*last));
    REQUIRE(pieces.size() > 10);

    std::uint32_t place = 0;
    std::vector<std::string> ids;
    std::vector<std::string> contents;
    for (std::size_t p = 0; p < pieces.size(); ++p) {
        const SourceTransaction& piece = pieces[p];
        CAPTURE(p);
        CHECK(piece.in_pieces);
        CHECK(piece.xid == 3);
        CHECK(piece.commit_lsn == Lsn(0x200));
        CHECK(piece.end_lsn.valid() == (p + 1 == pieces.size()));
        CHECK(piece.first_place == place);
        // Bounded: no piece holds much more than the piece size (its last change tips it).
        CHECK(piece.changes.size() * 192 + piece.messages.size() * 64 < kPieceBytes + 400);
        place += static_cast<std::uint32_t>(piece.changes.size());
        for (const auto& change : piece.changes) {
            ids.push_back((*change.new_row)[0].data);
        }
        for (const auto& m : piece.messages) {
            CHECK(m.prefix == "pgbridge.versions");
            contents.push_back(m.content);
        }
    }
    REQUIRE(ids.size() == kRows);
    REQUIRE(contents.size() == kRows / 10);
    for (int i = 0; i < kRows; ++i) {
        CHECK(ids[static_cast<std::size_t>(i)] == std::to_string(i));
    }
    for (int i = 0; i < kRows / 10; ++i) {
        CHECK(contents[static_cast<std::size_t>(i)] == std::to_string(i * 10 + 9));
    }
    CHECK_FALSE(assembler.holds_partial_data());
}

TEST_CASE("messages out of order are protocol errors naming the problem") {
    TransactionAssembler assembler("a");
    assembler.feed(relation_msg(7));
    CHECK(std::string(protocol_error_of([&] { assembler.feed(insert_msg(7, "1")); }).what())
              .find("outside a transaction") != std::string::npos);
    CHECK(std::string(protocol_error_of([&] { assembler.feed(commit_msg(1, 2)); }).what())
              .find("Commit without Begin") != std::string::npos);
    assembler.feed(begin_msg(1));
    CHECK(std::string(protocol_error_of([&] { assembler.feed(insert_msg(99, "1")); }).what())
              .find("relation oid 99") != std::string::npos);
    const std::string three_columns =
        Bytes().ch('I').u32(7).ch('N').u16(3).ch('n').ch('n').ch('n').bytes();
    const Error mismatch = protocol_error_of([&] { assembler.feed(three_columns); });
    CHECK(std::string(mismatch.what()).find("3 columns, its relation has 2") != std::string::npos);
    CHECK(mismatch.context_value("table") == "pg_catalog.t");
    CHECK(std::string(protocol_error_of([&] { assembler.feed(begin_msg(2)); }).what())
              .find("Begin inside an open transaction") != std::string::npos);
    CHECK_THROWS_AS(assembler.feed(Bytes().ch('E').bytes()), Error);
    CHECK_THROWS_AS(assembler.feed(Bytes().ch('c').u32(77).u8(0).u64(1).u64(2).u64(3).bytes()),
                    Error);
}

TEST_CASE("malformed bytes give a clear error, never a crash") {
    SUBCASE("unknown and two-phase message types") {
        CHECK(protocol_error_of([] { decode_message("Z", false); }).context_value("message_type") ==
              "Z");
        CHECK(std::string(protocol_error_of([] { decode_message("b", false); }).what())
                  .find("two-phase") != std::string::npos);
        CHECK_THROWS_AS(decode_message("", false), Error);
    }
    SUBCASE("every prefix of every real message is rejected as truncated") {
        for (const char* fixture : {"basic.hex", "origin.hex"}) {
            for (const auto& message : load_fixture(fixture)) {
                for (std::size_t length = 0; length < message.size(); ++length) {
                    const std::string prefix = message.substr(0, length);
                    bool threw = false;
                    try {
                        decode_message(prefix, false);
                    } catch (const Error& e) {
                        threw = e.kind() == ErrorKind::Protocol;
                    }
                    if (!threw) {
                        // Only a Stream Stop ('E') or a message whose last field is a string
                        // could decode from a prefix; pgoutput has neither at these lengths.
                        FAIL("prefix of length " << length << " of a '" << message[0]
                                                 << "' message decoded");
                    }
                }
            }
        }
    }
    SUBCASE("trailing bytes are rejected") {
        CHECK(std::string(
                  protocol_error_of([] { decode_message(commit_msg(1, 2) + "x", false); }).what())
                  .find("trailing") != std::string::npos);
    }
    SUBCASE("oversized counts and lengths are refused before allocating") {
        CHECK_THROWS_AS(decode_message(Bytes().ch('I').u32(7).ch('N').u16(5000).bytes(), false),
                        Error);
        CHECK_THROWS_AS(
            decode_message(Bytes().ch('I').u32(7).ch('N').u16(1).ch('t').u32(0x7FFFFFFF).bytes(),
                           false),
            Error);
        CHECK_THROWS_AS(
            decode_message(Bytes().ch('I').u32(7).ch('N').u16(1).ch('t').u32(0xFFFFFFFF).bytes(),
                           false),
            Error);
        CHECK_THROWS_AS(decode_message(Bytes().ch('T').u32(0xFFFFFFFF).u8(0).bytes(), false),
                        Error);
        CHECK_THROWS_AS(
            decode_message(Bytes().ch('M').u8(1).u64(1).str("p").u32(0x80000000).bytes(), false),
            Error);
        CHECK_THROWS_AS(
            decode_message(Bytes().ch('I').u32(7).ch('N').u16(1).ch('x').bytes(), false), Error);
        CHECK_THROWS_AS(decode_message(Bytes().ch('D').u32(7).ch('N').u16(0).bytes(), false),
                        Error);
        CHECK_THROWS_AS(decode_message(Bytes().ch('R').u32(7).str("s").bytes(), false), Error);
    }
    SUBCASE("random garbage and mutated real messages") {
        std::mt19937 rng(20261125);
        auto messages = load_fixture("basic.hex");
        std::uniform_int_distribution<int> byte(0, 255);
        for (int round = 0; round < 20000; ++round) {
            std::string input;
            if (round % 2 == 0) {
                input = messages[static_cast<std::size_t>(round / 2) % messages.size()];
                for (int flips = 0; flips < 3 && !input.empty(); ++flips) {
                    input[static_cast<std::size_t>(rng()) % input.size()] =
                        static_cast<char>(byte(rng));
                }
            } else {
                input.resize(static_cast<std::size_t>(rng() % 64));
                for (auto& c : input) {
                    c = static_cast<char>(byte(rng));
                }
            }
            try {
                decode_message(input, (round % 3) == 0);
            } catch (const Error& e) {
                REQUIRE(e.kind() == ErrorKind::Protocol);
            }
        }
    }
}

TEST_CASE("a time no clock gives is a protocol error, not an overflow (found by fuzzing)") {
    // 0x7fffffffffffffdb microseconds after 2000: adding the Unix epoch offset overflowed int64.
    const std::string far = Bytes().ch('B').u64(0x100).u64(0x7fffffffffffffdbULL).u32(5).bytes();
    const Error e = protocol_error_of([&] { decode_message(far, false); });
    CHECK(e.message().find("commit time 9223372036854775771") != std::string::npos);
    CHECK(e.context_value("offset") == "9");
    CHECK(e.context_value("message_type") == "B");
    // The same for the commit's and a stream commit's time, and for the far past.
    CHECK_THROWS_AS(
        decode_message(Bytes().ch('C').u8(0).u64(1).u64(2).u64(0x7fffffffffffffffULL).bytes(),
                       false),
        Error);
    CHECK_THROWS_AS(
        decode_message(Bytes().ch('c').u32(9).u8(0).u64(1).u64(2).u64(1ULL << 63).bytes(), false),
        Error);
    // The last microsecond of 9999 still decodes; the transaction assembler passes it on.
    const std::int64_t last = kMaxUnixMicros - kPostgresEpochUnixMicros;
    const auto begin = decode_message(
        Bytes().ch('B').u64(0x100).u64(static_cast<std::uint64_t>(last)).u32(5).bytes(), false);
    CHECK(std::get<BeginMessage>(begin).commit_time == kMaxUnixMicros);
    TransactionAssembler assembler("a");
    CHECK_THROWS_AS(assembler.feed(far), Error);
    CHECK_FALSE(assembler.holds_partial_data());
}

TEST_CASE(
    "a text value with a NUL byte is a protocol error (found by fuzzing capture to publish)") {
    // PostgreSQL's text output never holds one; the message format refuses it downstream.
    const std::string nul = Bytes()
                                .ch('I')
                                .u32(7)
                                .ch('N')
                                .u16(2)
                                .text_value("1")
                                .text_value(std::string("a\0b", 3))
                                .bytes();
    const Error e = protocol_error_of([&] { decode_message(nul, false); });
    CHECK(e.message() == "column 2 has a text value with a NUL byte");
    CHECK(e.context_value("offset") == "19");
    // Binary values may hold any byte.
    CHECK_NOTHROW(decode_message(
        Bytes().ch('I').u32(7).ch('N').u16(1).ch('b').u32(3).u8(0x61).u8(0).u8(0x62).bytes(),
        false));
}

TEST_CASE(
    "a relation's replica identity is one PostgreSQL has (found by fuzzing capture to publish)") {
    for (const char identity : {'d', 'n', 'f', 'i'}) {
        const auto m = decode_message(
            Bytes().ch('R').u32(7).str("s").str("t").ch(identity).u16(0).bytes(), false);
        CHECK(std::get<RelationMessage>(m).table.replica_identity == identity);
    }
    // A NUL identity was passed on, and the message format cannot carry it.
    const Error e = protocol_error_of([] {
        decode_message(Bytes().ch('R').u32(7).str("s").str("t").u8(0).u16(0).bytes(), false);
    });
    CHECK(e.message() == "relation s.t has unknown replica identity 0x00");
    CHECK(e.context_value("offset") == "9");
}
