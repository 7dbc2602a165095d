#pragma once

#include <atomic>
#include <thread>

#include <pgbridge/config/config.hpp>

namespace pgbridge::run {

// The repair that follows a slot created again (source/slot_identity.hpp): the copies made
// through the old slot miss what it never captured, so every synced table is verified and
// repaired by the conflict rules (pgbridge repair: row_versions tell a delete from a missing
// insert, and which write of a column is the later), once, on a thread at low CPU priority
// beside the live stream. Then the copies count as the current slot's, and status is healthy
// again. A failed attempt is retried after a pause; stopping cancels it.
class Resync {
  public:
    explicit Resync(const Config& config);
    ~Resync();  // cancels a run in progress
    Resync(const Resync&) = delete;
    Resync& operator=(const Resync&) = delete;

    bool done() const { return done_; }

  private:
    void run(std::stop_token stop);

    const Config& config_;
    std::atomic<bool> done_{false};
    std::jthread thread_;
};

}  // namespace pgbridge::run
