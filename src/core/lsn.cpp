#include <charconv>
#include <chrono>
#include <ctime>

#include <fmt/format.h>

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

std::string format_timestamp(UnixMicros micros) {
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
