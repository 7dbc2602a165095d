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
// registry and served by MetricsServer (basic auth and HTTPS as [metrics] says):
//   pgbridge_changes_captured_total{direction}          changes read from the source slot
//   pgbridge_messages_published_total{direction}        messages confirmed by the broker
//   pgbridge_changes_applied_total{direction,table,op}  insert / update / delete / skip
//   pgbridge_messages_dead_lettered_total{direction}
//   pgbridge_apply_retries_total{direction}
//   pgbridge_apply_schema_waits_total{direction}        waits for a column the target lacks
//   pgbridge_apply_local_version_waits_total{direction} waits for the target's capture
//   pgbridge_conflicts_total{direction,table,column,strategy}
//   pgbridge_apply_latency_seconds{direction}           histogram: source commit -> target commit
//   pgbridge_slot_lag_bytes{side}, pgbridge_queue_messages{direction,queue}
//   pgbridge_last_applied_commit_timestamp_seconds{direction}, pgbridge_seconds_behind{direction}
//   pgbridge_side_up{side}, pgbridge_broker_up
//   pgbridge_verify_runs_total{result}                  identical / differences / failed
//   pgbridge_verify_differences{table}                  drift the last scheduled verify left
//   pgbridge_verify_last_run_timestamp_seconds, pgbridge_verify_last_duration_seconds
//   pgbridge_repairs_total{table}                       keys written by scheduled repair
// A direction's label is "SOURCE->TARGET". No row value is ever a label.
class BridgeMetrics final : public apply::ApplyObserver {
  public:
    BridgeMetrics(const std::string& listen, const std::string& bridge,
                  const Config::MetricsAccess& access = {});
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
