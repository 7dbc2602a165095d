#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <pgbridge/core/base64.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/metrics/metrics_server.hpp>

namespace pgbridge::metrics {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxRequestBytes = 8 * 1024;
constexpr std::chrono::seconds kConnectionDeadline{5};

std::string openssl_error() {
    const unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) {
        return "no detail from OpenSSL";
    }
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    return text;
}

// Waits until `fd` is ready for `events` or the deadline passes.
bool wait_for(int fd, short events, Clock::time_point deadline) {
    while (true) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            return false;
        }
        pollfd p{fd, events, 0};
        const int r = ::poll(&p, 1, static_cast<int>(left.count()));
        if (r > 0) {
            return true;
        }
        if (r < 0 && errno != EINTR) {
            return false;
        }
    }
}

// One accepted connection, plain or TLS, read and written before a deadline.
class Stream {
  public:
    Stream(int fd, SSL_CTX* tls, Clock::time_point deadline) : fd_(fd), deadline_(deadline) {
        if (tls != nullptr) {
            ssl_ = SSL_new(tls);
            if (ssl_ == nullptr || SSL_set_fd(ssl_, fd) != 1) {
                failed_ = true;
                return;
            }
            failed_ = !tls_step([&] { return SSL_accept(ssl_); });
        }
    }
    ~Stream() {
        if (ssl_ != nullptr) {
            if (!failed_) {
                SSL_shutdown(ssl_);  // one attempt: the connection closes either way
            }
            SSL_free(ssl_);
        }
        ERR_clear_error();
    }
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;

    bool ok() const { return !failed_; }

    // Up to `size` bytes; 0 at the end of the stream, on failure or past the deadline.
    std::size_t read_some(char* buffer, std::size_t size) {
        if (failed_) {
            return 0;
        }
        if (ssl_ != nullptr) {
            int n = 0;
            if (!tls_step([&] { return n = SSL_read(ssl_, buffer, static_cast<int>(size)); })) {
                return 0;
            }
            return static_cast<std::size_t>(n);
        }
        while (wait_for(fd_, POLLIN, deadline_)) {
            const ssize_t n = ::recv(fd_, buffer, size, 0);
            if (n >= 0) {
                return static_cast<std::size_t>(n);
            }
            if (errno != EAGAIN && errno != EINTR) {
                break;
            }
        }
        failed_ = true;
        return 0;
    }

    void write_all(std::string_view data) {
        while (!data.empty() && !failed_) {
            std::size_t written = 0;
            if (ssl_ != nullptr) {
                int n = 0;
                if (tls_step([&] {
                        return n = SSL_write(
                                   ssl_, data.data(),
                                   static_cast<int>(std::min<std::size_t>(data.size(), 1 << 20)));
                    })) {
                    written = static_cast<std::size_t>(n);
                }
            } else if (wait_for(fd_, POLLOUT, deadline_)) {
                const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
                if (n > 0) {
                    written = static_cast<std::size_t>(n);
                } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                    continue;
                }
            }
            if (written == 0) {
                failed_ = true;
                return;
            }
            data.remove_prefix(written);
        }
    }

  private:
    // Runs an OpenSSL call on the non-blocking socket until it succeeds, waiting for what it
    // wants; false on failure, at the end of the stream or past the deadline.
    template <typename Call>
    bool tls_step(Call&& call) {
        while (true) {
            const int r = call();
            if (r > 0) {
                return true;
            }
            const int error = SSL_get_error(ssl_, r);
            const short events = error == SSL_ERROR_WANT_READ    ? POLLIN
                                 : error == SSL_ERROR_WANT_WRITE ? POLLOUT
                                                                 : 0;
            if (events == 0 || !wait_for(fd_, events, deadline_)) {
                failed_ = true;
                return false;
            }
        }
    }

    int fd_;
    Clock::time_point deadline_;
    SSL* ssl_ = nullptr;
    bool failed_ = false;
};

std::string response(std::string_view status, std::string_view body, bool head,
                     std::string_view extra_headers = {},
                     std::string_view content_type = "text/plain; charset=utf-8") {
    std::string out = fmt::format(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        status, content_type, body.size(), extra_headers);
    if (!head) {
        out += body;
    }
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

std::array<unsigned char, SHA256_DIGEST_LENGTH> digest(std::string_view text) {
    std::array<unsigned char, SHA256_DIGEST_LENGTH> out{};
    SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), out.data());
    return out;
}

std::optional<std::filesystem::file_time_type> modified(const std::filesystem::path& path) {
    std::error_code ec;
    const auto t = std::filesystem::last_write_time(path, ec);
    return ec ? std::nullopt : std::optional(t);
}

}  // namespace

// The server's TLS context, loaded again when the certificate or key file changes.
class MetricsServer::Tls {
  public:
    Tls(std::filesystem::path cert, std::filesystem::path key)
        : cert_(std::move(cert)), key_(std::move(key)) {
        ctx_ = load();  // throws: a start with a bad certificate is a configuration error
    }
    ~Tls() { SSL_CTX_free(ctx_); }
    Tls(const Tls&) = delete;
    Tls& operator=(const Tls&) = delete;

    // The context to use now: a renewed certificate is picked up; if the new files do not
    // load, the previous context stays and the problem is logged once per change.
    SSL_CTX* current() {
        const auto cert_time = modified(cert_);
        const auto key_time = modified(key_);
        if (cert_time != cert_time_ || key_time != key_time_) {
            cert_time_ = cert_time;
            key_time_ = key_time;
            try {
                SSL_CTX* fresh = load();
                SSL_CTX_free(ctx_);
                ctx_ = fresh;
                log::info("metrics", "TLS certificate loaded", {{"cert_file", cert_.string()}});
            } catch (const Error& e) {
                log::warning("metrics", "TLS certificate not reloaded; serving the previous one",
                             {{"error", e.what()}});
            }
        }
        return ctx_;
    }

  private:
    SSL_CTX* load() {
        cert_time_ = modified(cert_);
        key_time_ = modified(key_);
        SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
        if (ctx == nullptr) {
            throw Error(ErrorKind::Config, "cannot serve metrics over TLS: " + openssl_error());
        }
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        const auto fail = [&](const std::string& what, const std::filesystem::path& file) {
            const std::string detail = openssl_error();
            SSL_CTX_free(ctx);
            return Error(ErrorKind::Config,
                         fmt::format("cannot serve metrics over TLS: {}: {}", what, detail))
                .with("file", file.string());
        };
        if (SSL_CTX_use_certificate_chain_file(ctx, cert_.c_str()) != 1) {
            throw fail("metrics.cert_file is not a readable PEM certificate", cert_);
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key_.c_str(), SSL_FILETYPE_PEM) != 1) {
            throw fail("metrics.key_file is not a readable PEM private key", key_);
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            throw fail("metrics.key_file is not the key of metrics.cert_file", key_);
        }
        return ctx;
    }

    std::filesystem::path cert_;
    std::filesystem::path key_;
    std::optional<std::filesystem::file_time_type> cert_time_;
    std::optional<std::filesystem::file_time_type> key_time_;
    SSL_CTX* ctx_ = nullptr;
};

MetricsRequest parse_metrics_request(std::string_view bytes) {
    MetricsRequest out;
    const auto end = bytes.find("\r\n\r\n");
    if (end == std::string_view::npos) {
        return out;  // Incomplete
    }
    out.outcome = MetricsRequest::Outcome::Malformed;
    std::string_view head = bytes.substr(0, end);
    const auto line_end = head.find("\r\n");
    const std::string_view request_line = head.substr(0, line_end);
    const auto first_space = request_line.find(' ');
    const auto last_space = request_line.rfind(' ');
    if (first_space == std::string_view::npos || last_space == first_space ||
        !request_line.substr(last_space + 1).starts_with("HTTP/1.")) {
        return out;
    }
    out.method = std::string(request_line.substr(0, first_space));
    const std::string_view target =
        request_line.substr(first_space + 1, last_space - first_space - 1);
    out.path = std::string(target.substr(0, target.find('?')));
    if (out.method.empty() || out.path.empty() || out.path.find(' ') != std::string::npos) {
        return out;
    }
    head = line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
    while (!head.empty()) {
        const auto next = head.find("\r\n");
        const std::string_view line = head.substr(0, next);
        head = next == std::string_view::npos ? std::string_view() : head.substr(next + 2);
        const auto colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) {
            return out;
        }
        if (iequals(line.substr(0, colon), "authorization")) {
            if (out.authorization) {
                return out;  // two of them: which one counts is a guess
            }
            out.authorization = std::string(trim(line.substr(colon + 1)));
        }
    }
    out.outcome = MetricsRequest::Outcome::Ok;
    return out;
}

bool basic_auth_matches(std::string_view header, const std::string& user, const Secret& password) {
    std::string_view credentials;
    if (header.size() > 6 && iequals(header.substr(0, 6), "basic ")) {
        credentials = trim(header.substr(6));
    }
    const Secret decoded(base64_decode(credentials).value_or(std::string()));
    const std::string_view text = decoded.reveal();
    const auto colon = text.find(':');
    const std::string_view given_user =
        colon == std::string_view::npos ? "" : text.substr(0, colon);
    const std::string_view given_password =
        colon == std::string_view::npos ? "" : text.substr(colon + 1);
    // Digests of equal length, compared in full whatever they hold: no early exit says how
    // much of either was right.
    const auto user_ok =
        CRYPTO_memcmp(digest(given_user).data(), digest(user).data(), SHA256_DIGEST_LENGTH) == 0;
    const auto password_ok =
        CRYPTO_memcmp(digest(given_password).data(), digest(password.reveal()).data(),
                      SHA256_DIGEST_LENGTH) == 0;
    return (static_cast<int>(user_ok) & static_cast<int>(password_ok) &
            static_cast<int>(colon != std::string_view::npos)) != 0;
}

MetricsServer::MetricsServer(MetricsServerOptions options, std::function<std::string()> render)
    : options_(std::move(options)), render_(std::move(render)) {
    const std::string& listen = options_.listen;
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos) {
        throw Error(ErrorKind::Config, "metrics.listen must be HOST:PORT").with("listen", listen);
    }
    std::string host = listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);  // [::1]
    }
    const std::string port = listen.substr(colon + 1);
    if (options_.cert_file && options_.key_file) {
        tls_ = std::make_unique<Tls>(*options_.cert_file, *options_.key_file);
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* found = nullptr;
    if (const int rc =
            ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
        rc != 0) {
        throw Error(ErrorKind::Config, fmt::format("cannot serve metrics: {} does not resolve: {}",
                                                   host, gai_strerror(rc)))
            .with("listen", listen);
    }
    std::string last_error = "no address";
    for (addrinfo* a = found; a != nullptr && listen_fd_ < 0; a = a->ai_next) {
        const int fd =
            ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) {
            last_error = std::strerror(errno);
            continue;
        }
        const int yes = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
            last_error = std::strerror(errno);
            ::close(fd);
            continue;
        }
        listen_fd_ = fd;
        sockaddr_storage bound{};
        socklen_t length = sizeof bound;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
        port_ =
            ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    }
    ::freeaddrinfo(found);
    if (listen_fd_ < 0) {
        throw Error(ErrorKind::Config, "cannot serve metrics: " + last_error)
            .with("listen", listen);
    }
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) {
        ::close(listen_fd_);
        throw Error(ErrorKind::Internal, std::string("eventfd: ") + std::strerror(errno));
    }
    thread_ = std::thread([this] { serve(); });
}

MetricsServer::~MetricsServer() {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
    if (thread_.joinable()) {
        thread_.join();
    }
    ::close(wake_fd_);
    ::close(listen_fd_);
}

void MetricsServer::serve() {
    // A peer that closes while TLS writes would raise SIGPIPE in this thread: blocked here,
    // the write fails with EPIPE instead.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    while (true) {
        pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0 && errno != EINTR) {
            log::error("metrics", "the metrics endpoint stopped",
                       {{"error", std::strerror(errno)}});
            return;
        }
        if (fds[1].revents != 0) {
            return;
        }
        if (fds[0].revents == 0) {
            continue;
        }
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            continue;  // gone before accepted, or out of descriptors for a moment
        }
        try {
            handle(fd);
        } catch (const std::exception& e) {
            log::warning("metrics", "a metrics request failed", {{"error", e.what()}});
        }
        ::close(fd);
    }
}

void MetricsServer::handle(int fd) {
    Stream stream(fd, tls_ ? tls_->current() : nullptr, Clock::now() + kConnectionDeadline);
    if (!stream.ok()) {
        return;  // not TLS, or too slow: nothing to answer
    }
    std::string request;
    char buffer[2048];
    MetricsRequest parsed;
    while (parsed.outcome == MetricsRequest::Outcome::Incomplete) {
        if (request.size() >= kMaxRequestBytes) {
            stream.write_all(response("431 Request Header Fields Too Large", "", false));
            // Read on a little before closing: closed with bytes unread, the connection is
            // reset, and the client may lose the answer before it reads it.
            ::shutdown(fd, SHUT_WR);
            for (std::size_t drained = 0; drained < 16 * kMaxRequestBytes;) {
                const std::size_t n = stream.read_some(buffer, sizeof buffer);
                if (n == 0) {
                    break;
                }
                drained += n;
            }
            return;
        }
        const std::size_t n =
            stream.read_some(buffer, std::min(sizeof buffer, kMaxRequestBytes - request.size()));
        if (n == 0) {
            return;
        }
        request.append(buffer, n);
        parsed = parse_metrics_request(request);
    }
    const bool head = parsed.method == "HEAD";
    if (parsed.outcome == MetricsRequest::Outcome::Malformed) {
        stream.write_all(response("400 Bad Request", "bad request\n", false));
    } else if (parsed.method != "GET" && !head) {
        stream.write_all(
            response("405 Method Not Allowed", "GET /metrics\n", false, "Allow: GET, HEAD\r\n"));
    } else if (!options_.user.empty() && !basic_auth_matches(parsed.authorization.value_or(""),
                                                             options_.user, options_.password)) {
        stream.write_all(
            response("401 Unauthorized", "authentication required\n", head,
                     "WWW-Authenticate: Basic realm=\"pgbridge\", charset=\"UTF-8\"\r\n"));
    } else if (parsed.path != "/metrics") {
        stream.write_all(response("404 Not Found", "pgbridge serves /metrics\n", head));
    } else {
        stream.write_all(
            response("200 OK", render_(), head, {}, "text/plain; version=0.0.4; charset=utf-8"));
    }
}

}  // namespace pgbridge::metrics
