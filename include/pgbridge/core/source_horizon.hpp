#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include <pgbridge/core/lsn.hpp>

namespace pgbridge {

// How far one source side can have got: the end of its WAL and its clock, as last heard from
// its server. A message that claims a commit beyond either cannot come from that source: a
// forged or corrupted position would otherwise be recorded as the target's replication
// progress (and every later real change at or below it skipped as applied), and a commit time
// in the future would win every last_write_wins comparison of the columns it wrote.
//
// Capture hears the server continuously (every XLogData and keepalive carries its WAL end and
// clock) and publishes a transaction only after that, so a message it published is always
// within what it has observed: the check costs a comparison. A message from before a restart,
// or from a capture in another process, is checked by asking the server once (`ask`), which
// moves what is known past every message published before it. Thread-safe.
class SourceHorizon {
  public:
    struct Reading {
        Lsn wal_end;
        UnixMicros clock = 0;
    };
    // Reads the source server's current WAL end and clock; throws (an Error saying why) when
    // it cannot.
    using Ask = std::function<Reading()>;

    enum class Verdict {
        Possible,
        Impossible,  // beyond what the source's server says it has: never apply it
        Unknown,     // the server could not be asked: wait and check again
    };
    struct Check {
        Verdict verdict = Verdict::Possible;
        std::string reason;  // for Impossible and Unknown
    };

    // A commit time may be this far ahead of the source's clock as last read: a clock
    // stepped back by NTP after the commit does not make a real message impossible.
    static constexpr std::chrono::seconds kClockSlack{60};

    explicit SourceHorizon(std::string side, Ask ask = {});

    // Capture: the server says its WAL reaches `wal_end` and its clock reads `clock`.
    void observe(Lsn wal_end, UnixMicros clock);

    // Consumer: may a transaction ending at `end_lsn` and committed at `commit_time` come
    // from this source?
    Check check(Lsn end_lsn, UnixMicros commit_time);

    Reading known() const;

  private:
    bool within(const Reading& known, Lsn end_lsn, UnixMicros commit_time) const;

    std::string side_;
    Ask ask_;
    mutable std::mutex mutex_;
    Reading known_;
};

}  // namespace pgbridge
