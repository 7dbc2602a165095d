#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <pgbridge/core/versions_watermark.hpp>
#include <pgbridge/pg/connection.hpp>

namespace pgbridge::apply {

// The target's capture, seen from an apply-only worker (`pgbridge run --apply-only`), which
// runs without it: reads how far that capture has recorded the target's local writes
// (pgbridge.local_versions, written by its version keeper) into a VersionsWatermark for the
// applier. Nothing is known of what it decoded and not recorded yet, so decoded counts as
// recorded: a wait lasts until the capture writes a position past it, which the applier asks
// for (ApplierOptions::request_announcement). The table is read only while an applier
// waits, every poll_interval: an idle worker costs its target nothing. The watermark calls
// back into it (its nudge) from a waiting applier: the appliers that wait on it must be
// stopped before the poller goes.
class RecordedVersionsPoller {
  public:
    RecordedVersionsPoller(pg::ConnectOptions connect, std::string bridge, std::string side,
                           std::shared_ptr<VersionsWatermark> watermark,
                           std::chrono::milliseconds poll_interval = std::chrono::milliseconds(10));
    ~RecordedVersionsPoller();
    RecordedVersionsPoller(const RecordedVersionsPoller&) = delete;
    RecordedVersionsPoller& operator=(const RecordedVersionsPoller&) = delete;

  private:
    void loop(std::stop_token stop);
    bool someone_waits() const;
    void read();

    pg::ConnectOptions connect_;
    std::string bridge_;
    std::string side_;
    std::shared_ptr<VersionsWatermark> watermark_;
    std::chrono::milliseconds poll_interval_;
    std::unique_ptr<pg::Connection> conn_;
    std::mutex mutex_;
    std::condition_variable_any nudged_;
    bool nudge_ = true;  // read once at start
    std::jthread thread_;
};

}  // namespace pgbridge::apply
