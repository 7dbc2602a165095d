// The metrics: the endpoint's HTTP handling (what a request asks for, who may read, how a
// client that sends too much is answered) and what the bridge's series say when servers are up
// or down, against a real socket on loopback. HTTPS and the counts of a live bridge are proven
// against `pgbridge run` (integration suite "bridge").

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <pgbridge/cli/progress_bar.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/core/base64.hpp>
#include <pgbridge/core/byte_size.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/metrics/bridge_metrics.hpp>
#include <pgbridge/metrics/bridge_probe.hpp>
#include <pgbridge/metrics/metrics_server.hpp>

#include "../support/small_config.hpp"

using namespace pgbridge;
using namespace pgbridge::metrics;

namespace {

// Sends `request` to 127.0.0.1:port and returns all the server answers before it closes.
std::string exchange(std::uint16_t port, const std::string& request) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    std::size_t sent = 0;
    while (sent < request.size()) {
        const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            break;  // the server may close early (a request too large): read what it said
        }
        sent += static_cast<std::size_t>(n);
    }
    std::string answer;
    char buffer[4096];
    for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) {
        answer.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return answer;
}

std::string status_of(const std::string& answer) {
    return answer.substr(0, answer.find("\r\n"));
}

std::string basic(const std::string& credentials) {
    return "Basic " + base64_encode(credentials);
}

}  // namespace

TEST_SUITE("unit") {
    TEST_CASE(
        "a metrics request: method, path without query, authorization; anything else is "
        "malformed") {
        const auto ok = parse_metrics_request(
            "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAUTHORIZATION:  Basic eDp5 \r\n\r\n");
        CHECK(ok.outcome == MetricsRequest::Outcome::Ok);
        CHECK(ok.method == "GET");
        CHECK(ok.path == "/metrics");
        CHECK(ok.authorization == "Basic eDp5");
        CHECK(parse_metrics_request("GET /metrics HTTP/1.1\r\nHost: a\r\n").outcome ==
              MetricsRequest::Outcome::Incomplete);
        for (const char* bad :
             {"GET\r\n\r\n", "GET /metrics\r\n\r\n", "GET /metrics FTP/1\r\n\r\n",
              "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
              "GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n", " /metrics HTTP/1.1\r\n\r\n",
              "GET /metrics HTTP/1.1\r\nAuthorization: a\r\n"
              "Authorization: b\r\n\r\n"}) {
            CAPTURE(bad);
            CHECK(parse_metrics_request(bad).outcome == MetricsRequest::Outcome::Malformed);
        }
    }

    TEST_CASE("basic auth matches the user and the password exactly, nothing else") {
        const Secret password("s3cret:with colon");
        CHECK(basic_auth_matches(basic("prom:s3cret:with colon"), "prom", password));
        CHECK(basic_auth_matches("basic " + base64_encode("prom:s3cret:with colon"), "prom",
                                 password));
        CHECK_FALSE(basic_auth_matches(basic("prom:s3cret"), "prom", password));
        CHECK_FALSE(basic_auth_matches(basic("prom:s3cret:with colonx"), "prom", password));
        CHECK_FALSE(basic_auth_matches(basic("pro:s3cret:with colon"), "prom", password));
        CHECK_FALSE(basic_auth_matches(basic("prom"), "prom", Secret("")));
        CHECK_FALSE(basic_auth_matches("Bearer " + base64_encode("prom:s3cret:with colon"), "prom",
                                       password));
        CHECK_FALSE(basic_auth_matches("Basic !!!", "prom", password));
        CHECK_FALSE(basic_auth_matches("", "prom", password));
    }

    TEST_CASE("the endpoint answers GET /metrics, asks for credentials first, refuses the rest") {
        MetricsServerOptions options;
        options.listen = "127.0.0.1:0";
        options.user = "prom";
        options.password = Secret("pw");
        int renders = 0;
        MetricsServer server(std::move(options), [&] {
            ++renders;
            return std::string("pgbridge_up 1\n");
        });
        REQUIRE(server.port() != 0);
        const std::string auth = "Authorization: " + basic("prom:pw") + "\r\n";
        const auto ok = exchange(server.port(), "GET /metrics HTTP/1.1\r\n" + auth + "\r\n");
        CHECK(status_of(ok) == "HTTP/1.1 200 OK");
        CHECK(ok.ends_with("\r\n\r\npgbridge_up 1\n"));
        CHECK(ok.find("Content-Length: 14\r\n") != std::string::npos);
        const auto head = exchange(server.port(), "HEAD /metrics HTTP/1.1\r\n" + auth + "\r\n");
        CHECK(status_of(head) == "HTTP/1.1 200 OK");
        CHECK(head.ends_with("\r\n\r\n"));
        const auto anonymous = exchange(server.port(), "GET /metrics HTTP/1.1\r\n\r\n");
        CHECK(status_of(anonymous) == "HTTP/1.1 401 Unauthorized");
        CHECK(anonymous.find("WWW-Authenticate: Basic realm=\"pgbridge\"") != std::string::npos);
        // Which paths exist is not said before the credentials are.
        CHECK(status_of(exchange(server.port(), "GET /other HTTP/1.1\r\n\r\n")) ==
              "HTTP/1.1 401 Unauthorized");
        CHECK(status_of(exchange(server.port(), "GET /other HTTP/1.1\r\n" + auth + "\r\n")) ==
              "HTTP/1.1 404 Not Found");
        CHECK(status_of(exchange(server.port(), "POST /metrics HTTP/1.1\r\n" + auth + "\r\n")) ==
              "HTTP/1.1 405 Method Not Allowed");
        CHECK(status_of(exchange(server.port(), "nonsense\r\n\r\n")) == "HTTP/1.1 400 Bad Request");
        // Headers that never end: answered after 8 KiB, not read on.
        CHECK(status_of(exchange(server.port(),
                                 "GET /metrics HTTP/1.1\r\nX: " + std::string(64 * 1024, 'x'))) ==
              "HTTP/1.1 431 Request Header Fields Too Large");
        CHECK(renders == 2);
    }

    TEST_CASE(
        "an address the endpoint cannot bind, or a certificate it cannot load, is a "
        "configuration error") {
        MetricsServerOptions first;
        first.listen = "127.0.0.1:0";
        MetricsServer taken(std::move(first), [] { return std::string(); });
        MetricsServerOptions second;
        second.listen = "127.0.0.1:" + std::to_string(taken.port());
        try {
            MetricsServer again(std::move(second), [] { return std::string(); });
            FAIL("expected an error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::Config);
            CHECK(std::string(e.what()).find("in use") != std::string::npos);
        }
        MetricsServerOptions tls;
        tls.listen = "127.0.0.1:0";
        tls.cert_file = "/etc/hostname";
        tls.key_file = "/etc/hostname";
        try {
            MetricsServer bad(std::move(tls), [] { return std::string(); });
            FAIL("expected an error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::Config);
            CHECK(std::string(e.what()).find("metrics.cert_file") != std::string::npos);
        }
    }

    TEST_CASE(
        "bridge metrics: build info, every direction's counters from zero, and gauges of "
        "a server that is down dropped rather than kept") {
        const Config config = parse_config(R"([bridge]
name = "crm"
[sides.a]
conninfo = "host=127.0.0.1 dbname=a"
[sides.b]
conninfo = "host=127.0.0.1 dbname=b"
[rabbitmq]
url = "amqp://pgbridge@127.0.0.1:5672/%2f"
[[tables]]
name = "public.notes"
[tables.sides.b]
name = "hr.notes"
)",
                                           "test.toml");
        BridgeMetrics metrics(config);
        auto scrape = [&] {
            const std::string answer = exchange(metrics.port(), "GET /metrics HTTP/1.1\r\n\r\n");
            return answer.substr(answer.find("\r\n\r\n") + 4);
        };
        auto has = [](const std::string& text, const std::string& series) {
            return text.find("\n" + series + " ") != std::string::npos;
        };
        std::string text = scrape();
        INFO(text);
        CHECK(text.find("pgbridge_build_info{bridge=\"crm\",version=\"") != std::string::npos);
        for (const char* direction :
             {R"(bridge="crm",source="a",target="b")", R"(bridge="crm",source="b",target="a")"}) {
            CAPTURE(direction);
            for (const char* counter :
                 {"pgbridge_changes_captured_total", "pgbridge_messages_published_total",
                  "pgbridge_messages_dead_lettered_total", "pgbridge_apply_retries_total",
                  "pgbridge_apply_schema_waits_total", "pgbridge_apply_local_version_waits_total",
                  "pgbridge_apply_latency_seconds_count"}) {
                CHECK(has(text, std::string(counter) + "{" + direction + "}"));
            }
        }
        // Applied, by the target's name of the table and every operation.
        CHECK(has(
            text,
            R"(pgbridge_changes_applied_total{bridge="crm",op="delete",source="a",table="hr.notes",target="b"})"));
        CHECK(has(
            text,
            R"(pgbridge_changes_applied_total{bridge="crm",op="skip",source="b",table="public.notes",target="a"})"));
        CHECK(has(text, R"(pgbridge_copy_rows_total{bridge="crm",side="a"})"));

        BridgeProbe probe;
        probe.sides = {SideProbe{}, SideProbe{}};
        probe.sides[0].side = "a";
        probe.sides[0].reachable = true;
        probe.sides[0].slot_lag_bytes = 4096;
        probe.sides[0].tables_not_copied = 1;
        probe.sides[1].side = "b";
        probe.sides[1].reachable = true;
        probe.sides[1].slot_lag_bytes = 0;
        probe.broker.reachable = true;
        QueueDepth depth;
        depth.ready = 3;
        depth.retrying = 0;
        depth.dead = 1;
        probe.broker.queues = {{"b", depth}, {"a", depth}};
        std::vector<DirectionLag> lag(2);
        lag[0].source = "a";
        lag[0].target = "b";
        lag[0].seconds_behind = 2.5;
        lag[1].source = "b";
        lag[1].target = "a";
        lag[1].seconds_behind = 0;
        metrics.update_probe(probe, lag);
        text = scrape();
        CHECK(has(text, R"(pgbridge_slot_lag_bytes{bridge="crm",side="a"})"));
        CHECK(has(text, R"(pgbridge_copy_tables_left{bridge="crm",side="a"})"));
        CHECK(has(text,
                  R"(pgbridge_queue_messages{bridge="crm",queue="ready",source="a",target="b"})"));
        CHECK(has(text, R"(pgbridge_seconds_behind{bridge="crm",source="a",target="b"})"));

        // Side a and the broker down: what only they can say is gone, their _up gauges say why.
        probe.sides[0].reachable = false;
        probe.broker.reachable = false;
        probe.broker.queues.clear();
        lag[0].seconds_behind.reset();
        metrics.update_probe(probe, lag);
        text = scrape();
        CHECK(has(text, R"(pgbridge_side_up{bridge="crm",side="a"})"));
        CHECK(text.find(R"(pgbridge_side_up{bridge="crm",side="a"} 0)") != std::string::npos);
        CHECK(text.find(R"(pgbridge_broker_up{bridge="crm"} 0)") != std::string::npos);
        CHECK_FALSE(has(text, R"(pgbridge_slot_lag_bytes{bridge="crm",side="a"})"));
        CHECK_FALSE(has(text, R"(pgbridge_copy_tables_left{bridge="crm",side="a"})"));
        CHECK(has(text, R"(pgbridge_slot_lag_bytes{bridge="crm",side="b"})"));
        CHECK(text.find("pgbridge_queue_messages{") == std::string::npos);
        CHECK_FALSE(has(text, R"(pgbridge_seconds_behind{bridge="crm",source="a",target="b"})"));
        CHECK(has(text, R"(pgbridge_seconds_behind{bridge="crm",source="b",target="a"})"));
        // Back up: the series return.
        probe.sides[0].reachable = true;
        probe.broker.reachable = true;
        probe.broker.queues = {{"b", depth}, {"a", depth}};
        metrics.update_probe(probe, lag);
        CHECK(has(scrape(), R"(pgbridge_slot_lag_bytes{bridge="crm",side="a"})"));
    }

    TEST_CASE("a running copy is described with its share, rate and time left, or as stalled") {
        CHECK(describe_copy({"public.notes", 12000, 300000, 4, 1}) ==
              "public.notes: 12,000 of about 300,000 rows (4%), 3,000 rows/s, about 2 min left");
        CHECK(describe_copy({"public.notes", 0, 0, 0, 0}) == "public.notes: 0 of about 0 rows");
        // More rows than the planner thought: never over 100%, no time left.
        CHECK(describe_copy({"t", 1500, 1000, 3, 1}) ==
              "t: 1,500 of about 1,500 rows (100%), 500 rows/s");
        CHECK(describe_copy({"t", 10, 1000, 10, 125}) ==
              "t: 10 of about 1,000 rows (1%), no progress for 2 min: is pgbridge run running?");
    }

    TEST_CASE("a progress bar line: label, bar, share and rows; never past full") {
        CHECK(cli::ProgressBar::line("verify public.notes", 123000, 300000, 10) ==
              "verify public.notes [####------]  41%  123,000 of about 300,000 rows");
        CHECK(cli::ProgressBar::line("verify t", 0, 0, 4) ==
              "verify t [----]   0%  0 of about 0 rows");
        CHECK(cli::ProgressBar::line("verify t", 500, 100, 4) ==
              "verify t [####] 100%  500 of about 500 rows");
        CHECK(format_count(1234567) == "1,234,567");
        CHECK(format_count(999) == "999");
        CHECK(format_count(1000) == "1,000");
    }

    TEST_CASE(
        "seconds behind of a sharded direction: the furthest behind of the shards that wait") {
        const Config config = test::small_config("[engine]\napply_workers = 3\n");
        const UnixMicros now = 1764099600000000;
        constexpr UnixMicros kSecond = 1000000;
        BridgeProbe probe;
        probe.taken_at = now;
        for (const char* side : {"a", "b"}) {
            SideProbe s;
            s.side = side;
            s.reachable = true;
            s.slot_lag_bytes = 10 * 1024 * 1024;
            probe.sides.push_back(s);
        }
        // b applies a's changes: shard 1 idle for 100 s, shard 2 at 5 s with messages waiting,
        // shard 3 at 1 s with none.
        SideProbe& b = probe.sides[1];
        b.shard_commit_times = {now - 100 * kSecond, now - 5 * kSecond, now - kSecond};
        b.applied_commit_time = now - 100 * kSecond;
        QueueDepth to_b;
        to_b.ready = 3;
        to_b.retrying = 0;
        to_b.shard_waiting = {0, 3, 0};
        probe.broker.queues.emplace_back("b", to_b);
        QueueDepth to_a;
        to_a.ready = 0;
        to_a.retrying = 0;
        probe.broker.queues.emplace_back("a", to_a);

        auto a_to_b = [&] {
            for (const auto& d : lag_of(config, probe)) {
                if (d.source == "a") {
                    return d;
                }
            }
            FAIL("no direction a -> b");
            return DirectionLag{};
        };
        CHECK(a_to_b().seconds_behind == doctest::Approx(5.0));
        // Nothing waits, but the slot is behind: as far as the newest shard got.
        probe.broker.queues[0].second.ready = 0;
        probe.broker.queues[0].second.shard_waiting = {0, 0, 0};
        CHECK(a_to_b().seconds_behind == doctest::Approx(1.0));
        // A shard that never applied anything, with messages waiting: the stalest known.
        b.shard_commit_times[1].reset();
        probe.broker.queues[0].second.ready = 2;
        probe.broker.queues[0].second.shard_waiting = {0, 2, 0};
        CHECK(a_to_b().seconds_behind == doctest::Approx(100.0));
    }

    TEST_CASE("status: a shard left to an apply-only worker with no consumer is degraded") {
        const Config config =
            test::small_config("[engine]\napply_workers = 3\nremote_apply_shards = [3]\n");
        BridgeProbe probe;
        probe.broker.reachable = true;
        for (const char* side : {"a", "b"}) {
            SideProbe s;
            s.side = side;
            s.reachable = true;
            s.slot_exists = true;
            s.slot_active = true;
            probe.sides.push_back(s);
            QueueDepth q;
            q.ready = 0;
            q.retrying = 0;
            q.shard_waiting = {0, 0, 0};
            q.shard_consumers = {1, 1, 1};
            probe.broker.queues.emplace_back(side, q);
        }
        CHECK(assess(config, probe, lag_of(config, probe)).health == Health::Healthy);
        // Shard 3 into a: its worker is away.
        probe.broker.queues[0].second.shard_consumers[2] = 0;
        HealthReport report = assess(config, probe, lag_of(config, probe));
        CHECK(report.health == Health::Degraded);
        REQUIRE(report.problems.size() == 1);
        CHECK(report.problems[0] ==
              "b -> a: shard 3 has no consumer (is pgbridge run --apply-only --shard 3/3 "
              "running?)");
        // pgbridge run's own shard without a consumer: the slot in use says the daemon runs.
        probe.broker.queues[0].second.shard_consumers = {0, 1, 1};
        CHECK(assess(config, probe, lag_of(config, probe)).health == Health::Healthy);
    }
}
