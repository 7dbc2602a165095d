#include <pgbridge/core/versions_watermark.hpp>

namespace pgbridge {

std::string VersionsWatermark::key(const std::string& table,
                                   const std::vector<std::string>& values) {
    std::string out = table;
    for (const auto& v : values) {
        out += '\0';
        out += v;
    }
    return out;
}

Lsn VersionsWatermark::recorded() const {
    const std::lock_guard lock(mutex_);
    return recorded_;
}

Lsn VersionsWatermark::decoded() const {
    const std::lock_guard lock(mutex_);
    return decoded_;
}

bool VersionsWatermark::unrecorded(const std::string& key) const {
    const std::lock_guard lock(mutex_);
    return large_unrecorded_ || unrecorded_.contains(key);
}

void VersionsWatermark::advance(Lsn recorded) {
    {
        const std::lock_guard lock(mutex_);
        if (recorded <= recorded_) {
            return;
        }
        recorded_ = recorded;
        decoded_ = std::max(decoded_, recorded);
        if (recording_wanted_ <= recorded_) {
            recording_wanted_ = Lsn();
        }
        if (wanted_ <= decoded_) {
            wanted_ = Lsn();
        }
    }
    moved_.notify_all();
}

void VersionsWatermark::set_decoded(Lsn decoded) {
    {
        const std::lock_guard lock(mutex_);
        if (decoded <= decoded_) {
            return;
        }
        decoded_ = decoded;
        if (wanted_ <= decoded_) {
            wanted_ = Lsn();
        }
    }
    moved_.notify_all();
}

void VersionsWatermark::add_unrecorded(const std::vector<std::string>& keys) {
    const std::lock_guard lock(mutex_);
    for (const auto& k : keys) {
        ++unrecorded_[k];
    }
}

void VersionsWatermark::remove_unrecorded(const std::vector<std::string>& keys) {
    const std::lock_guard lock(mutex_);
    for (const auto& k : keys) {
        if (const auto it = unrecorded_.find(k); it != unrecorded_.end() && --it->second <= 0) {
            unrecorded_.erase(it);
        }
    }
}

void VersionsWatermark::set_large_unrecorded(bool large) {
    const std::lock_guard lock(mutex_);
    large_unrecorded_ = large;
}

void VersionsWatermark::rewind(Lsn recorded) {
    {
        const std::lock_guard lock(mutex_);
        recorded_ = std::max(recorded_, recorded);
        decoded_ = recorded_;
        unrecorded_.clear();
        large_unrecorded_ = false;
    }
    moved_.notify_all();
}

Lsn VersionsWatermark::wanted() const {
    const std::lock_guard lock(mutex_);
    return wanted_;
}

Lsn VersionsWatermark::recording_wanted() const {
    const std::lock_guard lock(mutex_);
    return recording_wanted_;
}

void VersionsWatermark::set_nudge(std::function<void()> nudge) {
    const std::lock_guard lock(mutex_);
    nudge_ = std::move(nudge);
}

bool VersionsWatermark::wait_recorded(Lsn lsn, std::chrono::milliseconds timeout) {
    return wait_until(lsn, timeout, true);
}

bool VersionsWatermark::wait_decoded(Lsn lsn, std::chrono::milliseconds timeout) {
    return wait_until(lsn, timeout, false);
}

bool VersionsWatermark::wait_until(Lsn lsn, std::chrono::milliseconds timeout, bool recorded) {
    const auto reached = [&] { return (recorded ? recorded_ : decoded_) >= lsn; };
    std::function<void()> nudge;
    {
        const std::lock_guard lock(mutex_);
        if (reached()) {
            return true;
        }
        if (decoded_ < lsn) {
            wanted_ = std::max(wanted_, lsn);
        }
        if (recorded) {
            recording_wanted_ = std::max(recording_wanted_, lsn);
        }
        nudge = nudge_;
    }
    if (nudge) {
        nudge();
    }
    std::unique_lock lock(mutex_);
    return moved_.wait_for(lock, timeout, reached);
}

}  // namespace pgbridge
