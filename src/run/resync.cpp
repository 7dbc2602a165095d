#include <condition_variable>
#include <mutex>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/run/resync.hpp>
#include <pgbridge/verify/repair.hpp>

namespace pgbridge::run {

Resync::Resync(const Config& config)
    : config_(config), thread_([this](std::stop_token stop) { run(stop); }) {}

Resync::~Resync() = default;  // the jthread asks to stop and joins

void Resync::run(std::stop_token stop) {
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 10);
    std::mutex mutex;
    std::condition_variable_any wake;
    for (int attempt = 1; !stop.stop_requested(); ++attempt) {
        verify::VerifyOptions options;
        options.fence_timeout =
            std::chrono::milliseconds(std::max(60000, config_.engine.timeout_ms));
        options.cancelled = [&stop] { return stop.stop_requested(); };
        log::info("resync", "repairing every synced table: a slot was created again",
                  {{"attempt", std::to_string(attempt)}});
        try {
            const verify::RepairReport report =
                verify::verify_and_repair(config_, options, /*dry_run=*/false);
            if (report.skipped == 0) {
                verify::mark_copies_current(config_);
                log::info("resync", "done: the copies count as the current slots' own",
                          {{"differences", std::to_string(report.written + report.undecided)},
                           {"repaired", std::to_string(report.written)},
                           {"left_to_conflicts", std::to_string(report.undecided)}});
                done_ = true;
                return;
            }
            log::warning("resync", "some keys kept changing; repairing again",
                         {{"skipped", std::to_string(report.skipped)}});
        } catch (const Error& e) {
            if (stop.stop_requested()) {
                return;
            }
            log::warning("resync", "repair failed; trying again in a minute",
                         {{"error", e.what()}});
        }
        std::unique_lock lock(mutex);
        wake.wait_for(lock, stop, std::chrono::seconds(60), [] { return false; });
    }
}

}  // namespace pgbridge::run
