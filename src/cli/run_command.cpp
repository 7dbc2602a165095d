// pgbridge run: the daemon. Both directions of the bridge, systemd notifications, SIGTERM to
// stop without losing anything, SIGHUP to reload the conflict rules and the log level.

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <csignal>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include <pgbridge/apply/recorded_versions_poller.hpp>
#include <pgbridge/cli/commands.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/config/conflict_rules.hpp>
#include <pgbridge/config/side_connection.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/error_policy.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/metrics/bridge_metrics.hpp>
#include <pgbridge/metrics/bridge_probe.hpp>
#include <pgbridge/run/bridge_lock.hpp>
#include <pgbridge/run/direction.hpp>
#include <pgbridge/run/history_maintenance.hpp>
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
        const auto brokers = [](const Config& c) {
            std::vector<std::string> urls;
            for (const auto& side : c.sides) {
                urls.push_back(c.broker_of(side.name).url.redacted());
            }
            return urls;
        };
        const bool same_shape =
            next.bridge_name == running.bridge_name &&
            next.tables.size() == running.tables.size() &&
            next.sides.size() == running.sides.size() && brokers(next) == brokers(running) &&
            next.engine.apply_workers == running.engine.apply_workers &&
            next.engine.remote_apply_shards == running.engine.remote_apply_shards &&
            next.history.retention == running.history.retention;
        log::info("run",
                  "configuration reloaded: conflict rules and log level; the synced tables are "
                  "described again from the catalogs",
                  {{"file", global.config_path},
                   {"log_level", std::string(log::to_string(next.logging.level))},
                   {"log_format", std::string(log::to_string(next.logging.format))}});
        if (!same_shape) {
            log::warning("run",
                         "sides, tables, brokers, apply shards, history or the bridge name "
                         "changed: restart to use them",
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

// What the supervision loop watches besides the directions, and what it does once they run.
struct Supervision {
    // Why the process must stop besides its directions (the bridge lock lost), if it must.
    std::function<std::optional<std::string>()> lost;
    // Once every direction streams and consumes.
    std::function<void()> on_ready;
    metrics::BridgeMetrics* metrics = nullptr;
    std::string ready_message;
};

// Runs the directions until SIGTERM or a failure: SIGHUP reloads, systemd hears READY once
// every part streams and a status line every 2 s. Returns the exit code.
int supervise(const GlobalOptions& global, const Config& config, const sigset_t& signals,
              const std::vector<std::unique_ptr<run::Direction>>& directions,
              const Supervision& supervision) {
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
        std::optional<std::string> failure =
            supervision.lost ? supervision.lost() : std::optional<std::string>();
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
                log::info("run", supervision.ready_message, {{"bridge", config.bridge_name}});
                if (supervision.on_ready) {
                    supervision.on_ready();
                }
            }
        }
        if (now >= next_status) {
            update_totals(supervision.metrics, directions);
            run::notify_systemd("STATUS=" + status_line(directions));
            next_status = now + std::chrono::seconds(2);
        }
    }
    run::notify_systemd("STOPPING=1");
    return exit_code;
}

void stop_all(const std::vector<std::unique_ptr<run::Direction>>& directions) {
    for (const auto& d : directions) {
        d->request_stop();
    }
    for (const auto& d : directions) {
        d->stop();
    }
    log::info("run", "stopped", {{"status", status_line(directions)}});
}

// --shard I/N: I, 0-based, once checked against the configuration.
std::optional<std::uint32_t> parse_shard(const std::string& text, const Config& config,
                                         const std::string& file) {
    const auto slash = text.find('/');
    int index = 0;
    int count = 0;
    const auto number = [](std::string_view digits, int& out) {
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
        return ec == std::errc() && end == digits.data() + digits.size();
    };
    const std::string_view all(text);
    if (slash == std::string::npos || !number(all.substr(0, slash), index) ||
        !number(all.substr(slash + 1), count) || index < 1 || index > count) {
        log::error("run", "--shard takes I/N: shard I of N, 1 <= I <= N", {{"shard", text}});
        return std::nullopt;
    }
    if (count != config.engine.apply_workers) {
        log::error("run",
                   fmt::format("--shard {} is for {} apply workers; the configuration has "
                               "[engine] apply_workers = {}",
                               text, count, config.engine.apply_workers),
                   {{"file", file}});
        return std::nullopt;
    }
    if (!config.engine.applied_remotely(index)) {
        log::error("run",
                   fmt::format("shard {} is applied by pgbridge run itself; list it in [engine] "
                               "remote_apply_shards (and restart pgbridge run) to apply it here",
                               index),
                   {{"file", file}});
        return std::nullopt;
    }
    return static_cast<std::uint32_t>(index - 1);
}

// One shard of both directions, with neither capture: each target's capture (in pgbridge
// run) is followed through pgbridge.local_versions.
int run_apply_only(const GlobalOptions& global, const Config& config, std::uint32_t shard,
                   const sigset_t& signals) {
    // Exit 2 (no restart) only for what waiting cannot mend: a broker away is waited for.
    try {
        run::check_broker_ready(config);
    } catch (const Error& e) {
        if (e.kind() == ErrorKind::Setup || is_refused_login(e)) {
            log::error("run", e.message(), {{"error", e.what()}});
            return 2;
        }
        log::warning("run",
                     "the broker cannot be reached; setup's queues were not checked (the "
                     "consumers connect when it is back)",
                     {{"error", e.what()}});
    }
    // Workers write history too: their partitions must be there whoever runs.
    std::unique_ptr<run::HistoryMaintenance> history;
    if (config.history.enabled()) {
        history = std::make_unique<run::HistoryMaintenance>(config);
    }
    std::vector<std::unique_ptr<apply::RecordedVersionsPoller>> pollers;
    std::vector<std::unique_ptr<run::Direction>> directions;
    const auto parts = run::DirectionParts::apply_only(shard);
    for (const auto& [source, target] : {std::pair{config.sides[0].name, config.sides[1].name},
                                         std::pair{config.sides[1].name, config.sides[0].name}}) {
        auto target_versions = std::make_shared<VersionsWatermark>();
        pollers.push_back(std::make_unique<apply::RecordedVersionsPoller>(
            side_connect_options(config.side(target), config.engine.timeout_ms,
                                 "pgbridge run --apply-only: local versions"),
            config.bridge_name, target, target_versions));
        directions.push_back(std::make_unique<run::Direction>(config, source, target, parts,
                                                              nullptr, nullptr, target_versions));
    }
    for (const auto& d : directions) {
        d->start();
    }
    const std::string shard_text = fmt::format("{}/{}", shard + 1, config.engine.apply_workers);
    log::info("run", "apply-only worker started",
              {{"bridge", config.bridge_name}, {"shard", shard_text}});
    Supervision supervision;
    supervision.ready_message = "applying shard " + shard_text + " both ways";
    const int exit_code = supervise(global, config, signals, directions, supervision);
    stop_all(directions);
    return exit_code;
}

}  // namespace

int run_command(const GlobalOptions& global, const RunCommandOptions& options) {
    const Config config = load_config(global.config_path);
    apply_log_level(config, global);
    for (const auto& warning : config.warnings) {
        log::warning("config", warning);
    }
    if (!config.rabbitmq.signing_keys.empty()) {
        transport::check_hmac_sha256();
    }
    std::optional<std::uint32_t> shard;
    if (options.apply_only) {
        shard = parse_shard(options.shard, config, global.config_path);
        if (!shard) {
            return 2;
        }
    }
    // Signals are taken by the main thread only, synchronously (sigtimedwait): every thread
    // started from here inherits the blocked mask.
    const sigset_t signals = daemon_signals();
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    if (shard) {
        return run_apply_only(global, config, *shard, signals);
    }

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
    // Before anything writes history: today's partition must be there.
    std::unique_ptr<run::HistoryMaintenance> history;
    if (config.history.enabled()) {
        history = std::make_unique<run::HistoryMaintenance>(config);
    }
    std::vector<std::unique_ptr<run::Direction>> directions;
    const std::string& a = config.sides[0].name;
    const std::string& b = config.sides[1].name;
    // How far each side's capture has recorded that side's local writes: the capture of one
    // direction moves it, the applier of the other reads it.
    const auto versions_a = std::make_shared<VersionsWatermark>();
    const auto versions_b = std::make_shared<VersionsWatermark>();
    const auto parts = run::DirectionParts::daemon(config);
    directions.push_back(std::make_unique<run::Direction>(config, a, b, parts, metrics.get(),
                                                          versions_a, versions_b));
    directions.push_back(std::make_unique<run::Direction>(config, b, a, parts, metrics.get(),
                                                          versions_b, versions_a));
    for (const auto& d : directions) {
        d->start();
    }
    log::info("run", "started", {{"bridge", config.bridge_name}, {"sides", a + "," + b}});
    if (!config.engine.remote_apply_shards.empty()) {
        std::string remote;
        for (const int s : config.engine.remote_apply_shards) {
            remote += (remote.empty() ? "" : ",") + std::to_string(s);
        }
        log::info("run", "shards applied by apply-only workers (pgbridge run --apply-only)",
                  {{"shards", remote}});
    }
    std::unique_ptr<run::ScheduledVerify> scheduled_verify;
    if (config.verify.schedule) {
        scheduled_verify = std::make_unique<run::ScheduledVerify>(config, metrics.get());
        log::info("run", "verify scheduled",
                  {{"schedule", config.verify.schedule->text()},
                   {"auto_repair", config.verify.auto_repair ? "true" : "false"}});
    }

    std::unique_ptr<run::Resync> resync;
    Supervision supervision;
    supervision.lost = [&bridge_lock] { return bridge_lock.lost(); };
    supervision.metrics = metrics.get();
    supervision.ready_message = "streaming both directions";
    supervision.on_ready = [&] {
        if (*resync_needed) {
            resync = std::make_unique<run::Resync>(config);
        }
    };
    const int exit_code = supervise(global, config, signals, directions, supervision);
    scheduled_verify.reset();  // cancels a run in progress
    resync.reset();
    stop_all(directions);
    return exit_code;
}

}  // namespace pgbridge::cli
