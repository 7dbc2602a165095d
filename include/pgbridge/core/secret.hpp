#pragma once

#include <string>
#include <string_view>

namespace pgbridge {

// A password. It can be handed to a client library (reveal()) but has no way to be formatted
// or streamed, so it cannot end up in a log line or in check-config output by accident.
class Secret {
  public:
    Secret() = default;
    explicit Secret(std::string value) : value_(std::move(value)) {}

    bool empty() const noexcept { return value_.empty(); }
    // Only for handing the password to libpq or librabbitmq.
    const std::string& reveal() const noexcept { return value_; }

  private:
    std::string value_;
};

}  // namespace pgbridge
