#include <algorithm>

#include <fmt/format.h>

#include <pgbridge/core/source_horizon.hpp>

namespace pgbridge {

SourceHorizon::SourceHorizon(std::string side, Ask ask)
    : side_(std::move(side)), ask_(std::move(ask)) {}

void SourceHorizon::observe(Lsn wal_end, UnixMicros clock) {
    const std::lock_guard lock(mutex_);
    known_.wal_end = std::max(known_.wal_end, wal_end);
    known_.clock = std::max(known_.clock, clock);
}

SourceHorizon::Reading SourceHorizon::known() const {
    const std::lock_guard lock(mutex_);
    return known_;
}

bool SourceHorizon::within(const Reading& known, Lsn end_lsn, UnixMicros commit_time) const {
    const auto slack = std::chrono::duration_cast<std::chrono::microseconds>(kClockSlack).count();
    return end_lsn <= known.wal_end && (known.clock == 0 || commit_time <= known.clock + slack);
}

SourceHorizon::Check SourceHorizon::check(Lsn end_lsn, UnixMicros commit_time) {
    if (within(known(), end_lsn, commit_time)) {
        return {};
    }
    // Beyond what is known: only the server can say whether it is beyond what is real.
    const auto unknown = [&](std::string_view why) {
        return Check{Verdict::Unknown,
                     fmt::format("the message ends at LSN {}, beyond what side '{}' is known to "
                                 "have sent ({}), and its server cannot say how far its WAL "
                                 "goes: {}",
                                 end_lsn.to_string(), side_, known().wal_end.to_string(), why)};
    };
    if (!ask_) {
        return unknown("nothing asks it");
    }
    try {
        const Reading reading = ask_();
        observe(reading.wal_end, reading.clock);
    } catch (const std::exception& e) {
        return unknown(e.what());
    }
    const Reading now = known();
    if (end_lsn > now.wal_end) {
        return {
            Verdict::Impossible,
            fmt::format("the message ends at LSN {}, beyond the end of the WAL of side '{}' ({}): "
                        "no transaction of that side can be there (a forged or corrupt "
                        "message, or the source restored to an earlier point)",
                        end_lsn.to_string(), side_, now.wal_end.to_string())};
    }
    if (!within(now, end_lsn, commit_time)) {
        return {
            Verdict::Impossible,
            fmt::format("the message's commit time {} is ahead of the clock of side '{}' ({}) by "
                        "more than {} s: no transaction of that side committed then",
                        format_timestamp(commit_time), side_, format_timestamp(now.clock),
                        kClockSlack.count())};
    }
    return {};
}

}  // namespace pgbridge
