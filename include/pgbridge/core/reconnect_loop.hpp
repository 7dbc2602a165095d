#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <stop_token>
#include <string>
#include <vector>

#include <pgbridge/core/log.hpp>

namespace pgbridge {

struct ReconnectOptions {
    // The warning each interruption logs: its component and message.
    std::string area;
    std::string what;
    // The waits between sessions (core/backoff.hpp).
    std::chrono::milliseconds min{100};
    std::chrono::milliseconds max{10000};
    // Counted once per interruption, where the caller shows it (its stats); may be null.
    std::atomic<std::uint64_t>* reconnects = nullptr;
};

// A failed session that a new one may cure, as the caller's failure handler describes it.
struct Interruption {
    std::string error;  // what failed, for the log line
    // The session made progress before it failed (it streamed, it consumed): the next wait is
    // the shortest again.
    bool progressed = false;
    // Who was interrupted (side, slot, target, ...): the first fields of the log line.
    std::vector<log::Field> fields;
};

// One session: connect, work until it is done, stop is requested, or something fails (throws).
using ReconnectSession = std::function<void(std::stop_token)>;
// Called with a session's failure (std::current_exception() is it too): returns the
// interruption to wait out before the next session, or throws to end the loop (the failure
// itself, or what the caller makes of it) when no retry can help.
using ReconnectFailureHandler = std::function<Interruption(std::exception_ptr)>;

// The one reconnect loop of the long-lived parts (capture, consumer, initial copy): runs
// `session` until it returns, or stop is requested. After a failure on_failure decides between
// a retry and the end; each retry is counted and logged alike (area: what, the interruption's
// fields, retry_in_ms, error), then waited for with a Backoff that a stop request cuts short
// at once. A session that fails once stop is requested failed of the stop (a connection cut
// short, a wait given up): the loop returns without asking on_failure. Returns normally when
// the session did, or when stopped; throws what on_failure throws.
void run_reconnecting(std::stop_token stop, const ReconnectOptions& options,
                      const ReconnectSession& session, const ReconnectFailureHandler& on_failure);

}  // namespace pgbridge
