#pragma once

// The smallest valid configuration for unit tests of the conflict rules and what uses them:
// sides a and b, the one table public.talents, and whatever `extra` adds.

#include <string>
#include <string_view>

#include <pgbridge/config/config.hpp>

namespace pgbridge::test {

inline Config small_config(std::string_view extra) {
    std::string text = R"([bridge]
name = "crm"
[sides.a]
conninfo = "dbname=a"
[sides.b]
conninfo = "dbname=b"
[rabbitmq]
url = "amqp://localhost"
[[tables]]
name = "public.talents"
)";
    text += extra;
    return parse_config(text, "test.toml");
}

}  // namespace pgbridge::test
