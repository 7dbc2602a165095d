#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <pgbridge/apply/apply_observer.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/metrics/bridge_probe.hpp>
#include <pgbridge/metrics/metrics_server.hpp>

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace pgbridge::metrics {

// What one direction of the daemon has done since it started, for the status line and the
// metrics.
struct DirectionCounters {
    std::uint64_t captured_changes = 0;
    std::uint64_t published_messages = 0;
    std::uint64_t applied_changes = 0;
    std::uint64_t conflicts = 0;
    std::uint64_t dead_lettered = 0;
    std::uint64_t retries = 0;
    // Apply attempts that found a column the target does not have yet and wait for it.
    std::uint64_t schema_waits = 0;
    // Apply attempts that waited for the target side's capture to record its local writes.
    std::uint64_t local_version_waits = 0;
    bool copy_done = false;  // the initial copy of every table is confirmed (or not needed)
    // The initial copy from SOURCE: rows read so far by this process, and the planner's
    // estimate of the rows of the tables it copies.
    std::uint64_t copy_rows = 0;
    std::uint64_t copy_rows_estimated = 0;
    bool streaming = false;
    bool consuming = false;
};

// What one scheduled verify (and repair) found, for the metrics.
struct VerifyOutcome {
    bool failed = false;  // could not compare (a side down, the fence not applied)
    std::map<std::string, std::uint64_t> differences;  // by table: drift left after repair
    std::map<std::string, std::uint64_t> repaired;     // by table: keys written by repair
    double seconds = 0;
};

// The Prometheus endpoint of `pgbridge run` ([metrics] listen), kept in a prometheus-cpp
// registry and served by MetricsServer (basic auth and HTTPS as [metrics] says). A direction
// is labelled by its source and target sides; docs/operations.md ("Metrics") lists every
// series. Counters of a direction exist from zero at start; a gauge whose server cannot be
// read is dropped, never left stale or zeroed. Every series carries the bridge's name, and no
// row value is ever a label.
class BridgeMetrics final : public apply::ApplyObserver {
  public:
    // Serves on config.metrics_listen (port 0 of 127.0.0.1 when unset) as [metrics] says.
    explicit BridgeMetrics(const Config& config);
    ~BridgeMetrics() override;
    BridgeMetrics(const BridgeMetrics&) = delete;
    BridgeMetrics& operator=(const BridgeMetrics&) = delete;

    void batch_applied(const apply::AppliedBatch& batch) override;
    // Brings the counters up to the totals (they only move forward).
    void update_totals(const std::string& source, const std::string& target,
                       const DirectionCounters& totals);
    // The gauges read from the servers (every few seconds, off the apply path).
    void update_probe(const BridgeProbe& probe, const std::vector<DirectionLag>& lag);

    void verify_finished(const VerifyOutcome& outcome);

    // Where it serves (the port chosen when listen asked for port 0).
    std::uint16_t port() const;

  private:
    struct Families;
    std::shared_ptr<prometheus::Registry> registry_;
    std::unique_ptr<Families> families_;
    std::unique_ptr<MetricsServer> server_;
    std::mutex mutex_;
    std::map<std::string, DirectionCounters> seen_;  // totals already counted, by direction
};

}  // namespace pgbridge::metrics
