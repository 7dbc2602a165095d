// The metrics endpoint's HTTP handling: what a request asks for, who may read, and how a
// client that sends too much is answered, against a real socket on loopback. HTTPS is proven
// against `pgbridge run` with curl (integration suite "bridge").

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <pgbridge/core/base64.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/metrics/metrics_server.hpp>

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
}
