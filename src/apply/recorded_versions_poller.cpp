#include <pgbridge/apply/recorded_versions_poller.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/log.hpp>

namespace pgbridge::apply {

RecordedVersionsPoller::RecordedVersionsPoller(pg::ConnectOptions connect, std::string bridge,
                                               std::string side,
                                               std::shared_ptr<VersionsWatermark> watermark,
                                               std::chrono::milliseconds poll_interval)
    : connect_(std::move(connect)),
      bridge_(std::move(bridge)),
      side_(std::move(side)),
      watermark_(std::move(watermark)),
      poll_interval_(poll_interval) {
    watermark_->set_nudge([this] {
        {
            const std::lock_guard lock(mutex_);
            nudge_ = true;
        }
        nudged_.notify_all();
    });
    thread_ = std::jthread([this](std::stop_token stop) { loop(stop); });
}

RecordedVersionsPoller::~RecordedVersionsPoller() {
    watermark_->set_nudge(nullptr);
    thread_.request_stop();
    nudged_.notify_all();
}

bool RecordedVersionsPoller::someone_waits() const {
    return watermark_->wanted().valid() || watermark_->recording_wanted().valid();
}

void RecordedVersionsPoller::loop(std::stop_token stop) {
    auto pause = poll_interval_;
    while (!stop.stop_requested()) {
        {
            std::unique_lock lock(mutex_);
            // Asleep until an applier waits; while one does, a read every poll_interval.
            nudged_.wait_for(lock, stop, pause, [&] { return nudge_; });
            nudge_ = false;
        }
        if (stop.stop_requested()) {
            return;
        }
        try {
            read();
            pause = someone_waits() ? poll_interval_ : std::chrono::milliseconds(60'000);
        } catch (const std::exception& e) {
            log::warning("apply", "cannot read how far the capture recorded local writes",
                         {{"side", side_}, {"error", e.what()}});
            conn_.reset();
            pause = std::chrono::milliseconds(1000);
        }
    }
}

void RecordedVersionsPoller::read() {
    if (!conn_) {
        conn_ = std::make_unique<pg::Connection>(pg::Connection::open(connect_));
    }
    const pg::Result r = conn_->exec(
        "SELECT recorded_lsn::text FROM pgbridge.local_versions WHERE bridge = $1 AND side = $2",
        {bridge_, side_});
    if (r.rows() == 0) {
        return;  // nothing recorded yet
    }
    const auto recorded = Lsn::parse(r.value(0, 0));
    if (!recorded) {
        throw Error(ErrorKind::Database, "pgbridge.local_versions holds an unreadable position")
            .with("side", side_);
    }
    watermark_->advance(*recorded);
}

}  // namespace pgbridge::apply
