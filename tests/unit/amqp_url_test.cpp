#include <doctest/doctest.h>
#include <fmt/format.h>

#include <pgbridge/config/amqp_url.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/transport/amqp_connection.hpp>

#include "../support/free_port.hpp"

using pgbridge::AmqpUrl;

namespace {
AmqpUrl parse_ok(std::string_view text) {
    std::string error;
    auto url = AmqpUrl::parse(text, &error);
    INFO(error);
    REQUIRE(url);
    return *url;
}
}  // namespace

TEST_CASE("AMQP URLs") {
    auto full = parse_ok("amqp://pgbridge:p%40ss@rabbit.example:5673/%2f");
    CHECK_FALSE(full.tls);
    CHECK(full.user == "pgbridge");
    CHECK(full.password.reveal() == "p@ss");
    CHECK(full.host == "rabbit.example");
    CHECK(full.port == 5673);
    CHECK(full.vhost == "/");
    CHECK(full.redacted() == "amqp://pgbridge:********@rabbit.example:5673/%2F");

    auto tls = parse_ok("amqps://h");
    CHECK(tls.tls);
    CHECK(tls.port == 5671);
    CHECK(tls.user == "guest");
    CHECK(tls.vhost == "/");

    auto vhost = parse_ok("amqp://u@h/crm");
    CHECK(vhost.vhost == "crm");
    CHECK_FALSE(vhost.password_in_url);

    auto ipv6 = parse_ok("amqp://[::1]:5672/");
    CHECK(ipv6.host == "::1");
    CHECK(ipv6.redacted() == "amqp://guest@[::1]:5672/%2F");
}

TEST_CASE("malformed AMQP URLs say what was expected") {
    for (const char* bad :
         {"http://h", "amqp://", "amqp://h:0", "amqp://h:99999", "amqp://h:x", "amqp://h/a/b",
          "amqp://h/%zz", "amqp://h?heartbeat=5", "amqp://@h", "amqp://[::1", "amqp://u:%4@h"}) {
        CAPTURE(bad);
        std::string error;
        CHECK_FALSE(AmqpUrl::parse(bad, &error));
        CHECK_FALSE(error.empty());
    }
}

TEST_CASE("a cluster none of whose nodes answers: one error naming every node tried") {
    pgbridge::transport::AmqpConnectOptions options;
    options.timeout_ms = 2000;
    options.url =
        parse_ok(fmt::format("amqp://pgbridge@127.0.0.1:{}/%2f", pgbridge::test::free_port()));
    // One node: its own error, as without a cluster.
    try {
        pgbridge::transport::AmqpConnection connection(options);
        FAIL("nothing listens there");
    } catch (const pgbridge::Error& e) {
        CHECK(e.kind() == pgbridge::ErrorKind::Broker);
        CHECK(std::string(e.what()).find("cannot connect to RabbitMQ") != std::string::npos);
    }
    options.failover_urls = {
        parse_ok(fmt::format("amqp://pgbridge@127.0.0.1:{}/%2f", pgbridge::test::free_port())),
        parse_ok(fmt::format("amqp://pgbridge@127.0.0.1:{}/%2f", pgbridge::test::free_port()))};
    try {
        pgbridge::transport::AmqpConnection connection(options);
        FAIL("nothing listens there");
    } catch (const pgbridge::Error& e) {
        CHECK(e.kind() == pgbridge::ErrorKind::Broker);
        const std::string what = e.what();
        CHECK(what.find("no node of [rabbitmq] urls takes a connection (3 tried)") !=
              std::string::npos);
        for (const auto& node : {options.url, options.failover_urls[0], options.failover_urls[1]}) {
            CHECK(what.find(fmt::format("127.0.0.1:{}", node.port)) != std::string::npos);
        }
    }
}
