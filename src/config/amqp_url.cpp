#include <cctype>
#include <charconv>

#include <pgbridge/config/amqp_url.hpp>
#include <pgbridge/core/hex.hpp>

namespace pgbridge {
namespace {

std::optional<std::string> percent_decode(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        if (i + 2 >= text.size()) {
            return std::nullopt;
        }
        const int hi = hex_digit_value(text[i + 1]);
        const int lo = hex_digit_value(text[i + 2]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

std::string percent_encode(std::string_view text) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += c;
        } else {
            out += '%';
            out += kHex[u >> 4];
            out += kHex[u & 0xF];
        }
    }
    return out;
}

}  // namespace

std::optional<AmqpUrl> AmqpUrl::parse(std::string_view text, std::string* error) {
    auto fail = [&](std::string message) -> std::optional<AmqpUrl> {
        *error = std::move(message);
        return std::nullopt;
    };
    AmqpUrl url;
    if (text.starts_with("amqps://")) {
        url.tls = true;
        url.port = 5671;
        text.remove_prefix(8);
    } else if (text.starts_with("amqp://")) {
        text.remove_prefix(7);
    } else {
        return fail("an AMQP URL starting with amqp:// or amqps://");
    }
    if (text.find_first_of("?#") != std::string_view::npos) {
        return fail(
            "an AMQP URL without query parameters or fragment (set TLS files in [rabbitmq])");
    }

    const std::size_t slash = text.find('/');
    std::string_view authority = text.substr(0, slash);
    if (slash != std::string_view::npos) {
        std::string_view path = text.substr(slash + 1);
        if (path.find('/') != std::string_view::npos) {
            return fail("a vhost without an unencoded '/' (write the vhost \"/\" as %2f)");
        }
        auto vhost = percent_decode(path);
        if (!vhost) {
            return fail("a vhost with valid %XX escapes");
        }
        // amqp://host/ names the empty vhost in the URI spec, which RabbitMQ does not have;
        // treat it like no path at all.
        if (!vhost->empty()) {
            url.vhost = *vhost;
        }
    }

    if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
        std::string_view userinfo = authority.substr(0, at);
        authority.remove_prefix(at + 1);
        const std::size_t colon = userinfo.find(':');
        auto user = percent_decode(userinfo.substr(0, colon));
        if (!user || user->empty()) {
            return fail("a user name before '@' with valid %XX escapes");
        }
        url.user = *user;
        if (colon != std::string_view::npos) {
            auto password = percent_decode(userinfo.substr(colon + 1));
            if (!password) {
                return fail("a password with valid %XX escapes");
            }
            url.password = Secret(*password);
            url.password_in_url = true;
        }
    }

    std::string_view host = authority;
    if (authority.starts_with('[')) {
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) {
            return fail("an IPv6 host closed by ']'");
        }
        host = authority.substr(1, close - 1);
        authority.remove_prefix(close + 1);
        if (!authority.empty() && authority.front() != ':') {
            return fail("':' and a port after the IPv6 host");
        }
    } else {
        const std::size_t colon = authority.find(':');
        host = authority.substr(0, colon);
        authority.remove_prefix(colon == std::string_view::npos ? authority.size() : colon);
    }
    if (host.empty()) {
        return fail("a host name");
    }
    url.host = std::string(host);
    if (!authority.empty()) {
        std::string_view port_text = authority.substr(1);
        int port = 0;
        auto [end, ec] =
            std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (ec != std::errc{} || end != port_text.data() + port_text.size() || port < 1 ||
            port > 65535) {
            return fail("a port number between 1 and 65535");
        }
        url.port = port;
    }
    return url;
}

std::string AmqpUrl::redacted() const {
    std::string out = tls ? "amqps://" : "amqp://";
    out += percent_encode(user);
    if (password_in_url) {
        out += ":********";
    }
    out += '@';
    out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
    out += ':' + std::to_string(port);
    out += '/' + percent_encode(vhost);
    return out;
}

}  // namespace pgbridge
