#include <thread>

#include <pgbridge/verify/fence.hpp>

namespace pgbridge::verify {
namespace {

std::string emit_fence(FenceSide& side) {
    // Its own transaction (autocommit): committed when the call returns.
    const pg::Result r =
        side.connection->exec("SELECT pg_catalog.pg_logical_emit_message(true, $1, $2)::text",
                              {std::string(kFenceMessagePrefix), "verify"});
    return std::string(r.value(0, 0));
}

// Capture sends a transaction without row changes to every apply shard.
bool arrived(const FenceBridge& bridge, FenceSide& target, const std::string& source_side,
             const std::string& fence_lsn) {
    const pg::Result r = target.connection->exec(
        "SELECT count(*) FROM pgbridge.apply_progress WHERE bridge = $1 AND source_side = $2"
        " AND last_end_lsn > $3::pg_lsn AND shard <= $4::int",
        {bridge.name, source_side, fence_lsn, std::to_string(bridge.apply_shards)});
    return std::stoul(std::string(r.value(0, 0))) >= bridge.apply_shards;
}

}  // namespace

FenceResult pass_fence(const FenceBridge& bridge, FenceSide a, FenceSide b,
                       std::chrono::milliseconds timeout, const std::function<bool()>& cancelled) {
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    const std::string from_a = emit_fence(a);
    const std::string from_b = emit_fence(b);
    bool a_to_b = false;
    bool b_to_a = false;
    auto pause = std::chrono::milliseconds(2);
    for (;;) {
        a_to_b = a_to_b || arrived(bridge, b, a.side, from_a);
        b_to_a = b_to_a || arrived(bridge, a, b.side, from_b);
        FenceResult result;
        result.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
        if (a_to_b && b_to_a) {
            result.passed = true;
            return result;
        }
        if (Clock::now() - start >= timeout || (cancelled && cancelled())) {
            if (!a_to_b) {
                result.waiting.push_back(a.side + " -> " + b.side);
            }
            if (!b_to_a) {
                result.waiting.push_back(b.side + " -> " + a.side);
            }
            return result;
        }
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds(100));
    }
}

}  // namespace pgbridge::verify
