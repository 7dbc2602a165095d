#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/metrics/bridge_metrics.hpp>

namespace pgbridge::metrics {
namespace {

std::string direction_of(const std::string& source, const std::string& target) {
    return source + "->" + target;
}

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
    prometheus::Family<prometheus::Gauge>& side_up;
    prometheus::Family<prometheus::Gauge>& broker_up;
    prometheus::Family<prometheus::Counter>& verify_runs;
    prometheus::Family<prometheus::Gauge>& verify_differences;
    prometheus::Family<prometheus::Gauge>& verify_last_run;
    prometheus::Family<prometheus::Gauge>& verify_duration;
    prometheus::Family<prometheus::Counter>& repairs;
};

BridgeMetrics::BridgeMetrics(const std::string& listen, const std::string& bridge,
                             const Config::MetricsAccess& access)
    : registry_(std::make_shared<prometheus::Registry>()),
      families_(std::make_unique<Families>(*registry_, bridge)) {
    MetricsServerOptions options;
    options.listen = listen;
    options.user = access.user;
    options.password = access.password;
    options.cert_file = access.cert_file;
    options.key_file = access.key_file;
    server_ = std::make_unique<MetricsServer>(std::move(options), [registry = registry_] {
        return prometheus::TextSerializer().Serialize(registry->Collect());
    });
}

BridgeMetrics::~BridgeMetrics() = default;

std::uint16_t BridgeMetrics::port() const {
    return server_->port();
}

void BridgeMetrics::batch_applied(const apply::AppliedBatch& batch) {
    const std::string direction = direction_of(batch.source, batch.target);
    Families& f = *families_;
    for (const auto& t : batch.tables) {
        for (const auto& [op, n] : {std::pair{"insert", t.inserted}, std::pair{"update", t.updated},
                                    std::pair{"delete", t.deleted}, std::pair{"skip", t.skipped}}) {
            if (n > 0) {
                f.applied.Add({{"direction", direction}, {"table", t.table}, {"op", op}})
                    .Increment(static_cast<double>(n));
            }
        }
    }
    for (const auto& c : batch.conflicts) {
        f.conflicts
            .Add({{"direction", direction},
                  {"table", c.table},
                  {"column", c.column.empty() ? "(row)" : c.column},
                  {"strategy", c.strategy}})
            .Increment();
    }
    auto& histogram = f.latency.Add(
        {{"direction", direction}},
        prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                0.5, 1, 2.5, 5, 10, 30, 60, 300});
    for (const double seconds : batch.latencies) {
        histogram.Observe(seconds);
    }
    if (batch.last_commit_time != 0) {
        auto& gauge = f.last_commit.Add({{"direction", direction}});
        gauge.Set(std::max(gauge.Value(), static_cast<double>(batch.last_commit_time) / 1e6));
    }
}

void BridgeMetrics::update_totals(const std::string& source, const std::string& target,
                                  const DirectionCounters& totals) {
    const std::string direction = direction_of(source, target);
    const std::lock_guard lock(mutex_);
    DirectionCounters& seen = seen_[direction];
    const auto advance = [&](prometheus::Family<prometheus::Counter>& family, std::uint64_t& was,
                             std::uint64_t now) {
        auto& counter = family.Add({{"direction", direction}});
        if (now > was) {
            counter.Increment(static_cast<double>(now - was));
            was = now;
        }
    };
    Families& f = *families_;
    advance(f.captured, seen.captured_changes, totals.captured_changes);
    advance(f.published, seen.published_messages, totals.published_messages);
    advance(f.dead_lettered, seen.dead_lettered, totals.dead_lettered);
    advance(f.retries, seen.retries, totals.retries);
    advance(f.schema_waits, seen.schema_waits, totals.schema_waits);
    advance(f.local_version_waits, seen.local_version_waits, totals.local_version_waits);
}

void BridgeMetrics::update_probe(const BridgeProbe& probe, const std::vector<DirectionLag>& lag) {
    Families& f = *families_;
    for (const auto& s : probe.sides) {
        f.side_up.Add({{"side", s.side}}).Set(s.reachable ? 1 : 0);
        if (s.slot_lag_bytes) {
            f.slot_lag.Add({{"side", s.side}}).Set(static_cast<double>(*s.slot_lag_bytes));
        }
    }
    f.broker_up.Add({}).Set(probe.broker.reachable ? 1 : 0);
    for (const auto& d : lag) {
        const std::string direction = direction_of(d.source, d.target);
        if (const QueueDepth* q = probe.queue_to(d.target); q != nullptr) {
            for (const auto& [name, value] :
                 {std::pair{"ready", q->ready}, std::pair{"retry", q->retrying},
                  std::pair{"dead", q->dead}}) {
                if (value) {
                    f.queue.Add({{"direction", direction}, {"queue", name}})
                        .Set(static_cast<double>(*value));
                }
            }
        }
        if (d.seconds_behind) {
            f.behind.Add({{"direction", direction}}).Set(*d.seconds_behind);
        }
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
