#include <condition_variable>
#include <mutex>

#include <pgbridge/core/wait_for_stop.hpp>

namespace pgbridge {

bool wait_for_stop(std::stop_token stop, std::chrono::milliseconds duration) {
    std::mutex mutex;
    std::condition_variable_any wake;
    std::unique_lock lock(mutex);
    // Nothing but the stop request notifies `wake`: the predicate only guards against spurious
    // wake-ups.
    wake.wait_for(lock, stop, duration, [] { return false; });
    return stop.stop_requested();
}

}  // namespace pgbridge
