#pragma once

#include <chrono>
#include <stop_token>

namespace pgbridge {

// Waits `duration`, or less when stop is requested: the request wakes the wait at once (a
// stop callback notifies it), so that a thread stopped through a std::stop_token never
// sleeps out a pause, nor polls a flag in slices. Returns whether stop was requested.
bool wait_for_stop(std::stop_token stop, std::chrono::milliseconds duration);

}  // namespace pgbridge
