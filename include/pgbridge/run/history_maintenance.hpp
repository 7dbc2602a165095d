#pragma once

#include <chrono>
#include <stop_token>
#include <thread>

#include <pgbridge/config/config.hpp>

namespace pgbridge::run {

// [history]: keeps pgbridge.history's daily partitions on both sides, those of the next days
// created and those past the retention dropped (pgbridge.maintain_history, docs/history.md).
// Once when it starts, before anything writes history, then every hour on its own thread; a
// side that cannot be reached is tried again a minute later (a missing partition would stop
// the apply: two days are created ahead).
class HistoryMaintenance {
  public:
    explicit HistoryMaintenance(const Config& config);
    HistoryMaintenance(const HistoryMaintenance&) = delete;
    HistoryMaintenance& operator=(const HistoryMaintenance&) = delete;

  private:
    // True when every side was maintained.
    bool maintain_all();

    const Config& config_;
    std::jthread thread_;
};

}  // namespace pgbridge::run
