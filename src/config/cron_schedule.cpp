#include <charconv>
#include <vector>

#include <fmt/format.h>

#include <pgbridge/config/cron_schedule.hpp>

namespace pgbridge {
namespace {

std::vector<std::string_view> split(std::string_view text, char separator) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (;;) {
        const std::size_t end = text.find(separator, start);
        out.push_back(text.substr(start, end - start));
        if (end == std::string_view::npos) {
            return out;
        }
        start = end + 1;
    }
}

std::optional<int> number(std::string_view text) {
    int value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
        return std::nullopt;
    }
    return value;
}

// Sets the bits of one field; false (with error) when it does not parse or leaves [min, max].
template <std::size_t N>
bool parse_field(std::string_view field, std::string_view name, int min, int max,
                 std::bitset<N>& bits, std::string* error) {
    const auto fail = [&](std::string_view what) {
        if (error) {
            *error = fmt::format(
                "{} field '{}': {} (expected *, N, N-M, */S or N-M/S with N, M "
                "in {}..{}, or a comma list of these)",
                name, field, what, min, max);
        }
        return false;
    };
    for (const std::string_view item : split(field, ',')) {
        std::string_view range = item;
        int step = 1;
        if (const auto slash = item.find('/'); slash != std::string_view::npos) {
            const auto s = number(item.substr(slash + 1));
            if (!s || *s < 1) {
                return fail("the step must be a positive number");
            }
            step = *s;
            range = item.substr(0, slash);
        }
        int low = min;
        int high = max;
        if (range != "*") {
            const auto dash = range.find('-');
            const auto first = number(range.substr(0, dash));
            const auto last =
                dash == std::string_view::npos ? first : number(range.substr(dash + 1));
            if (!first || !last) {
                return fail("not a number");
            }
            low = *first;
            high = dash == std::string_view::npos && step > 1 ? max : *last;
        }
        if (low < min || high > max || low > high) {
            return fail("out of range");
        }
        // Stops before the step would pass max: a step may be as large as an int holds.
        for (int v = low;; v += step) {
            bits.set(static_cast<std::size_t>(v));
            if (high - v < step) {
                break;
            }
        }
    }
    return true;
}

}  // namespace

std::optional<CronSchedule> CronSchedule::parse(std::string_view text, std::string* error) {
    std::vector<std::string_view> fields;
    for (const auto f : split(text, ' ')) {
        if (!f.empty()) {
            fields.push_back(f);
        }
    }
    if (fields.size() != 5) {
        if (error) {
            *error = fmt::format(
                "'{}' has {} fields; a cron expression has five: minute hour "
                "day-of-month month day-of-week, like \"0 */6 * * *\"",
                text, fields.size());
        }
        return std::nullopt;
    }
    CronSchedule s;
    s.text_ = std::string(text);
    if (!parse_field(fields[0], "minute", 0, 59, s.minutes_, error) ||
        !parse_field(fields[1], "hour", 0, 23, s.hours_, error) ||
        !parse_field(fields[2], "day-of-month", 1, 31, s.days_, error) ||
        !parse_field(fields[3], "month", 1, 12, s.months_, error) ||
        !parse_field(fields[4], "day-of-week", 0, 7, s.weekdays_, error)) {
        return std::nullopt;
    }
    if (s.weekdays_.test(7)) {
        s.weekdays_.set(0);
    }
    s.any_day_ = fields[2] == "*";
    s.any_weekday_ = fields[4] == "*";
    return s;
}

bool CronSchedule::day_matches(const std::chrono::year_month_day& day) const {
    if (!months_.test(static_cast<unsigned>(day.month()))) {
        return false;
    }
    const bool by_day = days_.test(static_cast<unsigned>(day.day()));
    const bool by_weekday =
        weekdays_.test(std::chrono::weekday(std::chrono::sys_days(day)).c_encoding());
    if (any_day_ || any_weekday_) {
        return (any_day_ || by_day) && (any_weekday_ || by_weekday);
    }
    return by_day || by_weekday;
}

std::optional<std::chrono::sys_seconds> CronSchedule::next_after(
    std::chrono::sys_seconds after) const {
    using namespace std::chrono;
    const sys_seconds start = floor<minutes>(after) + minutes(1);
    sys_days day = floor<days>(start);
    for (int d = 0; d < 366 * 8 + 2; ++d, day += days(1)) {
        if (!day_matches(year_month_day(day))) {
            continue;
        }
        for (int h = 0; h < 24; ++h) {
            if (!hours_.test(static_cast<std::size_t>(h))) {
                continue;
            }
            for (int m = 0; m < 60; ++m) {
                const sys_seconds t = day + hours(h) + minutes(m);
                if (minutes_.test(static_cast<std::size_t>(m)) && t >= start) {
                    return t;
                }
            }
        }
    }
    return std::nullopt;
}

}  // namespace pgbridge
