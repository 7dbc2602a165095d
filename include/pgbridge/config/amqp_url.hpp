#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <pgbridge/core/secret.hpp>

namespace pgbridge {

// An AMQP 0-9-1 URI as RabbitMQ documents it: amqp[s]://[user[:password]@]host[:port][/vhost],
// user, password and vhost percent-encoded. An absent vhost means "/", as in rabbitmq-c.
struct AmqpUrl {
    bool tls = false;
    std::string user = "guest";
    Secret password;  // from the URL, or from rabbitmq.password_file (which wins)
    bool password_in_url = false;
    std::string host;
    int port = 5672;
    std::string vhost = "/";

    // On failure returns nullopt and sets *error to what was expected.
    static std::optional<AmqpUrl> parse(std::string_view text, std::string* error);

    // The URL without the password, for display and logs.
    std::string redacted() const;
};

}  // namespace pgbridge
