#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

#include <pgbridge/core/lsn.hpp>

namespace pgbridge {

// How far one side's capture has recorded that side's local writes in pgbridge.row_versions:
// every local transaction that ends at or before recorded() has its column versions there.
// The applier of the other direction, writing to this side, reads it before it decides
// against a local write capture may not have seen yet (docs/apply-design.md, "Local
// versions"); both run in the daemon's one process. Thread-safe.
class VersionsWatermark {
  public:
    Lsn recorded() const;
    // Capture: everything up to `lsn` is recorded (never moves back).
    void advance(Lsn lsn);
    // Capture: a position someone waits for, beyond recorded(); invalid when nobody waits.
    Lsn wanted() const;
    // Capture: called when a position is wanted, from the waiting thread (wakes capture up).
    void set_nudge(std::function<void()> nudge);

    // Applier: waits until recorded() reaches `lsn`, at most `timeout`. True when it did.
    bool wait_for(Lsn lsn, std::chrono::milliseconds timeout);

  private:
    mutable std::mutex mutex_;
    std::condition_variable advanced_;
    Lsn recorded_;
    Lsn wanted_;
    std::function<void()> nudge_;
};

}  // namespace pgbridge
