#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <pgbridge/core/lsn.hpp>

namespace pgbridge {

// What one side's capture knows of that side's local writes, for the applier of the other
// direction that writes to this side (docs/apply-design.md, "Local versions"); both run in
// the daemon's one process. Thread-safe.
//
// - recorded(): every local transaction that ends at or before it has its column versions in
//   pgbridge.row_versions.
// - decoded(): every local transaction that ends at or before it has reached capture; those
//   not recorded yet are listed by the keys they wrote (unrecorded()), or, for a transaction
//   too large to list, all keys count as unrecorded until it is.
class VersionsWatermark {
  public:
    // A key as both sides of this object name it: the row_versions table name, then the
    // primary key values (text), each after a NUL.
    static std::string key(const std::string& table, const std::vector<std::string>& values);

    Lsn recorded() const;
    Lsn decoded() const;
    bool unrecorded(const std::string& key) const;

    // Capture.
    void advance(Lsn recorded);
    // Received up to `decoded`, with these keys written by transactions not recorded yet.
    void set_decoded(Lsn decoded);
    void add_unrecorded(const std::vector<std::string>& keys);
    void remove_unrecorded(const std::vector<std::string>& keys);
    void set_large_unrecorded(bool large);
    // Capture starts over from what is recorded: nothing else is known.
    void rewind(Lsn recorded);
    // A position someone waits for that is not decoded yet; invalid when nobody waits.
    Lsn wanted() const;
    // A position someone waits to see recorded (capture records at once rather than
    // batching); invalid when nobody waits.
    Lsn recording_wanted() const;
    // Called when a position is wanted, from the waiting thread (wakes capture up).
    void set_nudge(std::function<void()> nudge);

    // Applier: wait until recorded() (or decoded()) reaches `lsn`, at most `timeout`. True
    // when it did.
    bool wait_recorded(Lsn lsn, std::chrono::milliseconds timeout);
    bool wait_decoded(Lsn lsn, std::chrono::milliseconds timeout);

  private:
    bool wait_until(Lsn lsn, std::chrono::milliseconds timeout, bool recorded);

    mutable std::mutex mutex_;
    std::condition_variable moved_;
    Lsn recorded_;
    Lsn decoded_;
    Lsn wanted_;
    Lsn recording_wanted_;
    std::unordered_map<std::string, int> unrecorded_;
    bool large_unrecorded_ = false;
    std::function<void()> nudge_;
};

}  // namespace pgbridge
