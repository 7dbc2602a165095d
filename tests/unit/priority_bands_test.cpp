// Priorities on quorum queues (no x-max-priority on RabbitMQ 3.x): the band a message is routed
// to, the queues a consumer drains, and that a higher band's delivery is handed on first.

#include <deque>

#include <doctest/doctest.h>

#include <pgbridge/transport/banded_receiver.hpp>
#include <pgbridge/transport/topology.hpp>

using namespace pgbridge;
using namespace pgbridge::transport;

TEST_CASE("a message's priority picks its band's queue; backfill the lowest") {
    const Topology quorum{"crm", {"looma_crm", "zervigo"}, 10, true, {8, 3}};
    CHECK(quorum.change_queues("zervigo") == std::vector<std::string>{"pgbridge.crm.to.zervigo.p8",
                                                                      "pgbridge.crm.to.zervigo.p3",
                                                                      "pgbridge.crm.to.zervigo"});
    CHECK(quorum.routing_key("zervigo", 10) == "zervigo.p8");
    CHECK(quorum.routing_key("zervigo", 8) == "zervigo.p8");
    CHECK(quorum.routing_key("zervigo", 7) == "zervigo.p3");
    CHECK(quorum.routing_key("zervigo", 3) == "zervigo.p3");
    CHECK(quorum.routing_key("zervigo", 2) == "zervigo");
    CHECK(quorum.routing_key("zervigo", 0) == "zervigo");

    // Classic queues: one priority queue, one routing key, as before bands existed.
    const Topology classic{"crm", {"looma_crm", "zervigo"}, 10, false, {}};
    CHECK(classic.change_queues("looma_crm") ==
          std::vector<std::string>{"pgbridge.crm.to.looma_crm"});
    CHECK(classic.routing_key("looma_crm", 9) == "looma_crm");
}

namespace {

Delivery delivery(const std::string& tag, const std::string& body) {
    Delivery d;
    d.consumer_tag = tag;
    d.body = body;
    d.body_size = body.size();
    return d;
}

// What the connection has received, in arrival order; `waited` counts reads that would block.
struct ScriptedConnection {
    std::deque<Delivery> arrived;
    int waited = 0;
    BandedReceiver::Read reader() {
        return [this](std::chrono::milliseconds wait) -> std::optional<Delivery> {
            if (arrived.empty()) {
                waited += wait.count() > 0 ? 1 : 0;
                return std::nullopt;
            }
            Delivery d = std::move(arrived.front());
            arrived.pop_front();
            return d;
        };
    }
};

}  // namespace

TEST_CASE("what has arrived is handed on highest band first, each band in its order") {
    ScriptedConnection connection;
    BandedReceiver receiver({"high", "mid", "low"}, 1 << 20, connection.reader());
    for (const auto& [tag, body] :
         std::vector<std::pair<std::string, std::string>>{{"low", "l1"},
                                                          {"mid", "m1"},
                                                          {"low", "l2"},
                                                          {"high", "h1"},
                                                          {"mid", "m2"},
                                                          {"high", "h2"}}) {
        connection.arrived.push_back(delivery(tag, body));
    }
    std::vector<std::string> order;
    while (auto d = receiver.receive(std::chrono::milliseconds(0))) {
        order.push_back(d->body);
    }
    CHECK(order == std::vector<std::string>{"h1", "h2", "m1", "m2", "l1", "l2"});
    CHECK(receiver.held() == 0);

    SUBCASE("a delivery to an unknown consumer counts as the lowest band") {
        connection.arrived.push_back(delivery("other", "o1"));
        connection.arrived.push_back(delivery("mid", "m3"));
        CHECK(receiver.receive(std::chrono::milliseconds(0))->body == "m3");
        CHECK(receiver.receive(std::chrono::milliseconds(0))->body == "o1");
    }
    SUBCASE("with nothing held, it waits for the connection") {
        CHECK_FALSE(receiver.receive(std::chrono::milliseconds(50)));
        CHECK(connection.waited == 1);
    }
}

TEST_CASE("what is held stays under the byte bound: the rest waits in the connection") {
    ScriptedConnection connection;
    BandedReceiver receiver({"high", "low"}, 10, connection.reader());
    for (int i = 0; i < 5; ++i) {
        connection.arrived.push_back(delivery("low", "llll" + std::to_string(i)));  // 5 bytes
    }
    connection.arrived.push_back(delivery("high", "h"));
    // Two low deliveries reach the bound; the high one is not read yet.
    CHECK(receiver.receive(std::chrono::milliseconds(0))->body == "llll0");
    CHECK(receiver.held() == 1);
    CHECK(connection.arrived.size() == 4);
    // Room again: the rest is read, and the high one overtakes what is still held.
    std::vector<std::string> order;
    while (auto d = receiver.receive(std::chrono::milliseconds(0))) {
        order.push_back(d->body);
    }
    CHECK(order.front() == "llll1");
    CHECK(std::find(order.begin(), order.end(), "h") < order.end() - 1);
    CHECK(order.size() == 5);
}
