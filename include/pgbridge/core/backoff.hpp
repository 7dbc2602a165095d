#pragma once

#include <chrono>

namespace pgbridge {

// The waits between attempts at something that fails for a while (a server or the broker
// away): min after the first failure, twice the last after each further one up to max, so
// that a long outage neither hammers the peer nor floods the log; and min again after an
// attempt that made progress (it worked until the peer went away: a quick retry is likely to
// work again).
class Backoff {
  public:
    Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max);

    // The wait after a failed attempt; `progressed`: the attempt made progress before it failed.
    std::chrono::milliseconds next(bool progressed);

  private:
    std::chrono::milliseconds min_;
    std::chrono::milliseconds max_;
    std::chrono::milliseconds next_;
};

}  // namespace pgbridge
