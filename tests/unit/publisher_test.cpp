// The publisher's rules against an in-memory exchange: how transactions are cut into messages,
// and that durable_lsn() (what the capture may confirm to its slot) only moves past what the
// broker confirmed, in order, across nacks and lost connections.

#include <map>
#include <set>

#include <doctest/doctest.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/core/key_shard.hpp>
#include <pgbridge/transport/message_signature.hpp>
#include <pgbridge/transport/publisher.hpp>

#include "../support/memory_exchange.hpp"
#include "../support/source_table.hpp"

using namespace pgbridge;
using namespace pgbridge::transport;

namespace {

// Transaction number n of the source: commit LSN n*0x100, end LSN n*0x100+0x80.
SourceTransaction transaction(std::uint64_t n, const std::shared_ptr<TableInfo>& table,
                              std::size_t changes = 1, std::size_t note_bytes = 8) {
    SourceTransaction t;
    t.source_side = "looma_crm";
    t.xid = static_cast<std::uint32_t>(1000 + n);
    t.commit_lsn = Lsn(n * 0x100);
    t.end_lsn = Lsn(n * 0x100 + 0x80);
    t.commit_time = 1764099600000000 + static_cast<UnixMicros>(n);
    for (std::size_t i = 0; i < changes; ++i) {
        ChangeEvent c;
        c.op = ChangeOp::Insert;
        c.table = table;
        c.new_row = Row{Value{Value::Kind::Text, std::to_string(n * 1000 + i)},
                        Value{Value::Kind::Text, std::string(note_bytes, 'x')}};
        t.changes.push_back(std::move(c));
    }
    return t;
}

struct Fixture {
    test::MemoryExchange exchange;
    std::shared_ptr<TableInfo> talents = test::id_note_table("talents");
    std::shared_ptr<TableInfo> notes = test::id_note_table("notes");

    PublisherOptions options() {
        PublisherOptions o;
        o.topology.bridge = "crm";
        o.topology.sides = {"looma_crm", "zervigo"};
        o.source_side = "looma_crm";
        o.target_side = "zervigo";
        o.batch_size = 100;
        o.connect.timeout_ms = 50;
        o.priority_of = [](const TableInfo& t) { return t.name == "talents" ? 8 : 2; };
        o.open_channel = exchange.opener();
        return o;
    }

    // One transaction a message, confirmed only when the test says so.
    PublisherOptions held_confirms() {
        exchange.auto_confirm = false;
        auto o = options();
        o.batch_size = 1;
        return o;
    }
};

// Where transaction n ends: what the capture may confirm once it is durable.
Lsn end_of(std::uint64_t n) {
    return Lsn(n * 0x100 + 0x80);
}

std::size_t changes_in(const ChangeBatch& batch) {
    std::size_t n = 0;
    for (const auto& t : batch.transactions) {
        n += t.changes.size();
    }
    return n;
}

}  // namespace

TEST_CASE_FIXTURE(Fixture, "transactions travel whole, batch_size changes a message at most") {
    Publisher publisher(options());
    publisher.open();
    CHECK(exchange.channels_opened() == 1);
    for (std::uint64_t n = 1; n <= 250; ++n) {
        publisher.deliver(transaction(n, talents));
    }
    // Two messages are full; the rest waits for more or for a flush.
    REQUIRE(exchange.published().size() == 2);
    publisher.flush();
    REQUIRE(exchange.published().size() == 3);
    std::uint64_t next = 1;
    for (const auto& p : exchange.published()) {
        const ChangeBatch batch = p.batch();
        CHECK(batch.bridge == "crm");
        CHECK(batch.source_side == "looma_crm");
        CHECK_FALSE(batch.chunk);
        for (const auto& t : batch.transactions) {
            CHECK(t.commit_lsn == Lsn(next * 0x100));  // in source order, none twice
            ++next;
        }
        CHECK(p.message.exchange == "pgbridge.crm");
        CHECK(p.message.routing_key == "zervigo");
        CHECK(p.message.properties.priority == 8);
    }
    CHECK(changes_in(exchange.published()[0].batch()) == 100);
    CHECK(changes_in(exchange.published()[2].batch()) == 50);
    CHECK(next == 251);
    CHECK(publisher.durable_lsn() == end_of(250));
    CHECK(publisher.stats().changes_published == 250);

    SUBCASE("a transaction never shares a message past batch_size, nor is cut for it") {
        publisher.deliver(transaction(251, talents, 60));
        publisher.deliver(transaction(252, talents, 60));
        publisher.flush();
        REQUIRE(exchange.published().size() == 5);
        CHECK(changes_in(exchange.published()[3].batch()) == 60);
        CHECK(changes_in(exchange.published()[4].batch()) == 60);
    }
}

TEST_CASE_FIXTURE(Fixture, "a message holds one priority: a change of priority sends what waits") {
    Publisher publisher(options());
    publisher.deliver(transaction(1, talents));
    publisher.deliver(transaction(2, talents));
    publisher.deliver(transaction(3, notes));
    publisher.deliver(transaction(4, talents));
    publisher.flush();
    REQUIRE(exchange.published().size() == 3);
    CHECK(exchange.published()[0].message.properties.priority == 8);
    CHECK(exchange.published()[0].batch().transactions.size() == 2);
    CHECK(exchange.published()[1].message.properties.priority == 2);
    CHECK(exchange.published()[2].message.properties.priority == 8);

    SUBCASE("backfill always travels at priority 0") {
        auto o = options();
        o.kind = BatchKind::Backfill;
        Publisher backfill(o);
        backfill.deliver(transaction(5, talents));
        backfill.flush();
        CHECK(exchange.published().back().message.properties.priority == 0);
        CHECK(exchange.published().back().batch().kind == BatchKind::Backfill);
    }
}

TEST_CASE_FIXTURE(Fixture, "durable_lsn moves only over an unbroken prefix of confirms") {
    exchange.auto_confirm = false;
    auto o = options();
    o.batch_size = 1;  // one transaction a message
    Publisher publisher(o);
    for (std::uint64_t n = 1; n <= 4; ++n) {
        publisher.deliver(transaction(n, talents));
    }
    REQUIRE(exchange.published().size() == 4);
    CHECK_FALSE(publisher.durable_lsn().valid());

    exchange.confirm(2);  // out of order: 1 is still unconfirmed
    CHECK_FALSE(publisher.durable_lsn().valid());
    exchange.confirm(1);
    CHECK(publisher.durable_lsn() == end_of(2));
    exchange.confirm(4, true);  // multiple: 3 and 4
    CHECK(publisher.durable_lsn() == end_of(4));
    CHECK(publisher.stats().messages_confirmed == 4);
}

TEST_CASE_FIXTURE(Fixture, "a nack stops the publisher until the capture rewinds and replays") {
    Publisher publisher(held_confirms());
    for (std::uint64_t n = 1; n <= 3; ++n) {
        publisher.deliver(transaction(n, talents));
    }
    exchange.confirm(1);
    exchange.nack(2);
    exchange.confirm(3);
    // The nack is read with the confirms; durable stops before the refused message.
    CHECK(publisher.durable_lsn() == end_of(1));
    CHECK_THROWS_AS(publisher.deliver(transaction(4, talents)), Error);
    CHECK_THROWS_AS(publisher.flush(), Error);
    CHECK(exchange.published().size() == 3);
    CHECK(publisher.durable_lsn() == end_of(1));

    // The capture rewinds to what is durable and sends the rest again, on a new channel whose
    // tags start at 1: a late confirm of the old channel cannot count for the new one.
    publisher.rewind(publisher.durable_lsn());
    exchange.auto_confirm = true;
    for (std::uint64_t n = 2; n <= 4; ++n) {
        publisher.deliver(transaction(n, talents));
    }
    CHECK(exchange.channels_opened() == 2);
    CHECK(exchange.published().back().delivery_tag == 3);
    CHECK(publisher.durable_lsn() == end_of(4));
    CHECK(publisher.stats().reconnects == 1);
}

TEST_CASE_FIXTURE(Fixture, "a lost connection is reported once, and nothing counts as durable") {
    Publisher publisher(held_confirms());
    publisher.deliver(transaction(1, talents));
    exchange.drop();
    exchange.confirm(1);  // never read: the channel is gone
    CHECK_FALSE(publisher.durable_lsn().valid());
    CHECK(publisher.durable_fd() == -1);
    CHECK_THROWS_AS(publisher.deliver(transaction(2, talents)), Error);

    SUBCASE("while the broker refuses connections, every call fails and nothing is durable") {
        publisher.rewind(Lsn());
        exchange.refuse_connections = true;
        CHECK_THROWS_AS(publisher.open(), Error);
        CHECK_THROWS_AS(publisher.deliver(transaction(1, talents)), Error);
        CHECK_FALSE(publisher.durable_lsn().valid());
    }
}

TEST_CASE_FIXTURE(Fixture, "the window of unconfirmed messages is bounded by max_unconfirmed") {
    auto o = held_confirms();
    o.max_unconfirmed = 3;
    Publisher publisher(o);
    for (std::uint64_t n = 1; n <= 3; ++n) {
        publisher.deliver(transaction(n, talents));
    }
    // A fourth waits for a confirm; none comes within timeout_ms: a broker error, and the
    // message was not written.
    try {
        publisher.deliver(transaction(4, talents));
        FAIL("a full window without confirms must fail");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Broker);
        CHECK(std::string(e.what()).find("confirms") != std::string::npos);
    }
    CHECK(exchange.published().size() == 3);

    SUBCASE("a confirm opens the window") {
        Publisher second(o);
        for (std::uint64_t n = 1; n <= 3; ++n) {
            second.deliver(transaction(n, talents));
        }
        exchange.confirm(1);
        second.deliver(transaction(4, talents));
        CHECK(exchange.published().size() == 3 + 4);
    }
}

TEST_CASE_FIXTURE(Fixture, "a large transaction goes in parts, durable only with its last part") {
    exchange.auto_confirm = false;
    auto o = options();
    o.chunk_bytes = 4096;
    Publisher publisher(o);
    publisher.deliver(transaction(1, talents));
    // 40 changes of about 1 KiB: far more than one part of 4 KiB.
    publisher.deliver(transaction(2, notes, 40, 1000));
    publisher.flush();
    const auto& published = exchange.published();
    REQUIRE(published.size() > 3);
    // What waited is sent first, whole.
    CHECK_FALSE(published[0].batch().chunk);
    std::uint32_t first_change = 0;
    for (std::size_t i = 1; i < published.size(); ++i) {
        CAPTURE(i);
        const ChangeBatch part = published[i].batch();
        REQUIRE(part.chunk);
        CHECK(part.chunk->index == i - 1);
        CHECK(part.chunk->first_change == first_change);
        CHECK(part.chunk->last == (i + 1 == published.size()));
        CHECK(published[i].message.body.size() < 2 * o.chunk_bytes);
        first_change += static_cast<std::uint32_t>(part.transactions.at(0).changes.size());
    }
    CHECK(first_change == 40);
    CHECK(published.back().batch().chunk->count == published.size() - 1);

    // Every part but the last confirmed: the transaction is not durable yet.
    exchange.confirm(published.size() - 1, true);
    CHECK(publisher.durable_lsn() == end_of(1));
    exchange.confirm(published.size());
    CHECK(publisher.durable_lsn() == end_of(2));
}

TEST_CASE_FIXTURE(Fixture, "a change larger than max_message_bytes is a setup error, not a loss") {
    auto o = options();
    o.chunk_bytes = 1024;
    o.max_message_bytes = 2048;
    Publisher publisher(o);
    publisher.deliver(transaction(1, talents));
    try {
        publisher.deliver(transaction(2, notes, 1, 10000));
        FAIL("a change that cannot fit must be refused");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Setup);
        CHECK(std::string(e.what()).find("max_message_bytes") != std::string::npos);
    }
    // Nothing of it was published, and the publisher is not failed: what came before is
    // still confirmed and durable.
    CHECK(publisher.durable_lsn() == end_of(1));
    for (const auto& p : exchange.published()) {
        CHECK(p.batch().first_commit_lsn() != Lsn(2 * 0x100));
    }
}

TEST_CASE_FIXTURE(Fixture, "with signing keys every message is signed by the first key") {
    std::string error;
    auto keys = parse_signing_keys(
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"
        "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=\n",
        &error);
    REQUIRE(keys);
    auto o = options();
    o.signing_keys = *keys;
    Publisher publisher(o);
    publisher.deliver(transaction(1, talents));
    publisher.flush();
    const auto& m = exchange.published().at(0).message;
    const auto header = m.properties.headers.get_string(kSignatureHeader);
    REQUIRE(header);
    CHECK(check_signature(*keys, header, m.properties.type.value_or(""), m.body) ==
          SignatureCheck::Valid);
    // The second key alone does not hold the signer's id.
    const std::vector<SigningKey> second_only{keys->at(1)};
    CHECK(check_signature(second_only, header, m.properties.type.value_or(""), m.body) ==
          SignatureCheck::UnknownKey);
}

TEST_CASE_FIXTURE(Fixture, "sharded: each key's changes go to its shard's queue, in order") {
    auto o = options();
    o.topology.shards = 3;
    o.batch_size = 10;
    o.atomic_of = [](const TableInfo& t) { return t.name == "notes"; };
    Publisher publisher(o);
    // Transaction n writes keys n*1000 and n*1000+1 of talents, and one row of notes.
    for (std::uint64_t n = 1; n <= 40; ++n) {
        SourceTransaction t = transaction(n, talents, 2);
        t.changes.push_back(transaction(n, notes).changes.front());
        publisher.deliver(std::move(t));
    }
    publisher.flush();
    std::map<std::string, std::uint64_t> last_commit_of_key;
    std::size_t changes = 0;
    for (const auto& p : exchange.published()) {
        const ChangeBatch batch = p.batch();
        REQUIRE(batch.shard);
        CHECK(batch.shard->count == 3);
        const std::uint32_t shard = batch.shard->index;
        CHECK(p.message.routing_key == "zervigo.s" + std::to_string(shard + 1));
        CHECK(changes_in(batch) <= 10);
        for (const auto& t : batch.transactions) {
            for (const auto& c : t.changes) {
                const std::string& id = (*c.new_row)[0].data;
                if (c.table->name == "notes") {
                    CHECK(shard == 0);  // atomic_transactions: the first shard
                } else {
                    CHECK(key_shard({id}, 3) == shard);
                }
                // A key's changes in source order (one per key here: never twice).
                CHECK(last_commit_of_key.emplace(c.table->name + id, t.commit_lsn.value).second);
                ++changes;
            }
        }
    }
    CHECK(changes == 120);
    CHECK(publisher.durable_lsn() == end_of(40));
}

TEST_CASE_FIXTURE(Fixture, "sharded: the slot passes a transaction only once every shard has it") {
    exchange.auto_confirm = false;
    auto o = options();
    o.topology.shards = 2;
    Publisher publisher(o);
    // Keys of both shards in one transaction, then a flush: one message per shard.
    SourceTransaction t = transaction(1, talents, 0);
    std::set<std::uint32_t> shards_hit;
    for (int id = 0; shards_hit.size() < 2; ++id) {
        t.changes.push_back(transaction(1, talents).changes.front());
        (*t.changes.back().new_row)[0].data = std::to_string(id);
        shards_hit.insert(key_shard({std::to_string(id)}, 2));
    }
    publisher.deliver(std::move(t));
    publisher.flush();
    REQUIRE(exchange.published().size() == 2);
    // Only the last message of the round carries the position.
    exchange.confirm(1);
    CHECK_FALSE(publisher.durable_lsn().valid());
    exchange.confirm(2);
    CHECK(publisher.durable_lsn() == end_of(1));

    SUBCASE("confirmed in the other order, the same") {
        SourceTransaction u = transaction(2, talents, 0);
        u.changes = transaction(1, talents, 0).changes;
        for (int id = 0; id < 20; ++id) {
            u.changes.push_back(transaction(2, talents).changes.front());
            (*u.changes.back().new_row)[0].data = std::to_string(id);
        }
        publisher.deliver(std::move(u));
        publisher.flush();
        REQUIRE(exchange.published().size() == 4);
        exchange.confirm(4);
        CHECK(publisher.durable_lsn() == end_of(1));
        exchange.confirm(3);
        CHECK(publisher.durable_lsn() == end_of(2));
    }
}

TEST_CASE_FIXTURE(Fixture,
                  "sharded: a transaction without changes, a verify fence, reaches every shard") {
    auto o = options();
    o.topology.shards = 3;
    Publisher publisher(o);
    publisher.deliver(transaction(1, talents, 0));
    publisher.flush();
    REQUIRE(exchange.published().size() == 3);
    std::set<std::string> keys;
    for (const auto& p : exchange.published()) {
        keys.insert(p.message.routing_key);
        CHECK(p.batch().transactions.at(0).end_lsn == end_of(1));
    }
    CHECK(keys == std::set<std::string>{"zervigo.s1", "zervigo.s2", "zervigo.s3"});
}

TEST_CASE_FIXTURE(Fixture,
                  "sharded: a large transaction goes in parts per shard, each shard ends it") {
    exchange.auto_confirm = false;
    auto o = options();
    o.topology.shards = 3;
    o.chunk_bytes = 4096;
    Publisher publisher(o);
    // 300 changes of ~100 bytes: over chunk_bytes, so in parts.
    publisher.deliver(transaction(1, talents, 300, 100));
    publisher.flush();
    std::map<std::uint32_t, std::vector<ChangeBatch>> parts;
    for (const auto& p : exchange.published()) {
        const ChangeBatch batch = p.batch();
        REQUIRE(batch.chunk);
        REQUIRE(batch.shard);
        CHECK(p.message.routing_key == "zervigo.s" + std::to_string(batch.shard->index + 1));
        parts[batch.shard->index].push_back(batch);
    }
    REQUIRE(parts.size() == 3);
    std::size_t changes = 0;
    for (const auto& [shard, list] : parts) {
        CAPTURE(shard);
        std::uint32_t next_first = 0;
        for (std::size_t i = 0; i < list.size(); ++i) {
            const ChunkInfo& chunk = *list[i].chunk;
            CHECK(chunk.index == i);  // each shard numbers its parts from 0
            CHECK(chunk.first_change == next_first);
            CHECK(chunk.last == (i + 1 == list.size()));
            next_first += static_cast<std::uint32_t>(changes_in(list[i]));
            for (const auto& c : list[i].transactions[0].changes) {
                CHECK(key_shard({(*c.new_row)[0].data}, 3) == shard);
            }
        }
        CHECK(list.back().chunk->count == list.size());
        CHECK(list.back().transactions[0].end_lsn == end_of(1));
        changes += next_first;
    }
    CHECK(changes == 300);
    // Durable only when the very last part (of the last shard) is confirmed, after the rest.
    const std::uint64_t published = exchange.published().size();
    exchange.confirm(published - 1, true);
    CHECK_FALSE(publisher.durable_lsn().valid());
    exchange.confirm(published);
    CHECK(publisher.durable_lsn() == end_of(1));
}
