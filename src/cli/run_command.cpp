// pgbridge run: the daemon. Both directions of the bridge, systemd notifications, SIGTERM to
// stop without losing anything, SIGHUP to reload the conflict rules and the log level.

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <ctime>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include <pgbridge/cli/commands.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/config/conflict_rules.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/error_policy.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/metrics/bridge_metrics.hpp>
#include <pgbridge/metrics/bridge_probe.hpp>
#include <pgbridge/run/bridge_lock.hpp>
#include <pgbridge/run/direction.hpp>
#include <pgbridge/run/resync.hpp>
#include <pgbridge/run/scheduled_verify.hpp>
#include <pgbridge/run/side_readiness.hpp>
#include <pgbridge/run/systemd_notify.hpp>
#include <pgbridge/transport/message_signature.hpp>

namespace pgbridge::cli {
namespace {

void apply_log_level(const Config& config, const GlobalOptions& global) {
    // -v lowers the configured level by one step per flag.
    const int level = std::max(0, static_cast<int>(config.logging.level) - global.verbosity);
    log::set_level(static_cast<log::Level>(level));
    log::set_format(config.logging.format);
}

sigset_t daemon_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    return set;
}

std::string status_line(const std::vector<std::unique_ptr<run::Direction>>& directions) {
    std::string line;
    for (const auto& d : directions) {
        const run::DirectionCounters c = d->counters();
        line += fmt::format("{}{}->{}: {}{}, captured {}, applied {}, conflicts {}, dead {}",
                            line.empty() ? "" : "; ", d->source(), d->target(),
                            c.streaming && c.consuming ? "streaming" : "connecting",
                            c.copy_done ? "" : " (initial copy running)", c.captured_changes,
                            c.applied_changes, c.conflicts, c.dead_lettered);
    }
    return line;
}

// Re-reads the file; what can change while running (rules, log level) takes effect, the rest
// is reported as needing a restart. A file that does not load changes nothing.
void reload(const GlobalOptions& global, const Config& running,
            const std::vector<std::unique_ptr<run::Direction>>& directions) {
    run::notify_systemd("RELOADING=1");
    try {
        const Config next = load_config(global.config_path);
        apply_log_level(next, global);
        for (const auto& d : directions) {
            d->reload(ConflictRules(next));
        }
        const bool same_shape = next.bridge_name == running.bridge_name &&
                                next.tables.size() == running.tables.size() &&
                                next.sides.size() == running.sides.size();
        log::info("run",
                  "configuration reloaded: conflict rules and log level; the synced tables are "
                  "described again from the catalogs",
                  {{"file", global.config_path},
                   {"log_level", std::string(log::to_string(next.logging.level))},
                   {"log_format", std::string(log::to_string(next.logging.format))}});
        if (!same_shape) {
            log::warning("run", "sides, tables or the bridge name changed: restart to use them",
                         {{"file", global.config_path}});
        }
    } catch (const Error& e) {
        log::error("run", "configuration not reloaded; keeping the running one",
                   {{"error", e.what()}});
    }
    run::notify_systemd("READY=1");
}

// Reads the servers for the metrics' gauges (slot lag, queue depth, seconds behind) every few
// seconds on its own thread, so a slow or absent server never holds up the daemon.
class MetricsProbe {
  public:
    MetricsProbe(const Config& config, metrics::BridgeMetrics& metrics)
        : config_(config), metrics_(metrics), thread_([this] { loop(); }) {}
    ~MetricsProbe() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        thread_.join();
    }

  private:
    void loop() {
        std::unique_lock lock(mutex_);
        while (!stopping_) {
            lock.unlock();
            const metrics::BridgeProbe probe = metrics::probe_bridge(config_);
            metrics_.update_probe(probe, metrics::lag_of(config_, probe));
            lock.lock();
            wake_.wait_for(lock, std::chrono::seconds(5), [&] { return stopping_; });
        }
    }

    const Config& config_;
    metrics::BridgeMetrics& metrics_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread thread_;
};

void update_totals(metrics::BridgeMetrics* metrics,
                   const std::vector<std::unique_ptr<run::Direction>>& directions) {
    if (metrics == nullptr) {
        return;
    }
    for (const auto& d : directions) {
        metrics->update_totals(d->source(), d->target(), d->counters());
    }
}

enum class LockOutcome { Held, HeldByAnother, LoginRefused, Stopped };

// Takes the bridge lock on both sides before anything else is touched, while answering
// SIGTERM: a side that cannot be reached yet is waited for.
LockOutcome take_bridge_lock(run::BridgeLock& lock, const Config& config, const sigset_t& signals) {
    std::optional<run::LockHolder> holder;
    std::exception_ptr failure;
    std::atomic<bool> done{false};
    std::jthread taking([&](std::stop_token stop) {
        try {
            holder = lock.acquire(stop);
        } catch (...) {
            failure = std::current_exception();
        }
        done = true;
    });
    while (!done) {
        timespec wait{0, 100'000'000};
        const int signal = sigtimedwait(&signals, nullptr, &wait);
        if (signal == SIGTERM || signal == SIGINT) {
            taking.request_stop();
            taking.join();
            log::info("run", "stopped before the bridge lock was taken");
            return LockOutcome::Stopped;
        }
    }
    taking.join();
    if (failure) {
        const Error error = as_error(failure);
        if (is_refused_login(error)) {
            log::error(
                "run", "a side refused pgbridge's login; retrying cannot help",
                {{"side", std::string(error.context_value("side"))}, {"error", error.what()}});
            return LockOutcome::LoginRefused;
        }
        std::rethrow_exception(failure);
    }
    if (holder) {
        log::error("run",
                   fmt::format("bridge {} is already running: {}; stop that one first (one "
                               "pgbridge run per bridge)",
                               config.bridge_name, holder->describe()),
                   {{"bridge", config.bridge_name}});
        return LockOutcome::HeldByAnother;
    }
    return LockOutcome::Held;
}

}  // namespace

int run_command(const GlobalOptions& global) {
    const Config config = load_config(global.config_path);
    apply_log_level(config, global);
    for (const auto& warning : config.warnings) {
        log::warning("config", warning);
    }
    if (!config.rabbitmq.signing_keys.empty()) {
        transport::check_hmac_sha256();
    }
    // Signals are taken by the main thread only, synchronously (sigtimedwait): every thread
    // started from here inherits the blocked mask.
    const sigset_t signals = daemon_signals();
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    run::BridgeLock bridge_lock(config, config.engine.timeout_ms);
    switch (take_bridge_lock(bridge_lock, config, signals)) {
        case LockOutcome::Held:
            break;
        case LockOutcome::HeldByAnother:
        case LockOutcome::LoginRefused:
            return 2;
        case LockOutcome::Stopped:
            return 0;
    }
    bridge_lock.watch(std::chrono::seconds(2));
    const std::optional<bool> resync_needed = run::check_bridge_ready(config);
    if (!resync_needed) {
        return 2;
    }

    std::unique_ptr<metrics::BridgeMetrics> metrics;
    std::unique_ptr<MetricsProbe> probe;
    if (config.metrics_listen) {
        metrics = std::make_unique<metrics::BridgeMetrics>(config);
        probe = std::make_unique<MetricsProbe>(config, *metrics);
        log::info("run", "serving metrics",
                  {{"listen", *config.metrics_listen},
                   {"basic_auth", config.metrics_access.user.empty() ? "no" : "yes"}});
    }
    std::vector<std::unique_ptr<run::Direction>> directions;
    const std::string& a = config.sides[0].name;
    const std::string& b = config.sides[1].name;
    // How far each side's capture has recorded that side's local writes: the capture of one
    // direction moves it, the applier of the other reads it.
    const auto versions_a = std::make_shared<VersionsWatermark>();
    const auto versions_b = std::make_shared<VersionsWatermark>();
    directions.push_back(
        std::make_unique<run::Direction>(config, a, b, metrics.get(), versions_a, versions_b));
    directions.push_back(
        std::make_unique<run::Direction>(config, b, a, metrics.get(), versions_b, versions_a));
    for (const auto& d : directions) {
        d->start();
    }
    log::info("run", "started", {{"bridge", config.bridge_name}, {"sides", a + "," + b}});
    std::unique_ptr<run::ScheduledVerify> scheduled_verify;
    if (config.verify.schedule) {
        scheduled_verify = std::make_unique<run::ScheduledVerify>(config, metrics.get());
        log::info("run", "verify scheduled",
                  {{"schedule", config.verify.schedule->text()},
                   {"auto_repair", config.verify.auto_repair ? "true" : "false"}});
    }

    std::unique_ptr<run::Resync> resync;
    bool ready = false;
    int exit_code = 0;
    auto next_status = std::chrono::steady_clock::now();
    for (;;) {
        timespec wait{0, 200'000'000};
        const int signal = sigtimedwait(&signals, nullptr, &wait);
        if (signal == SIGTERM || signal == SIGINT) {
            log::info("run", "stopping", {{"signal", signal == SIGTERM ? "TERM" : "INT"}});
            break;
        }
        if (signal == SIGHUP) {
            reload(global, config, directions);
        }
        std::optional<std::string> failure = bridge_lock.lost();
        for (const auto& d : directions) {
            if (!failure) {
                failure = d->failure();
            }
        }
        if (failure) {
            log::error("run", "a direction cannot go on; stopping", {{"error", *failure}});
            exit_code = 1;
            break;
        }
        const auto now = std::chrono::steady_clock::now();
        if (!ready) {
            bool all = true;
            for (const auto& d : directions) {
                const run::DirectionCounters c = d->counters();
                all = all && c.streaming && c.consuming;
            }
            if (all) {
                ready = true;
                run::notify_systemd("READY=1");
                log::info("run", "streaming both directions", {{"bridge", config.bridge_name}});
                if (*resync_needed) {
                    resync = std::make_unique<run::Resync>(config);
                }
            }
        }
        if (now >= next_status) {
            update_totals(metrics.get(), directions);
            run::notify_systemd("STATUS=" + status_line(directions));
            next_status = now + std::chrono::seconds(2);
        }
    }
    run::notify_systemd("STOPPING=1");
    scheduled_verify.reset();  // cancels a run in progress
    resync.reset();
    for (const auto& d : directions) {
        d->request_stop();
    }
    for (const auto& d : directions) {
        d->stop();
    }
    log::info("run", "stopped", {{"status", status_line(directions)}});
    return exit_code;
}

}  // namespace pgbridge::cli
