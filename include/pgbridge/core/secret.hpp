#pragma once

#include <string>
#include <string_view>

namespace pgbridge {

// A password or key. It can be handed to a client library (reveal()) but has no way to be
// formatted or streamed, so it cannot end up in a log line or in check-config output by
// accident; its bytes are zeroed when it is destroyed or moved from, so that memory freed by
// the process does not keep it (the process is also not dumpable: cli/main).
class Secret {
  public:
    Secret() = default;
    explicit Secret(std::string value) : value_(std::move(value)) {}
    Secret(const Secret& other) = default;
    Secret(Secret&& other) noexcept : value_(std::move(other.value_)) { other.wipe(); }
    Secret& operator=(const Secret& other) {
        if (this != &other) {
            wipe();
            value_ = other.value_;
        }
        return *this;
    }
    Secret& operator=(Secret&& other) noexcept {
        if (this != &other) {
            wipe();
            value_ = std::move(other.value_);
            other.wipe();
        }
        return *this;
    }
    ~Secret() { wipe(); }

    bool empty() const noexcept { return value_.empty(); }
    // Only for handing the password to libpq or librabbitmq.
    const std::string& reveal() const noexcept { return value_; }

  private:
    // Zeroes the whole buffer (a moved-from short string keeps its bytes in place).
    void wipe() noexcept;

    std::string value_;
};

}  // namespace pgbridge
