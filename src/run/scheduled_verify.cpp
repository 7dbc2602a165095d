#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/run/scheduled_verify.hpp>
#include <pgbridge/verify/repair.hpp>

namespace pgbridge::run {
namespace {

// Nice value of the verify thread: the live stream goes first on a busy machine.
constexpr int kNiceness = 10;

}  // namespace

ScheduledVerify::ScheduledVerify(const Config& config, metrics::BridgeMetrics* metrics)
    : config_(config), metrics_(metrics), thread_([this] { loop(); }) {}

ScheduledVerify::~ScheduledVerify() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

bool ScheduledVerify::stopping() const {
    const std::lock_guard lock(mutex_);
    return stopping_;
}

void ScheduledVerify::loop() {
    // Linux nices threads one by one (the thread id is a process id to setpriority).
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), kNiceness);
    const CronSchedule& schedule = *config_.verify.schedule;
    for (;;) {
        const auto now = std::chrono::system_clock::now();
        const auto next = schedule.next_after(std::chrono::floor<std::chrono::seconds>(now));
        if (!next) {
            log::warning("verify", "the schedule names no future time; scheduled verify is off",
                         {{"schedule", schedule.text()}});
            return;
        }
        log::debug("verify", "next scheduled verify",
                   {{"at", fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", *next)}});
        {
            std::unique_lock lock(mutex_);
            if (wake_.wait_until(lock, *next, [&] { return stopping_; })) {
                return;
            }
        }
        run_once();
    }
}

void ScheduledVerify::run_once() {
    verify::VerifyOptions options;
    options.fence_timeout = std::chrono::milliseconds(std::max(60000, config_.engine.timeout_ms));
    options.cancelled = [this] { return stopping(); };
    const bool repair = config_.verify.auto_repair;
    log::info("verify", repair ? "scheduled verify and repair started" : "scheduled verify started",
              {{"schedule", config_.verify.schedule->text()}});
    metrics::VerifyOutcome outcome;
    const auto start = std::chrono::steady_clock::now();
    try {
        const verify::RepairReport report =
            verify::verify_and_repair(config_, options, /*dry_run=*/!repair);
        std::size_t drift = 0;
        std::size_t pending = 0;
        for (std::size_t t = 0; t < report.verify.tables.size(); ++t) {
            const verify::TableReport& table = report.verify.tables[t];
            std::uint64_t written = 0;
            for (const auto& o : report.tables[t].outcomes) {
                written += o.written ? 1 : 0;
            }
            const std::uint64_t left = table.differences.size() - (repair ? written : 0);
            outcome.differences[table.table.display()] = left;
            outcome.repaired[table.table.display()] = repair ? written : 0;
            drift += left;
            pending += table.pending_conflicts.size();
            if (!table.differences.empty()) {
                log::warning("verify", "the sides differ",
                             {{"table", table.table.display()},
                              {"differences", std::to_string(table.differences.size())},
                              {"repaired", std::to_string(repair ? written : 0)}});
            }
        }
        outcome.seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        log::info("verify", "scheduled verify finished",
                  {{"tables", std::to_string(report.verify.tables.size())},
                   {"differences", std::to_string(drift)},
                   {"repaired", std::to_string(report.written)},
                   {"pending_conflicts", std::to_string(pending)},
                   {"seconds", fmt::format("{:.2f}", outcome.seconds)}});
    } catch (const Error& e) {
        if (stopping()) {
            return;
        }
        outcome.failed = true;
        outcome.seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        log::error("verify", "scheduled verify failed; trying again at the next scheduled time",
                   {{"error", e.what()}});
    }
    if (metrics_ != nullptr) {
        metrics_->verify_finished(outcome);
    }
}

}  // namespace pgbridge::run
