// Changes/s from a real slot through RabbitMQ to a no-op consumer, next to the broker's own
// ceiling measured in the same run: a minimal publisher (confirms, same window) and a minimal
// consumer (ack each) moving messages of the same size through the same kind of queue.
//
//   transport_bench CONNINFO SLOT PUBLICATION UNTIL_LSN CHANGES AMQP_URL AMQP_PASSWORD
//
// PGBRIDGE_BENCH_QUEUE_TYPE=quorum: quorum queues with the default band ([5]) for both.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <sys/resource.h>
#include <thread>

#include <fmt/format.h>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/source/capture.hpp>
#include <pgbridge/transport/consumer.hpp>
#include <pgbridge/transport/publisher.hpp>

using namespace pgbridge;
using namespace pgbridge::transport;
using Clock = std::chrono::steady_clock;

namespace {

class CountingHandler final : public BatchHandler {
  public:
    void apply(const ChangeBatch& batch) override { changes += batch.change_count(); }
    std::atomic<std::uint64_t> changes{0};
};

class NoDeadLetters final : public DeadLetterRecorder {
  public:
    void record(const DeadLetter&) override {
        throw Error(ErrorKind::Internal, "the benchmark produced a dead letter");
    }
};

// Stops the capture once the publisher has made everything up to `until` durable.
class StopAt final : public source::TransactionSink {
  public:
    StopAt(Publisher& publisher, Lsn until) : publisher_(publisher), until_(until) {}
    void set_capture(source::Capture* capture) { capture_ = capture; }
    void deliver(SourceTransaction txn) override {
        const Lsn end = txn.end_lsn;
        publisher_.deliver(std::move(txn));
        if (end >= until_ && capture_ != nullptr) {
            capture_->stop();
        }
    }
    void flush() override { publisher_.flush(); }
    Lsn durable_lsn() override { return publisher_.durable_lsn(); }
    void settle(std::chrono::milliseconds t) override { publisher_.settle(t); }
    void rewind(Lsn from) override { publisher_.rewind(from); }

  private:
    Publisher& publisher_;
    Lsn until_;
    source::Capture* capture_ = nullptr;
};

double peak_rss_mb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

// The broker's ceiling: `count` persistent messages of `size` bytes with confirms (window of
// 256, like the publisher) into a priority queue, consumed and acked one by one.
// The queue type the run measures: classic priority queues, or quorum queues in bands.
Topology bench_topology(std::string bridge, std::vector<std::string> sides) {
    const char* type = std::getenv("PGBRIDGE_BENCH_QUEUE_TYPE");
    const bool quorum = type != nullptr && std::string_view(type) == "quorum";
    return Topology{std::move(bridge), std::move(sides), 10, quorum,
                    quorum ? std::vector<int>{5} : std::vector<int>{}};
}

double broker_ceiling(const AmqpConnectOptions& options, std::uint64_t count, std::size_t size) {
    const Topology topology = bench_topology("bench_ceiling", {"x", "y"});
    {
        AmqpConnection admin(options);
        declare_topology(admin, topology);
    }
    const std::string exchange = names::exchange(topology.bridge);
    const std::string queue = topology.change_queues("y").front();  // the band of priority 5
    const std::string body(size, 'x');
    std::atomic<std::uint64_t> consumed{0};
    const auto start = Clock::now();
    std::thread consumer([&] {
        AmqpConnection c(options);
        c.qos(1, 64);
        c.consume(1, queue);
        while (consumed < count) {
            auto delivery = c.next_delivery(std::chrono::seconds(5), size);
            if (!delivery) {
                break;
            }
            c.ack(1, delivery->delivery_tag);
            ++consumed;
        }
    });
    {
        AmqpConnection p(options);
        p.confirm_select(1);
        OutgoingMessage message{exchange, topology.routing_key("y", 5), {}, body};
        message.properties.priority = 5;
        std::uint64_t confirmed = 0;
        auto read_acks = [&](bool block) {
            auto confirm = p.next_confirm(block ? std::optional(std::chrono::milliseconds(5000))
                                                : std::nullopt);
            while (confirm) {
                confirmed = std::max(confirmed, confirm->delivery_tag);
                confirm = p.next_confirm(std::nullopt);
            }
        };
        for (std::uint64_t i = 1; i <= count; ++i) {
            read_acks(false);
            while (i - confirmed > 256) {
                read_acks(true);
            }
            p.publish(1, message);
        }
        while (confirmed < count) {
            read_acks(true);
        }
    }
    consumer.join();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    AmqpConnection admin(options);
    SetupReport ignored;
    delete_topology(admin, topology, ignored, false);
    return static_cast<double>(consumed.load()) / seconds;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 8) {
        std::cerr << "usage: transport_bench CONNINFO SLOT PUBLICATION UNTIL_LSN CHANGES "
                     "AMQP_URL AMQP_PASSWORD\n";
        return 2;
    }
    log::set_level(log::Level::Warning);
    const Lsn until = Lsn::parse(argv[4]).value();
    const std::uint64_t expected = std::stoull(argv[5]);
    std::string error;
    auto url = AmqpUrl::parse(argv[6], &error);
    if (!url) {
        std::cerr << "AMQP_URL: expected " << error << '\n';
        return 2;
    }
    url->password = Secret(argv[7]);
    AmqpConnectOptions amqp;
    amqp.url = *url;
    const Topology topology = bench_topology("bench_pipeline", {"src", "dst"});

    PublisherOptions publisher_options;
    publisher_options.connect = amqp;
    publisher_options.topology = topology;
    publisher_options.source_side = "src";
    publisher_options.target_side = "dst";
    publisher_options.batch_size = 100;
    publisher_options.priority_of = [](const TableInfo&) { return 5; };
    Publisher publisher(publisher_options);
    StopAt sink(publisher, until);

    source::CaptureOptions capture_options;
    capture_options.side = "src";
    capture_options.connect.conninfo = argv[1];
    capture_options.connect.side = "src";
    capture_options.slot = argv[2];
    capture_options.publication = argv[3];
    capture_options.retry = false;
    source::Capture capture(capture_options, sink);
    sink.set_capture(&capture);

    CountingHandler handler;
    NoDeadLetters dead_letters;
    ConsumerOptions consumer_options;
    consumer_options.connect = amqp;
    consumer_options.topology = topology;
    consumer_options.target_side = "dst";
    Consumer consumer(consumer_options, handler, dead_letters);

    const auto start = Clock::now();
    std::thread consume([&] { consumer.run(); });
    try {
        capture.run();
    } catch (const Error& e) {
        std::cerr << "transport_bench: " << e.what() << '\n';
        consumer.stop();
        consume.join();
        return 1;
    }
    const double published_at = std::chrono::duration<double>(Clock::now() - start).count();
    while (handler.changes < expected && Clock::now() - start < std::chrono::minutes(10)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    consumer.stop();
    consume.join();
    const auto& s = publisher.stats();
    const double messages = static_cast<double>(s.messages_published.load());
    const std::size_t average_size =
        messages > 0
            ? static_cast<std::size_t>(static_cast<double>(s.bytes_published.load()) / messages)
            : 0;
    std::cout << fmt::format(
        "pipeline ({} queues): {} changes in {:.0f} messages (avg {} bytes) slot -> RabbitMQ -> "
        "no-op consumer in {:.2f} s ({:.2f} s to publish): {:.0f} changes/s, {:.0f} messages/s, "
        "peak RSS {:.1f} MB\n",
        topology.quorum ? "quorum" : "classic", handler.changes.load(), messages, average_size,
        seconds, published_at, static_cast<double>(handler.changes.load()) / seconds,
        messages / seconds, peak_rss_mb());
    {
        AmqpConnection admin(amqp);
        SetupReport ignored;
        delete_topology(admin, topology, ignored, false);
    }
    const double ceiling = broker_ceiling(amqp, static_cast<std::uint64_t>(messages),
                                          std::max<std::size_t>(average_size, 1));
    std::cout << fmt::format(
        "broker ceiling: {:.0f} persistent confirmed messages/s of {} bytes through a {} queue "
        "(minimal publisher and consumer); the pipeline reached {:.0f}% of it in messages/s\n",
        ceiling, average_size, topology.quorum ? "quorum" : "classic priority",
        100.0 * (messages / seconds) / ceiling);
    return handler.changes.load() >= expected ? 0 : 1;
}
