#include <pgbridge/config/side_connection.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/core/wait_for_stop.hpp>
#include <pgbridge/pg/connection.hpp>
#include <pgbridge/run/history_maintenance.hpp>

namespace pgbridge::run {

HistoryMaintenance::HistoryMaintenance(const Config& config) : config_(config) {
    const bool done = maintain_all();
    thread_ = std::jthread([this, done](std::stop_token stop) {
        auto next = done ? std::chrono::minutes(60) : std::chrono::minutes(1);
        while (!wait_for_stop(stop, next)) {
            next = maintain_all() ? std::chrono::minutes(60) : std::chrono::minutes(1);
        }
    });
}

bool HistoryMaintenance::maintain_all() {
    const std::string retention = std::to_string(config_.history.retention->count()) + " seconds";
    bool all = true;
    for (const auto& side : config_.sides) {
        try {
            auto conn = pg::Connection::open(side_connect_options(
                side, config_.engine.timeout_ms, "pgbridge run: history maintenance"));
            // The retention applied is the one setup recorded, not this process's say.
            const auto recorded = conn.exec(
                "SELECT r.retention = $2::interval FROM pgbridge.history_retention r"
                " WHERE r.bridge = $1",
                {config_.bridge_name, retention});
            if (recorded.rows() == 0 || recorded.value(0, 0) != "t") {
                log::warning("run",
                             "history: [history] retention is not the one pgbridge setup recorded "
                             "on this side; run pgbridge setup (until then the recorded one "
                             "applies; none recorded, nothing is dropped)",
                             {{"side", side.name}});
            }
            const auto dropped = conn.exec("SELECT pgbridge.maintain_history()");
            if (dropped.value(0, 0) != "0") {
                log::info("run", "history: partitions past the retention dropped",
                          {{"side", side.name}, {"partitions", std::string(dropped.value(0, 0))}});
            }
        } catch (const std::exception& e) {
            all = false;
            log::warning("run", "history: cannot keep its partitions; trying again in a minute",
                         {{"side", side.name}, {"error", e.what()}});
        }
    }
    return all;
}

}  // namespace pgbridge::run
