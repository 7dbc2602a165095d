#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include <pgbridge/config/config.hpp>
#include <pgbridge/metrics/bridge_metrics.hpp>

namespace pgbridge::run {

// [verify] schedule inside `pgbridge run`: a thread at low CPU priority that sleeps until the
// next time the cron expression names, verifies every synced table (and repairs when
// auto_repair is on), and reports in the logs and the metrics. A failed run is logged and
// waits for the next time; it never stops the daemon.
class ScheduledVerify {
  public:
    // metrics may be null.
    ScheduledVerify(const Config& config, metrics::BridgeMetrics* metrics);
    ~ScheduledVerify();  // stops, cancelling a run in progress
    ScheduledVerify(const ScheduledVerify&) = delete;
    ScheduledVerify& operator=(const ScheduledVerify&) = delete;

  private:
    void loop();
    void run_once();
    bool stopping() const;

    const Config& config_;
    metrics::BridgeMetrics* metrics_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace pgbridge::run
