// VersionsWatermark: what an applier waits on. In pgbridge run capture moves it; in an
// apply-only worker a RecordedVersionsPoller does, from the recorded position alone.

#include <thread>

#include <doctest/doctest.h>

#include <pgbridge/core/versions_watermark.hpp>

using namespace pgbridge;

TEST_CASE("a wait asks for the position (nudge), and an advance that reaches it ends the ask") {
    VersionsWatermark w;
    int nudges = 0;
    w.set_nudge([&] { ++nudges; });
    CHECK_FALSE(w.wait_decoded(Lsn(0x100), std::chrono::milliseconds(1)));
    CHECK(nudges == 1);
    CHECK(w.wanted() == Lsn(0x100));
    CHECK_FALSE(w.wait_recorded(Lsn(0x100), std::chrono::milliseconds(1)));
    CHECK(w.recording_wanted() == Lsn(0x100));
    // What a poller does: the recorded position, which is decoded as well. Both asks end, so
    // that nobody polls for a wait that is over.
    w.advance(Lsn(0x100));
    CHECK(w.decoded() == Lsn(0x100));
    CHECK_FALSE(w.wanted().valid());
    CHECK_FALSE(w.recording_wanted().valid());
    // Short of a later ask: it stays.
    CHECK_FALSE(w.wait_decoded(Lsn(0x300), std::chrono::milliseconds(1)));
    w.advance(Lsn(0x200));
    CHECK(w.wanted() == Lsn(0x300));
}

TEST_CASE("a waiting applier wakes when another thread advances the watermark") {
    VersionsWatermark w;
    std::thread mover([&] {
        // Moves once the applier asks (no sleep: the ask is the signal).
        while (!w.wanted().valid()) {
            std::this_thread::yield();
        }
        w.advance(Lsn(0x500));
    });
    CHECK(w.wait_recorded(Lsn(0x400), std::chrono::seconds(10)));
    mover.join();
    CHECK(w.recorded() == Lsn(0x500));
}
