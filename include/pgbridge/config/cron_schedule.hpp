#pragma once

#include <bitset>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace pgbridge {

// A five-field cron expression ("minute hour day-of-month month day-of-week", as in
// crontab(5)): each field `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or a comma
// list of these; day of week 0-7 with 0 and 7 Sunday. As in cron, when both day fields are
// restricted a day matching either one matches. Evaluated in UTC (a daemon's schedule should
// not shift with daylight saving time).
class CronSchedule {
  public:
    // nullopt with `error` set when the text is not such an expression.
    static std::optional<CronSchedule> parse(std::string_view text, std::string* error);

    // The first whole minute strictly after `after` that matches; nullopt when none does in
    // the next eight years (a day that never comes, like February 30).
    std::optional<std::chrono::sys_seconds> next_after(std::chrono::sys_seconds after) const;

    const std::string& text() const { return text_; }

  private:
    bool day_matches(const std::chrono::year_month_day& day) const;

    std::string text_;
    std::bitset<60> minutes_;
    std::bitset<24> hours_;
    std::bitset<32> days_;     // 1..31
    std::bitset<13> months_;   // 1..12
    std::bitset<8> weekdays_;  // 0..7, 7 folded into 0
    bool any_day_ = true;      // day-of-month field is *
    bool any_weekday_ = true;  // day-of-week field is *
};

}  // namespace pgbridge
