// The RabbitMQ transport against the real broker of scripts/testenv: fields survive the trip,
// priorities order delivery, a broker restart mid-stream loses nothing, poison is contained.

#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <pgbridge/apply/dead_letter_writer.hpp>
#include <pgbridge/config/object_names.hpp>
#include <pgbridge/transport/consumer.hpp>
#include <pgbridge/transport/message_codec.hpp>
#include <pgbridge/transport/publisher.hpp>

#include "../support/compare.hpp"
#include "../support/fixtures.hpp"
#include "../support/recording_sink.hpp"
#include "../support/test_environment.hpp"

using namespace pgbridge;
using namespace pgbridge::test;
using namespace pgbridge::transport;

namespace {

const std::string kSchema = "CREATE TABLE public.other (id int PRIMARY KEY, note text);";
const std::string kTables = "[[tables]]\nname = \"public.other\"\n";

// Records what it is given; fails every batch that touches a table named `poison`.
class RecordingHandler final : public BatchHandler {
  public:
    void apply(const ChangeBatch& batch) override {
        for (const auto& t : batch.transactions) {
            for (const auto& c : t.changes) {
                if (c.table->name == "poison") {
                    throw Error(ErrorKind::Database, "new row violates check constraint")
                        .with("sqlstate", "23514")
                        .with("table", "public.poison")
                        .with("key", "{\"id\": 1}");
                }
            }
        }
        std::lock_guard lock(mutex_);
        batches_.push_back(batch);
    }
    std::vector<ChangeBatch> batches() const {
        std::lock_guard lock(mutex_);
        return batches_;
    }
    std::size_t count() const {
        std::lock_guard lock(mutex_);
        return batches_.size();
    }
    // Every inserted id of table `other`, with how often it arrived.
    std::map<std::string, int> inserted_ids() const {
        std::lock_guard lock(mutex_);
        std::map<std::string, int> ids;
        for (const auto& b : batches_) {
            for (const auto& t : b.transactions) {
                for (const auto& c : t.changes) {
                    if (c.op == ChangeOp::Insert && c.table->name == "other") {
                        ++ids[(*c.new_row)[0].data];
                    }
                }
            }
        }
        return ids;
    }

  private:
    mutable std::mutex mutex_;
    std::vector<ChangeBatch> batches_;
};

SourceTransaction one_row(const std::string& table, int id, std::uint64_t lsn);

struct Bridge {
    ScratchBridge scratch{"transport", kSchema, kSchema, kTables};

    Bridge() { scratch.setup(); }

    Topology topology() const { return Topology{scratch.name(), {"a", "b"}, 10, false, {}}; }

    PublisherOptions publisher_options() const {
        PublisherOptions o;
        o.connect = amqp_options();
        o.topology = topology();
        o.source_side = "a";
        o.target_side = "b";
        o.batch_size = 100;
        o.priority_of = [](const TableInfo& t) { return t.name == "high" ? 8 : 1; };
        return o;
    }

    // One message per transaction, one row each (ids 0, 1, ...), in the tables given; returns
    // once the broker confirmed them all.
    void publish_one_row_each(const std::vector<std::string>& tables) const {
        PublisherOptions options = publisher_options();
        options.batch_size = 1;
        Publisher publisher(options);
        std::uint64_t lsn = 0x1000;
        for (std::size_t i = 0; i < tables.size(); ++i) {
            publisher.deliver(one_row(tables[i], static_cast<int>(i), lsn += 0x100));
        }
        publisher.flush();
        publisher.settle(std::chrono::seconds(10));
        REQUIRE(publisher.durable_lsn() == Lsn(lsn + 8));
    }

    ConsumerOptions consumer_options() const {
        ConsumerOptions o;
        o.connect = amqp_options();
        o.topology = topology();
        o.target_side = "b";
        o.max_retries = 2;
        o.retry_delay_ms = 200;
        o.reconnect_min = std::chrono::milliseconds(100);
        o.reconnect_max = std::chrono::milliseconds(1000);
        return o;
    }

    pg::ConnectOptions target() const {
        pg::ConnectOptions o;
        o.conninfo = scratch.runtime_conninfo(1);
        o.password = Secret(scratch.password());
        o.side = "b";
        return o;
    }

    source::CaptureOptions capture_options() const { return scratch.capture_options(0); }

    std::uint32_t queue_depth(const std::string& queue) const {
        AmqpConnection broker(amqp_options());
        auto state = broker.inspect_queue(1, queue);
        REQUIRE(state);
        return state->messages;
    }
};

SourceTransaction one_row(const std::string& table, int id, std::uint64_t lsn) {
    auto info = std::make_shared<TableInfo>();
    info->schema = "public";
    info->name = table;
    info->replica_identity = 'f';
    info->columns = {ColumnInfo{"id", 23, -1, true, true}, ColumnInfo{"note", 25, -1, true, false}};
    ChangeEvent c;
    c.op = ChangeOp::Insert;
    c.table = info;
    c.new_row = Row{Value{Value::Kind::Text, std::to_string(id)}, Value{Value::Kind::Text, table}};
    SourceTransaction t;
    t.source_side = "a";
    t.xid = static_cast<std::uint32_t>(id);
    t.commit_lsn = Lsn(lsn);
    t.end_lsn = Lsn(lsn + 8);
    t.commit_time = 1764099601000000 + id;
    t.changes.push_back(std::move(c));
    return t;
}

// A message as the broker holds it, fetched without a consumer.
struct Fetched {
    std::string body;
    int priority = -1;
    std::string content_type;
    std::string message_id;
    AmqpTable headers;
};

std::optional<Fetched> fetch_one(const std::string& queue) {
    AmqpConnection broker(amqp_options());
    // Not acked: closing the connection puts it back.
    auto d = broker.get(1, queue, /*acknowledge=*/false);
    if (!d) {
        return std::nullopt;
    }
    Fetched f;
    f.body = d->body;
    f.priority = d->properties.priority ? *d->properties.priority : -1;
    f.content_type = d->properties.content_type.value_or("");
    f.message_id = d->properties.message_id.value_or("");
    f.headers = d->properties.headers;
    return f;
}

// Publishes a message as a stray publisher would: persistent, with only the properties given.
void publish_raw(const Topology& topology, const std::string& routing_key, const std::string& body,
                 MessageProperties properties = {}) {
    AmqpConnection broker(amqp_options());
    broker.publish(1, OutgoingMessage{names::exchange(topology.bridge), routing_key,
                                      std::move(properties), body});
}

}  // namespace

TEST_SUITE("transport") {
    TEST_CASE("every field of every change survives the trip through RabbitMQ") {
        Bridge bridge;
        auto txns = fixture_transactions("basic.hex", "a");
        for (auto& t : fixture_transactions("origin.hex", "a")) {
            txns.push_back(std::move(t));
        }
        // Binary values and non-UTF-8 text too.
        SourceTransaction odd = one_row("other", 7, txns.back().end_lsn.value + 100);
        (*odd.changes[0].new_row)[1] = Value{Value::Kind::Binary, std::string("\0\xff", 2)};
        txns.push_back(odd);
        SourceTransaction latin1 = one_row("other", 8, odd.end_lsn.value + 100);
        (*latin1.changes[0].new_row)[1] = Value{Value::Kind::Text, "caf\xe9"};
        txns.push_back(latin1);

        Publisher publisher(bridge.publisher_options());
        for (const auto& t : txns) {
            publisher.deliver(t);
        }
        publisher.flush();
        REQUIRE(eventually([&] { return publisher.durable_lsn() == txns.back().end_lsn; }));

        RecordingHandler handler;
        apply::DeadLetterWriter dead_letters(bridge.target());
        RunnerThread<Consumer> consumer(bridge.consumer_options(), handler, dead_letters);
        REQUIRE(eventually([&] {
            std::size_t n = 0;
            for (const auto& b : handler.batches()) {
                n += b.transactions.size();
            }
            return n == txns.size();
        }));
        std::vector<SourceTransaction> received;
        for (const auto& b : handler.batches()) {
            CHECK(b.bridge == bridge.scratch.name());
            CHECK(b.source_side == "a");
            for (const auto& t : b.transactions) {
                received.push_back(t);
            }
        }
        REQUIRE(received.size() == txns.size());
        for (std::size_t i = 0; i < txns.size(); ++i) {
            CAPTURE(i);
            check_same_transaction(txns[i], received[i]);
        }
        CHECK(consumer.failure().empty());
    }

    TEST_CASE("higher-priority messages are delivered first") {
        Bridge bridge;
        std::vector<std::string> tables(5, "low");
        tables.resize(10, "high");
        bridge.publish_one_row_each(tables);
        const std::string queue = names::queue(bridge.scratch.name(), "b");
        REQUIRE(bridge.queue_depth(queue) == 10);

        // The head of the queue, as any consumer sees it.
        auto head = fetch_one(queue);
        REQUIRE(head);
        CHECK(head->priority == 8);
        CHECK(head->content_type == "application/json");
        CHECK(head->message_id.starts_with(bridge.scratch.name() + ":a:"));
        CHECK(head->headers.get_string("x-pgbridge-tables") == "public.high");
        CHECK(head->headers.get_string("x-pgbridge-source") == "a");

        RecordingHandler handler;
        apply::DeadLetterWriter dead_letters(bridge.target());
        ConsumerOptions options = bridge.consumer_options();
        options.prefetch = 1;
        RunnerThread<Consumer> consumer(options, handler, dead_letters);
        REQUIRE(eventually([&] { return handler.count() == 10; }));
        const auto batches = handler.batches();
        for (std::size_t i = 0; i < batches.size(); ++i) {
            CAPTURE(i);
            CHECK(batches[i].transactions.at(0).changes.at(0).table->name ==
                  (i < 5 ? "high" : "low"));
        }
    }

    TEST_CASE("messages waiting together are applied together, in order, each once") {
        Bridge bridge;
        bridge.publish_one_row_each(std::vector<std::string>(30, "other"));
        RecordingHandler handler;
        apply::DeadLetterWriter dead_letters(bridge.target());
        RunnerThread<Consumer> consumer(bridge.consumer_options(), handler, dead_letters);
        REQUIRE(eventually([&] { return handler.inserted_ids().size() == 30; }));
        CHECK(eventually(
            [&] { return bridge.queue_depth(names::queue(bridge.scratch.name(), "b")) == 0; }));
        // Fewer apply calls than messages: one target transaction for many messages.
        CHECK(handler.count() < 30);
        std::vector<std::string> order;
        for (const auto& b : handler.batches()) {
            for (const auto& t : b.transactions) {
                order.push_back((*t.changes.at(0).new_row)[0].data);
            }
        }
        REQUIRE(order.size() == 30);
        for (int i = 0; i < 30; ++i) {
            CHECK(order[static_cast<std::size_t>(i)] == std::to_string(i));
        }
        CHECK(consumer.stats().messages_applied.load() == 30);
    }

    TEST_CASE("a RabbitMQ restart in the middle of a 100,000-change stream loses nothing") {
        Bridge bridge;
        RecordingHandler handler;
        apply::DeadLetterWriter dead_letters(bridge.target());
        Publisher publisher(bridge.publisher_options());
        auto consumer = std::make_unique<RunnerThread<Consumer>>(bridge.consumer_options(), handler,
                                                                 dead_letters);
        auto capture = std::make_unique<CaptureThread>(bridge.capture_options(), publisher);
        REQUIRE(eventually([&] { return capture->stats().streaming.load(); }));

        constexpr int kRows = 100000;
        constexpr int kPerTransaction = 1000;
        // The workload is paced (a transaction every 25 ms, about 4 s in all) so that the
        // broker restart falls in the middle of it, not after it.
        Lsn last_write;
        std::thread writer([&] {
            auto conn = bridge.scratch.admin(0);
            for (int first = 1; first <= kRows; first += kPerTransaction) {
                conn.exec(
                    fmt::format("INSERT INTO public.other SELECT g, 'row ' || g FROM "
                                "generate_series({}, {}) g",
                                first, first + kPerTransaction - 1));
                std::this_thread::sleep_for(std::chrono::milliseconds(25));
            }
            last_write = Lsn::parse(conn.exec("SELECT pg_current_wal_lsn()").value(0, 0)).value();
        });
        // Let part of the stream through, then take the broker away and bring it back.
        REQUIRE(eventually([&] { return handler.inserted_ids().size() >= 20000; },
                           std::chrono::seconds(60)));
        const std::string testenv =
            std::getenv("PGBRIDGE_TESTENV") ? std::getenv("PGBRIDGE_TESTENV") : "";
        REQUIRE(!testenv.empty());
        auto stopped = run_command({testenv, "rabbitmq-stop"}, std::chrono::seconds(60));
        INFO(stopped.err);
        REQUIRE(stopped.exit_code == 0);
        const std::size_t seen_while_down = handler.inserted_ids().size();
        auto started = run_command({testenv, "rabbitmq-start"}, std::chrono::seconds(120));
        INFO(started.err);
        REQUIRE(started.exit_code == 0);
        writer.join();

        REQUIRE(eventually([&] { return handler.inserted_ids().size() == kRows; },
                           std::chrono::seconds(120)));
        const auto ids = handler.inserted_ids();
        for (int id = 1; id <= kRows; ++id) {
            REQUIRE(ids.contains(std::to_string(id)));
        }
        CHECK(seen_while_down < static_cast<std::size_t>(kRows));
        CHECK(capture->stats().reconnects.load() >= 1);
        CHECK(consumer->stats().reconnects.load() >= 1);
        // Once everything is through, the slot catches up past the last write.
        REQUIRE(eventually([&] { return bridge.scratch.confirmed_flush(0) >= last_write; }));
        capture->stop();
        consumer->stop();
        MESSAGE("delivered ", ids.size(), " distinct rows; duplicates after the restart: ", [&] {
            int d = 0;
            for (const auto& [id, n] : ids) {
                d += n - 1;
            }
            return d;
        }());
    }

    TEST_CASE("poison is dead-lettered with its reason while the messages behind it apply") {
        Bridge bridge;
        MessageProperties typed;
        typed.type = std::string(kMessageType);
        publish_raw(bridge.topology(), "b", "this is not a pgbridge message", typed);
        {
            PublisherOptions options = bridge.publisher_options();
            options.batch_size = 1;
            Publisher publisher(options);
            publisher.deliver(one_row("poison", 1, 0x1000));
            for (int i = 2; i <= 6; ++i) {
                publisher.deliver(
                    one_row("other", i, 0x1000 + 0x100 * static_cast<std::uint64_t>(i)));
            }
            publisher.flush();
            publisher.settle(std::chrono::seconds(10));
        }
        RecordingHandler handler;
        apply::DeadLetterWriter dead_letters(bridge.target());
        RunnerThread<Consumer> consumer(bridge.consumer_options(), handler, dead_letters);
        REQUIRE(eventually([&] { return handler.inserted_ids().size() == 5; }));
        REQUIRE(eventually([&] { return consumer.stats().dead_lettered.load() == 2; }));
        CHECK(consumer.stats().retries.load() == 1);  // max_retries = 2: one retry, then dead

        const std::string dead_queue = names::dead_letter_queue(bridge.scratch.name(), "b");
        REQUIRE(eventually([&] { return bridge.queue_depth(dead_queue) == 2; }));
        auto first = fetch_one(dead_queue);
        REQUIRE(first);
        CHECK(first->headers.get_string("x-pgbridge-dead-kind") == "unparseable");
        CHECK(first->body == "this is not a pgbridge message");

        auto db = bridge.scratch.admin(1);
        auto rows = db.exec(
            "SELECT error_kind, attempts, coalesce(table_name, ''), coalesce(key::text, ''),"
            " payload IS NOT NULL, reason FROM pgbridge.dead_letters ORDER BY id");
        REQUIRE(rows.rows() == 2);
        CHECK(rows.value(0, 0) == "unparseable");
        CHECK(rows.value(1, 0) == "database");
        CHECK(rows.value(1, 1) == "2");
        CHECK(rows.value(1, 2) == "public.poison");
        CHECK(rows.value(1, 3) == "{\"id\": 1}");
        CHECK(rows.value(1, 4) == "t");
        CHECK(std::string(rows.value(1, 5)).find("check constraint") != std::string::npos);
        CHECK(bridge.queue_depth(names::queue(bridge.scratch.name(), "b")) == 0);
    }

    TEST_CASE("setup refuses a queue declared with other settings") {
        ScratchBridge scratch("conflicting", kSchema, kSchema, kTables);
        {
            AmqpConnection broker(amqp_options());
            broker.declare_queue(1, names::queue(scratch.name(), "a"),
                                 AmqpTable().set("x-max-priority", std::int64_t{3}));
        }
        auto setup =
            scratch.pgbridge({"setup", "--admin-conninfo", "a=" + scratch.admin_conninfo(0),
                              "--admin-conninfo", "b=" + scratch.admin_conninfo(1)});
        CHECK(setup.exit_code == 1);
        CHECK(setup.err.find("exists with other settings") != std::string::npos);
        CHECK(setup.out.find("setup (databases only)") != std::string::npos);
    }

    TEST_CASE("amqps:// verifies the broker's certificate and carries messages") {
        const char* url_text = std::getenv("PGBRIDGE_TEST_AMQPS_URL");
        const char* tls_dir = std::getenv("PGBRIDGE_TEST_TLS_DIR");
        REQUIRE(url_text != nullptr);
        REQUIRE(tls_dir != nullptr);
        const std::filesystem::path dir(tls_dir);
        AmqpConnectOptions tls = amqp_options();
        std::string error;
        auto url = AmqpUrl::parse(url_text, &error);
        REQUIRE(url);
        url->password = tls.url.password;
        tls.url = *url;
        REQUIRE(tls.url.tls);
        tls.ca_file = dir / "ca.pem";
        tls.cert_file = dir / "client.pem";
        tls.key_file = dir / "client.key";

        // A message through the TLS listener, publisher to consumer.
        Bridge bridge;
        PublisherOptions publisher_options = bridge.publisher_options();
        publisher_options.connect = tls;
        {
            Publisher publisher(publisher_options);
            publisher.deliver(one_row("other", 1, 0x1000));
            publisher.flush();
            publisher.settle(std::chrono::seconds(10));
            REQUIRE(publisher.durable_lsn() == Lsn(0x1008));
        }
        RecordingHandler handler;
        apply::DeadLetterWriter dead_letters(bridge.target());
        ConsumerOptions consumer_options = bridge.consumer_options();
        consumer_options.connect = tls;
        RunnerThread<Consumer> consumer(consumer_options, handler, dead_letters);
        REQUIRE(eventually([&] { return handler.inserted_ids().size() == 1; }));

        // A broker certificate from a CA we do not trust is refused, with a clear error.
        AmqpConnectOptions untrusted = tls;
        untrusted.ca_file = dir / "other-ca.pem";
        try {
            AmqpConnection refused(untrusted);
            FAIL("connected to a broker whose certificate is not trusted");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::Broker);
            CHECK(std::string(e.what()).find("cannot connect") != std::string::npos);
        }
        // Without verification it connects (verify_peer = false, for test setups only).
        untrusted.verify_peer = false;
        CHECK_NOTHROW(AmqpConnection{untrusted});
    }

    // [cluster]: starts the three-node cluster of scripts/testenv cluster-start (20-60 s the
    // first time) and stops and starts one of its nodes (another 20-40 s).
    TEST_CASE(
        "[cluster] a quorum queue keeps a confirmed message when the node it was "
        "published to is lost") {
        using Clock = std::chrono::steady_clock;
        const auto seconds_since = [](Clock::time_point start) {
            return std::chrono::duration<double>(Clock::now() - start).count();
        };
        auto t0 = Clock::now();
        const ClusterEnvironment cluster = start_cluster();
        MESSAGE("cluster-start took ", seconds_since(t0), " s");
        const std::string queue = unique_name("cluster_quorum");
        const std::string body = "kept by the quorum of " + queue;

        {
            AmqpConnection node1(cluster_amqp_options(cluster, 1));
            node1.declare_queue(1, queue, AmqpTable().set("x-queue-type", std::string("quorum")));
            node1.confirm_select(1);
            MessageProperties properties;
            properties.persistent = true;
            node1.publish(1, OutgoingMessage{"", queue, properties, body});
            const auto confirm = node1.next_confirm(std::chrono::seconds(10));
            REQUIRE(confirm);
            CHECK(confirm->delivery_tag == 1);
        }

        std::optional<ClusterNodeOutage> outage;
        t0 = Clock::now();
        outage.emplace(1);
        MESSAGE("cluster-node-stop 1 took ", seconds_since(t0), " s");

        // The queue elects a leader among nodes 2 and 3; until it has, a get may fail.
        std::optional<Delivery> got;
        std::string last_error;
        REQUIRE_MESSAGE(eventually(
                            [&] {
                                try {
                                    AmqpConnection node2(cluster_amqp_options(cluster, 2));
                                    got = node2.get(1, queue, /*acknowledge=*/true);
                                    return got.has_value();
                                } catch (const Error& e) {
                                    last_error = e.what();
                                    return false;
                                }
                            },
                            std::chrono::seconds(60)),
                        "no message from node 2; last error: " << last_error);
        CHECK(got->body == body);
        CHECK(got->properties.persistent);

        t0 = Clock::now();
        outage->end();
        MESSAGE("cluster-node-start 1 took ", seconds_since(t0), " s");
        AmqpConnection node1(cluster_amqp_options(cluster, 1));
        CHECK(node1.delete_queue(1, queue) == 0);
    }
}
