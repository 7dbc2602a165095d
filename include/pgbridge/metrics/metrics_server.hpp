#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <pgbridge/core/secret.hpp>

namespace pgbridge::metrics {

struct MetricsServerOptions {
    std::string listen;  // HOST:PORT; port 0 picks a free one (tests)
    // HTTP basic auth when user is set.
    std::string user;
    Secret password;
    // HTTPS when both are set: a PEM certificate (chain) and its private key. Read again when
    // either file changes, so a renewed certificate needs no restart.
    std::optional<std::filesystem::path> cert_file;
    std::optional<std::filesystem::path> key_file;
};

// The HTTP(S) endpoint of the metrics: GET /metrics and nothing else, one request per
// connection, one connection at a time, each bounded in size (8 KiB of request) and time
// (5 s), so that a client that sends slowly or too much holds the endpoint for seconds at most
// and never grows pgbridge's memory. pgbridge's own rather than prometheus-cpp's civetweb:
// Debian 12's civetweb crashes the process on the first HTTPS request.
class MetricsServer {
  public:
    // Binds and starts serving; throws Error(ErrorKind::Config) naming the address or file
    // when it cannot. `render` gives the exposition text, from the serving thread.
    MetricsServer(MetricsServerOptions options, std::function<std::string()> render);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    std::uint16_t port() const { return port_; }

  private:
    class Tls;
    void serve();
    void handle(int fd);

    MetricsServerOptions options_;
    std::function<std::string()> render_;
    std::unique_ptr<Tls> tls_;
    int listen_fd_ = -1;
    int wake_fd_ = -1;
    std::uint16_t port_ = 0;
    std::thread thread_;
};

// What an HTTP request asks for, as far as the metrics endpoint cares. Pure, for tests.
struct MetricsRequest {
    enum class Outcome {
        Incomplete,  // the headers have not ended yet
        Malformed,   // 400
        Ok,
    };
    Outcome outcome = Outcome::Incomplete;
    std::string method;
    std::string path;  // without the query
    std::optional<std::string> authorization;
};
MetricsRequest parse_metrics_request(std::string_view bytes);

// Whether an Authorization header value carries exactly `user` and `password` (Basic), in a
// time that depends on neither where they differ nor their lengths.
bool basic_auth_matches(std::string_view header, const std::string& user, const Secret& password);

}  // namespace pgbridge::metrics
