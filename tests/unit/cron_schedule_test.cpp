// The [verify] schedule: cron expressions and the next time they fire.

#include <doctest/doctest.h>

#include <pgbridge/config/cron_schedule.hpp>

using namespace pgbridge;
using namespace std::chrono;

namespace {

sys_seconds at(int y, unsigned mo, unsigned d, int h, int mi) {
    return sys_days(year(y) / month(mo) / day(d)) + hours(h) + minutes(mi);
}

sys_seconds next(std::string_view text, sys_seconds after) {
    std::string error;
    const auto s = CronSchedule::parse(text, &error);
    INFO(error);
    REQUIRE(s.has_value());
    const auto t = s->next_after(after);
    REQUIRE(t.has_value());
    return *t;
}

}  // namespace

TEST_SUITE("unit") {
    TEST_CASE("cron: the seed's every-six-hours schedule and other common forms") {
        CHECK(next("0 */6 * * *", at(2026, 11, 26, 0, 0)) == at(2026, 11, 26, 6, 0));
        CHECK(next("0 */6 * * *", at(2026, 11, 26, 5, 59) + seconds(59)) == at(2026, 11, 26, 6, 0));
        CHECK(next("0 */6 * * *", at(2026, 11, 26, 23, 30)) == at(2026, 11, 27, 0, 0));
        CHECK(next("* * * * *", at(2026, 11, 26, 10, 7) + seconds(30)) == at(2026, 11, 26, 10, 8));
        CHECK(next("15,45 2-4 * * *", at(2026, 11, 26, 4, 45)) == at(2026, 11, 27, 2, 15));
        CHECK(next("30 1 1 1 *", at(2026, 11, 26, 0, 0)) == at(2027, 1, 1, 1, 30));
        CHECK(next("0 0 29 2 *", at(2026, 3, 1, 0, 0)) == at(2028, 2, 29, 0, 0));
        CHECK(next("0 12 * * 0", at(2026, 11, 26, 0, 0)) == at(2026, 11, 29, 12, 0));  // Sunday
        CHECK(next("0 12 * * 7", at(2026, 11, 26, 0, 0)) == at(2026, 11, 29, 12, 0));
        CHECK(next("0 0 */10 * *", at(2026, 11, 26, 0, 0)) == at(2026, 12, 1, 0, 0));
        CHECK(next("0-59/20 * * * *", at(2026, 11, 26, 0, 40)) == at(2026, 11, 26, 1, 0));
        // Both day fields restricted: either matches (the 1st, or a Monday).
        CHECK(next("0 0 1 * 1", at(2026, 11, 26, 0, 0)) == at(2026, 11, 30, 0, 0));
    }

    TEST_CASE("cron: malformed expressions are refused with the field named") {
        std::string error;
        CHECK_FALSE(CronSchedule::parse("0 */6 * *", &error));
        CHECK(error.find("five") != std::string::npos);
        CHECK_FALSE(CronSchedule::parse("60 * * * *", &error));
        CHECK(error.find("minute") != std::string::npos);
        CHECK_FALSE(CronSchedule::parse("0 */0 * * *", &error));
        CHECK(error.find("hour") != std::string::npos);
        CHECK_FALSE(CronSchedule::parse("0 0 * jan *", &error));
        CHECK(error.find("month") != std::string::npos);
        CHECK_FALSE(CronSchedule::parse("0 0 5-2 * *", &error));
        CHECK_FALSE(CronSchedule::parse("0 0 * * 8", &error));
        CHECK(error.find("day-of-week") != std::string::npos);
        // A date that never comes has no next time.
        const auto never = CronSchedule::parse("0 0 30 2 *", &error);
        REQUIRE(never.has_value());
        CHECK_FALSE(never->next_after(at(2026, 1, 1, 0, 0)).has_value());
    }
}
