#include <algorithm>

#include <pgbridge/core/backoff.hpp>

namespace pgbridge {

Backoff::Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max)
    : min_(min), max_(std::max(min, max)), next_(min) {}

std::chrono::milliseconds Backoff::next(bool progressed) {
    if (progressed) {
        next_ = min_;
    }
    const auto wait = next_;
    next_ = std::min(next_ * 2, max_);
    return wait;
}

}  // namespace pgbridge
