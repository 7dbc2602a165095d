#include <array>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/metrics/bridge_metrics.hpp>

#include "pgbridge_version.hpp"

namespace pgbridge::metrics {
namespace {

std::string direction_of(const std::string& source, const std::string& target) {
    return source + "->" + target;
}

// A direction's labels: the side changes come from and the side they are applied to.
prometheus::Labels direction_labels(const std::string& source, const std::string& target) {
    return {{"source", source}, {"target", target}};
}

prometheus::Labels with(prometheus::Labels labels, const std::string& name,
                        const std::string& value) {
    labels.emplace(name, value);
    return labels;
}

// A gauge whose value is not known now (its server is down) is dropped rather than left at
// its last value or set to 0: a dashboard shows a gap and an alert on it does not fire on a
// number nobody measured.
void set_or_drop(prometheus::Family<prometheus::Gauge>& family, const prometheus::Labels& labels,
                 std::optional<double> value) {
    if (value) {
        family.Add(labels).Set(*value);
    } else if (family.Has(labels)) {
        family.Remove(&family.Add(labels));
    }
}

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
    static const prometheus::Histogram::BucketBoundaries buckets{
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
    return buckets;
}

constexpr std::array kOps{"insert", "update", "delete", "skip"};

}  // namespace

struct BridgeMetrics::Families {
    explicit Families(prometheus::Registry& r, const std::string& bridge)
        : captured(prometheus::BuildCounter()
                       .Name("pgbridge_changes_captured_total")
                       .Help("Row changes read from the source side's slot")
                       .Labels({{"bridge", bridge}})
                       .Register(r)),
          published(prometheus::BuildCounter()
                        .Name("pgbridge_messages_published_total")
                        .Help("Messages published and confirmed by RabbitMQ")
                        .Labels({{"bridge", bridge}})
                        .Register(r)),
          applied(prometheus::BuildCounter()
                      .Name("pgbridge_changes_applied_total")
                      .Help("Row changes applied on the target, by table and operation (skip: "
                            "a duplicate or superseded change)")
                      .Labels({{"bridge", bridge}})
                      .Register(r)),
          dead_lettered(prometheus::BuildCounter()
                            .Name("pgbridge_messages_dead_lettered_total")
                            .Help("Messages moved to the dead-letter queue")
                            .Labels({{"bridge", bridge}})
                            .Register(r)),
          retries(prometheus::BuildCounter()
                      .Name("pgbridge_apply_retries_total")
                      .Help("Failed apply attempts sent to the retry queue")
                      .Labels({{"bridge", bridge}})
                      .Register(r)),
          schema_waits(prometheus::BuildCounter()
                           .Name("pgbridge_apply_schema_waits_total")
                           .Help("Apply attempts that wait for a column the target does not "
                                 "have yet (docs/schema-changes.md)")
                           .Labels({{"bridge", bridge}})
                           .Register(r)),
          local_version_waits(prometheus::BuildCounter()
                                  .Name("pgbridge_apply_local_version_waits_total")
                                  .Help("Apply attempts that waited for the target side's "
                                        "capture to record its own recent writes of the keys "
                                        "(docs/apply-design.md, Local versions)")
                                  .Labels({{"bridge", bridge}})
                                  .Register(r)),
          conflicts(prometheus::BuildCounter()
                        .Name("pgbridge_conflicts_total")
                        .Help("Conflicts met on apply, by table, column and strategy")
                        .Labels({{"bridge", bridge}})
                        .Register(r)),
          latency(prometheus::BuildHistogram()
                      .Name("pgbridge_apply_latency_seconds")
                      .Help("From the source commit to the target commit, per transaction")
                      .Labels({{"bridge", bridge}})
                      .Register(r)),
          slot_lag(prometheus::BuildGauge()
                       .Name("pgbridge_slot_lag_bytes")
                       .Help("WAL the side's slot holds that pgbridge has not confirmed")
                       .Labels({{"bridge", bridge}})
                       .Register(r)),
          queue(prometheus::BuildGauge()
                    .Name("pgbridge_queue_messages")
                    .Help("Messages waiting in a direction's queues (ready, retry, dead)")
                    .Labels({{"bridge", bridge}})
                    .Register(r)),
          last_commit(prometheus::BuildGauge()
                          .Name("pgbridge_last_applied_commit_timestamp_seconds")
                          .Help("Source commit time of the newest change applied on the target")
                          .Labels({{"bridge", bridge}})
                          .Register(r)),
          behind(prometheus::BuildGauge()
                     .Name("pgbridge_seconds_behind")
                     .Help("Now minus the newest applied source commit while changes wait; 0 "
                           "when caught up")
                     .Labels({{"bridge", bridge}})
                     .Register(r)),
          history_bytes(prometheus::BuildGauge()
                            .Name("pgbridge_history_bytes")
                            .Help("Size of pgbridge.history on the side ([history] retention)")
                            .Labels({{"bridge", bridge}})
                            .Register(r)),
          rollback_runs(prometheus::BuildGauge()
                            .Name("pgbridge_rollback_runs")
                            .Help("pgbridge rollback runs that wrote, undoing the side's changes "
                                  "(pgbridge.rollbacks)")
                            .Labels({{"bridge", bridge}})
                            .Register(r)),
          side_up(prometheus::BuildGauge()
                      .Name("pgbridge_side_up")
                      .Help("1 when the side's server answered the last probe")
                      .Labels({{"bridge", bridge}})
                      .Register(r)),
          broker_up(prometheus::BuildGauge()
                        .Name("pgbridge_broker_up")
                        .Help("1 when RabbitMQ answered the last probe")
                        .Labels({{"bridge", bridge}})
                        .Register(r)),
          verify_runs(prometheus::BuildCounter()
                          .Name("pgbridge_verify_runs_total")
                          .Help("Scheduled verify runs, by result: identical, differences, failed")
                          .Labels({{"bridge", bridge}})
                          .Register(r)),
          verify_differences(prometheus::BuildGauge()
                                 .Name("pgbridge_verify_differences")
                                 .Help("Keys that differ between the sides (drift, after any "
                                       "repair) at the last scheduled verify, by table")
                                 .Labels({{"bridge", bridge}})
                                 .Register(r)),
          verify_last_run(prometheus::BuildGauge()
                              .Name("pgbridge_verify_last_run_timestamp_seconds")
                              .Help("When the last scheduled verify finished")
                              .Labels({{"bridge", bridge}})
                              .Register(r)),
          verify_duration(prometheus::BuildGauge()
                              .Name("pgbridge_verify_last_duration_seconds")
                              .Help("How long the last scheduled verify took")
                              .Labels({{"bridge", bridge}})
                              .Register(r)),
          repairs(prometheus::BuildCounter()
                      .Name("pgbridge_repairs_total")
                      .Help("Keys written by scheduled repair (verify.auto_repair), by table")
                      .Labels({{"bridge", bridge}})
                      .Register(r)),
          build_info(prometheus::BuildGauge()
                         .Name("pgbridge_build_info")
                         .Help("Always 1; the labels say which pgbridge serves the metrics")
                         .Labels({{"bridge", bridge}})
                         .Register(r)),
          copy_rows(prometheus::BuildCounter()
                        .Name("pgbridge_copy_rows_total")
                        .Help("Rows the initial copy read from the source side, this process")
                        .Labels({{"bridge", bridge}})
                        .Register(r)),
          copy_rows_estimated(prometheus::BuildGauge()
                                  .Name("pgbridge_copy_rows_estimated")
                                  .Help("The planner's estimate of the rows of the tables the "
                                        "running (or last) initial copy reads")
                                  .Labels({{"bridge", bridge}})
                                  .Register(r)),
          safe_wal_size(prometheus::BuildGauge()
                            .Name("pgbridge_slot_safe_wal_size_bytes")
                            .Help("WAL that can still be written before the side's slot passes "
                                  "max_slot_wal_keep_size (absent when that is unlimited)")
                            .Labels({{"bridge", bridge}})
                            .Register(r)),
          copy_tables_left(prometheus::BuildGauge()
                               .Name("pgbridge_copy_tables_left")
                               .Help("Synced tables whose initial copy from the side has not "
                                     "been confirmed yet")
                               .Labels({{"bridge", bridge}})
                               .Register(r)) {}

    prometheus::Family<prometheus::Counter>& captured;
    prometheus::Family<prometheus::Counter>& published;
    prometheus::Family<prometheus::Counter>& applied;
    prometheus::Family<prometheus::Counter>& dead_lettered;
    prometheus::Family<prometheus::Counter>& retries;
    prometheus::Family<prometheus::Counter>& schema_waits;
    prometheus::Family<prometheus::Counter>& local_version_waits;
    prometheus::Family<prometheus::Counter>& conflicts;
    prometheus::Family<prometheus::Histogram>& latency;
    prometheus::Family<prometheus::Gauge>& slot_lag;
    prometheus::Family<prometheus::Gauge>& queue;
    prometheus::Family<prometheus::Gauge>& last_commit;
    prometheus::Family<prometheus::Gauge>& behind;
    prometheus::Family<prometheus::Gauge>& history_bytes;
    prometheus::Family<prometheus::Gauge>& rollback_runs;
    prometheus::Family<prometheus::Gauge>& side_up;
    prometheus::Family<prometheus::Gauge>& broker_up;
    prometheus::Family<prometheus::Counter>& verify_runs;
    prometheus::Family<prometheus::Gauge>& verify_differences;
    prometheus::Family<prometheus::Gauge>& verify_last_run;
    prometheus::Family<prometheus::Gauge>& verify_duration;
    prometheus::Family<prometheus::Counter>& repairs;
    prometheus::Family<prometheus::Gauge>& build_info;
    prometheus::Family<prometheus::Counter>& copy_rows;
    prometheus::Family<prometheus::Gauge>& copy_rows_estimated;
    prometheus::Family<prometheus::Gauge>& safe_wal_size;
    prometheus::Family<prometheus::Gauge>& copy_tables_left;
};

BridgeMetrics::BridgeMetrics(const Config& config)
    : registry_(std::make_shared<prometheus::Registry>()),
      families_(std::make_unique<Families>(*registry_, config.bridge_name)) {
    Families& f = *families_;
    f.build_info.Add({{"version", PGBRIDGE_VERSION}}).Set(1);
    // Every series a direction will have, from zero: a rate() or an alert on a counter that
    // appears only at its first event misses that event.
    for (const auto& source : config.sides) {
        for (const auto& target : config.sides) {
            if (source.name == target.name) {
                continue;
            }
            const auto labels = direction_labels(source.name, target.name);
            for (auto* family : {&f.captured, &f.published, &f.dead_lettered, &f.retries,
                                 &f.schema_waits, &f.local_version_waits}) {
                family->Add(labels);
            }
            f.latency.Add(labels, latency_buckets());
            for (const auto& table : config.tables) {
                for (const char* op : kOps) {
                    f.applied.Add(with(with(labels, "table", table.name_on(target.name).display()),
                                       "op", op));
                }
            }
        }
        f.copy_rows.Add({{"side", source.name}});
    }
    MetricsServerOptions options;
    options.listen = config.metrics_listen.value_or("127.0.0.1:0");
    options.user = config.metrics_access.user;
    options.password = config.metrics_access.password;
    options.cert_file = config.metrics_access.cert_file;
    options.key_file = config.metrics_access.key_file;
    server_ = std::make_unique<MetricsServer>(std::move(options), [registry = registry_] {
        return prometheus::TextSerializer().Serialize(registry->Collect());
    });
}

BridgeMetrics::~BridgeMetrics() = default;

std::uint16_t BridgeMetrics::port() const {
    return server_->port();
}

void BridgeMetrics::batch_applied(const apply::AppliedBatch& batch) {
    const auto labels = direction_labels(batch.source, batch.target);
    Families& f = *families_;
    for (const auto& t : batch.tables) {
        for (const auto& [op, n] : {std::pair{"insert", t.inserted}, std::pair{"update", t.updated},
                                    std::pair{"delete", t.deleted}, std::pair{"skip", t.skipped}}) {
            if (n > 0) {
                f.applied.Add(with(with(labels, "table", t.table), "op", op))
                    .Increment(static_cast<double>(n));
            }
        }
    }
    for (const auto& c : batch.conflicts) {
        f.conflicts
            .Add(with(with(with(labels, "table", c.table), "column",
                           c.column.empty() ? "(row)" : c.column),
                      "strategy", c.strategy))
            .Increment();
    }
    auto& histogram = f.latency.Add(labels, latency_buckets());
    for (const double seconds : batch.latencies) {
        histogram.Observe(seconds);
    }
    if (batch.last_commit_time != 0) {
        // The shards of a direction report at once: the newest wins, whichever sets it last.
        const std::lock_guard lock(mutex_);
        auto& gauge = f.last_commit.Add(labels);
        gauge.Set(std::max(gauge.Value(), static_cast<double>(batch.last_commit_time) / 1e6));
    }
}

void BridgeMetrics::update_totals(const std::string& source, const std::string& target,
                                  const DirectionCounters& totals) {
    const auto labels = direction_labels(source, target);
    const std::lock_guard lock(mutex_);
    DirectionCounters& seen = seen_[direction_of(source, target)];
    const auto advance = [&](prometheus::Family<prometheus::Counter>& family, std::uint64_t& was,
                             std::uint64_t now, const prometheus::Labels& at) {
        auto& counter = family.Add(at);
        if (now > was) {
            counter.Increment(static_cast<double>(now - was));
            was = now;
        }
    };
    Families& f = *families_;
    advance(f.captured, seen.captured_changes, totals.captured_changes, labels);
    advance(f.published, seen.published_messages, totals.published_messages, labels);
    advance(f.dead_lettered, seen.dead_lettered, totals.dead_lettered, labels);
    advance(f.retries, seen.retries, totals.retries, labels);
    advance(f.schema_waits, seen.schema_waits, totals.schema_waits, labels);
    advance(f.local_version_waits, seen.local_version_waits, totals.local_version_waits, labels);
    const prometheus::Labels side{{"side", source}};
    advance(f.copy_rows, seen.copy_rows, totals.copy_rows, side);
    if (totals.copy_rows_estimated > 0) {
        f.copy_rows_estimated.Add(side).Set(static_cast<double>(totals.copy_rows_estimated));
    }
}

void BridgeMetrics::update_probe(const BridgeProbe& probe, const std::vector<DirectionLag>& lag) {
    Families& f = *families_;
    for (const auto& s : probe.sides) {
        const prometheus::Labels side{{"side", s.side}};
        f.side_up.Add(side).Set(s.reachable ? 1 : 0);
        set_or_drop(f.slot_lag, side,
                    s.reachable && s.slot_lag_bytes
                        ? std::optional(static_cast<double>(*s.slot_lag_bytes))
                        : std::nullopt);
        set_or_drop(f.safe_wal_size, side,
                    s.reachable && s.safe_wal_size_bytes
                        ? std::optional(static_cast<double>(*s.safe_wal_size_bytes))
                        : std::nullopt);
        set_or_drop(f.history_bytes, side,
                    s.reachable && s.history_bytes
                        ? std::optional(static_cast<double>(*s.history_bytes))
                        : std::nullopt);
        set_or_drop(f.rollback_runs, side,
                    s.reachable && s.rollback_runs
                        ? std::optional(static_cast<double>(*s.rollback_runs))
                        : std::nullopt);
        set_or_drop(
            f.copy_tables_left, side,
            s.reachable ? std::optional(static_cast<double>(s.tables_not_copied)) : std::nullopt);
    }
    f.broker_up.Add({}).Set(probe.broker.reachable ? 1 : 0);
    for (const auto& d : lag) {
        const auto labels = direction_labels(d.source, d.target);
        const QueueDepth* q = probe.broker.reachable ? probe.queue_to(d.target) : nullptr;
        for (const auto& [name, member] :
             {std::pair{"ready", &QueueDepth::ready}, std::pair{"retry", &QueueDepth::retrying},
              std::pair{"dead", &QueueDepth::dead}}) {
            const auto value = q != nullptr ? q->*member : std::nullopt;
            set_or_drop(f.queue, with(labels, "queue", name),
                        value ? std::optional(static_cast<double>(*value)) : std::nullopt);
        }
        set_or_drop(f.behind, labels, d.seconds_behind);
    }
}

void BridgeMetrics::verify_finished(const VerifyOutcome& outcome) {
    Families& f = *families_;
    std::uint64_t differences = 0;
    for (const auto& [table, n] : outcome.differences) {
        f.verify_differences.Add({{"table", table}}).Set(static_cast<double>(n));
        differences += n;
    }
    for (const auto& [table, n] : outcome.repaired) {
        f.repairs.Add({{"table", table}}).Increment(static_cast<double>(n));
    }
    const char* result = outcome.failed ? "failed" : differences > 0 ? "differences" : "identical";
    f.verify_runs.Add({{"result", result}}).Increment();
    f.verify_last_run.Add({}).SetToCurrentTime();
    f.verify_duration.Add({}).Set(outcome.seconds);
}

}  // namespace pgbridge::metrics
