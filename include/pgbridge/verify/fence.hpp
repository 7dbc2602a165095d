#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <pgbridge/pg/connection.hpp>

namespace pgbridge::verify {

// The prefix of verify's fence: a transactional logical message with no row change. Capture
// publishes the (otherwise empty) transaction like any other and the applier commits it,
// moving pgbridge.apply_progress past it; docs/verify.md.
inline constexpr std::string_view kFenceMessagePrefix = "pgbridge.fence";

struct FenceSide {
    pg::Connection* connection = nullptr;
    std::string side;
};

// Every apply shard ([engine] apply_workers) of each direction must pass the fence.
struct FenceBridge {
    std::string name;
    std::uint32_t apply_shards = 1;
};

struct FenceResult {
    bool passed = false;
    // "a -> b" for each direction whose fence had not arrived when time ran out.
    std::vector<std::string> waiting;
    std::chrono::milliseconds took{0};
};

// Commits a fence on each side and waits until each has been applied on the other side:
// from then on, each side has applied everything the other had committed before the call.
// Gives up early (not passed) when `cancelled` says so.
FenceResult pass_fence(const FenceBridge& bridge, FenceSide a, FenceSide b,
                       std::chrono::milliseconds timeout,
                       const std::function<bool()>& cancelled = {});

}  // namespace pgbridge::verify
