#include <pgbridge/core/versions_watermark.hpp>

namespace pgbridge {

Lsn VersionsWatermark::recorded() const {
    const std::lock_guard lock(mutex_);
    return recorded_;
}

void VersionsWatermark::advance(Lsn lsn) {
    {
        const std::lock_guard lock(mutex_);
        if (lsn <= recorded_) {
            return;
        }
        recorded_ = lsn;
        if (wanted_ <= recorded_) {
            wanted_ = Lsn();
        }
    }
    advanced_.notify_all();
}

Lsn VersionsWatermark::wanted() const {
    const std::lock_guard lock(mutex_);
    return wanted_;
}

void VersionsWatermark::set_nudge(std::function<void()> nudge) {
    const std::lock_guard lock(mutex_);
    nudge_ = std::move(nudge);
}

bool VersionsWatermark::wait_for(Lsn lsn, std::chrono::milliseconds timeout) {
    std::function<void()> nudge;
    {
        const std::lock_guard lock(mutex_);
        if (recorded_ >= lsn) {
            return true;
        }
        wanted_ = std::max(wanted_, lsn);
        nudge = nudge_;
    }
    if (nudge) {
        nudge();
    }
    std::unique_lock lock(mutex_);
    return advanced_.wait_for(lock, timeout, [&] { return recorded_ >= lsn; });
}

}  // namespace pgbridge
