#include <algorithm>
#include <charconv>
#include <chrono>
#include <ctime>

#include <fmt/format.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/core/lsn.hpp>

namespace pgbridge {

std::string Lsn::to_string() const {
    return fmt::format("{:X}/{:X}", value >> 32, value & 0xFFFFFFFFu);
}

std::optional<Lsn> Lsn::parse(std::string_view text) {
    const auto slash = text.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size()) {
        return std::nullopt;
    }
    std::uint64_t high = 0;
    std::uint64_t low = 0;
    const char* begin = text.data();
    auto r1 = std::from_chars(begin, begin + slash, high, 16);
    auto r2 = std::from_chars(begin + slash + 1, begin + text.size(), low, 16);
    if (r1.ec != std::errc{} || r1.ptr != begin + slash || r2.ec != std::errc{} ||
        r2.ptr != begin + text.size() || high > 0xFFFFFFFFu || low > 0xFFFFFFFFu) {
        return std::nullopt;
    }
    return Lsn((high << 32) | low);
}

UnixMicros now_unix_micros() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

UnixMicros from_postgres_time(std::int64_t pg_micros, std::string_view what) {
    // Compared before adding, so that the addition cannot overflow.
    constexpr std::int64_t kMinPostgres = kMinUnixMicros - kPostgresEpochUnixMicros;
    constexpr std::int64_t kMaxPostgres = kMaxUnixMicros - kPostgresEpochUnixMicros;
    if (pg_micros < kMinPostgres || pg_micros > kMaxPostgres) {
        throw Error(ErrorKind::Protocol,
                    fmt::format("{} {} (microseconds since 2000-01-01) is not a time of the years "
                                "0000 to 9999",
                                what, pg_micros));
    }
    return pg_micros + kPostgresEpochUnixMicros;
}

std::string format_timestamp(UnixMicros micros) {
    micros = std::clamp(micros, kMinUnixMicros, kMaxUnixMicros);
    std::int64_t seconds = micros / 1000000;
    std::int64_t fraction = micros % 1000000;
    if (fraction < 0) {
        fraction += 1000000;
        --seconds;
    }
    const std::time_t t = static_cast<std::time_t>(seconds);
    std::tm utc{};
    gmtime_r(&t, &utc);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", utc.tm_year + 1900,
                       utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, fraction);
}

}  // namespace pgbridge

namespace pgbridge {

std::optional<UnixMicros> parse_timestamp(std::string_view text) {
    // YYYY-MM-DDTHH:MM:SS.ffffffZ
    if (text.size() != 27 || text[4] != '-' || text[7] != '-' || text[10] != 'T' ||
        text[13] != ':' || text[16] != ':' || text[19] != '.' || text[26] != 'Z') {
        return std::nullopt;
    }
    // Digits only: from_chars would take a sign.
    auto number = [&](std::size_t pos, std::size_t len) -> std::optional<int> {
        int value = 0;
        for (std::size_t i = pos; i < pos + len; ++i) {
            if (text[i] < '0' || text[i] > '9') {
                return std::nullopt;
            }
            value = value * 10 + (text[i] - '0');
        }
        return value;
    };
    auto year = number(0, 4);
    auto month = number(5, 2);
    auto day = number(8, 2);
    auto hour = number(11, 2);
    auto minute = number(14, 2);
    auto second = number(17, 2);
    auto micros = number(20, 6);
    if (!year || !month || !day || !hour || !minute || !second || !micros || *month < 1 ||
        *month > 12 || *day < 1 || *day > 31 || *hour > 23 || *minute > 59 || *second > 59) {
        return std::nullopt;
    }
    std::tm utc{};
    utc.tm_year = *year - 1900;
    utc.tm_mon = *month - 1;
    utc.tm_mday = *day;
    utc.tm_hour = *hour;
    utc.tm_min = *minute;
    utc.tm_sec = *second;
    const std::time_t seconds = timegm(&utc);
    const UnixMicros result = static_cast<UnixMicros>(seconds) * 1000000 + *micros;
    // timegm normalises a day the month does not have (February 30 is March 2): only a
    // date that format_timestamp writes back unchanged is one.
    if (utc.tm_mday != *day || utc.tm_mon != *month - 1) {
        return std::nullopt;
    }
    return result;
}

}  // namespace pgbridge
