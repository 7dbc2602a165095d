// The one reconnect loop of capture, consumer and initial copy (core/reconnect_loop.hpp): its
// waits, and how it ends. Waits are observed through futures with deadlines, never by sleeping.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <stop_token>
#include <vector>

#include <doctest/doctest.h>

#include <pgbridge/core/backoff.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/error_policy.hpp>
#include <pgbridge/core/reconnect_loop.hpp>

using namespace pgbridge;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Far longer than any of these loops takes when it behaves; what a broken one would exceed.
constexpr auto kDeadline = 10s;

// A session that fails `failures` times, then returns; keeps when each attempt started.
struct FlakySession {
    explicit FlakySession(int fail_times = 0) : failures(fail_times) {}

    int failures;
    std::vector<Clock::time_point> starts;

    void operator()(std::stop_token) {
        starts.push_back(Clock::now());
        if (static_cast<int>(starts.size()) <= failures) {
            throw Error(ErrorKind::Broker, "connection lost");
        }
    }
};

ReconnectOptions options(std::chrono::milliseconds min, std::chrono::milliseconds max,
                         std::atomic<std::uint64_t>& reconnects) {
    ReconnectOptions o;
    o.area = "test";
    o.what = "session interrupted; reconnecting";
    o.min = min;
    o.max = max;
    o.reconnects = &reconnects;
    return o;
}

// Runs the loop on its own thread; `stop` cuts it short, so that a loop that does not end by
// itself cannot hang the test either.
std::future<void> run_async(std::stop_source& stop, const ReconnectOptions& o,
                            FlakySession& session, ReconnectFailureHandler on_failure) {
    return std::async(std::launch::async, [&stop, o, &session, on_failure] {
        run_reconnecting(stop.get_token(), o, std::ref(session), on_failure);
    });
}

}  // namespace

TEST_CASE("the backoff doubles up to its maximum and starts again after progress") {
    Backoff backoff(100ms, 1000ms);
    std::vector<std::chrono::milliseconds> waits;
    for (int i = 0; i < 6; ++i) {
        waits.push_back(backoff.next(false));
    }
    CHECK(waits ==
          std::vector<std::chrono::milliseconds>{100ms, 200ms, 400ms, 800ms, 1000ms, 1000ms});
    CHECK(backoff.next(true) == 100ms);
    CHECK(backoff.next(false) == 200ms);
    CHECK(Backoff(50ms, 10ms).next(false) == 50ms);  // a maximum below the minimum is the minimum
}

TEST_CASE("failed sessions are retried after doubling waits, capped, until one returns") {
    std::atomic<std::uint64_t> reconnects{0};
    FlakySession session(20);
    std::stop_source stop;
    auto done = run_async(stop, options(1ms, 4ms, reconnects), session, [](std::exception_ptr p) {
        return Interruption{as_error(p).what(), false, {{"peer", "test"}}};
    });
    // Uncapped, twenty doublings from 1 ms would take some 17 minutes.
    const bool finished = done.wait_for(kDeadline) == std::future_status::ready;
    stop.request_stop();
    done.get();
    REQUIRE(finished);
    CHECK(reconnects == 20);
    REQUIRE(session.starts.size() == 21);
    for (std::size_t i = 1; i < session.starts.size(); ++i) {
        const auto expected = std::min(1ms * (1 << std::min<std::size_t>(i - 1, 8)), 4ms);
        CAPTURE(i);
        CHECK(session.starts[i] - session.starts[i - 1] >= expected);
    }
}

TEST_CASE("a session that made progress is followed by the shortest wait again") {
    std::atomic<std::uint64_t> reconnects{0};
    FlakySession session(20);
    std::stop_source stop;
    // Without the reset the waits would double to an hour.
    auto done = run_async(stop, options(1ms, 3600s, reconnects), session, [](std::exception_ptr p) {
        return Interruption{as_error(p).what(), true, {}};
    });
    const bool finished = done.wait_for(kDeadline) == std::future_status::ready;
    stop.request_stop();
    done.get();
    CHECK(finished);
    CHECK(reconnects == 20);
}

TEST_CASE("a stop during the wait ends the loop at once") {
    std::atomic<std::uint64_t> reconnects{0};
    FlakySession session(1000);
    std::stop_source stop;
    std::promise<void> failed;
    auto waiting = failed.get_future();
    auto done = run_async(stop, options(3600s, 3600s, reconnects), session,
                          [&failed](std::exception_ptr p) {
                              failed.set_value();
                              return Interruption{as_error(p).what(), false, {}};
                          });
    REQUIRE(waiting.wait_for(kDeadline) == std::future_status::ready);
    const auto asked = Clock::now();
    stop.request_stop();
    const bool finished = done.wait_for(kDeadline) == std::future_status::ready;
    done.get();
    CHECK(finished);
    CHECK(Clock::now() - asked < 2s);  // the wait was an hour
    CHECK(session.starts.size() == 1);
    CHECK(reconnects == 1);
}

TEST_CASE("a failure the handler calls fatal ends the loop with what the handler throws") {
    std::atomic<std::uint64_t> reconnects{0};
    FlakySession session(1000);
    std::stop_source stop;
    CHECK_THROWS_WITH_AS(
        run_reconnecting(stop.get_token(), options(1ms, 1ms, reconnects), std::ref(session),
                         [](std::exception_ptr) -> Interruption {
                             throw Error(ErrorKind::Setup, "slot missing");
                         }),
        "slot missing", Error);
    CHECK(session.starts.size() == 1);
    CHECK(reconnects == 0);

    // The handler may rethrow the failure itself.
    CHECK_THROWS_WITH_AS(
        run_reconnecting(stop.get_token(), options(1ms, 1ms, reconnects), std::ref(session),
                         [](std::exception_ptr) -> Interruption { throw; }),
        "connection lost", Error);
}

TEST_CASE("a session that fails once stop is requested ends the loop without a retry") {
    std::atomic<std::uint64_t> reconnects{0};
    std::stop_source stop;
    bool handled = false;
    run_reconnecting(
        stop.get_token(), options(1ms, 1ms, reconnects),
        [&stop](std::stop_token) {
            stop.request_stop();
            throw Error(ErrorKind::Database, "connection closed by the stop");
        },
        [&handled](std::exception_ptr) {
            handled = true;
            return Interruption{};
        });
    CHECK_FALSE(handled);
    CHECK(reconnects == 0);

    // Already stopped: no session at all.
    FlakySession session;
    run_reconnecting(stop.get_token(), options(1ms, 1ms, reconnects), std::ref(session),
                     [](std::exception_ptr) { return Interruption{}; });
    CHECK(session.starts.empty());
}
