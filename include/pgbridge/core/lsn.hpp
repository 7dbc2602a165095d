#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgbridge {

// A WAL position (XLogRecPtr). Shown as PostgreSQL shows it: two hex halves, "0/16B3748".
struct Lsn {
    std::uint64_t value = 0;

    constexpr Lsn() = default;
    constexpr explicit Lsn(std::uint64_t v) : value(v) {}

    constexpr bool valid() const { return value != 0; }
    std::string to_string() const;
    static std::optional<Lsn> parse(std::string_view text);

    constexpr auto operator<=>(const Lsn&) const = default;
};

// PostgreSQL timestamps count microseconds from 2000-01-01 00:00:00 UTC.
inline constexpr std::int64_t kPostgresEpochUnixMicros = 946684800LL * 1000000LL;

// Microseconds since the Unix epoch, UTC.
using UnixMicros = std::int64_t;

constexpr UnixMicros from_postgres_time(std::int64_t pg_micros) {
    return pg_micros + kPostgresEpochUnixMicros;
}
constexpr std::int64_t to_postgres_time(UnixMicros unix_micros) {
    return unix_micros - kPostgresEpochUnixMicros;
}
UnixMicros now_unix_micros();
// ISO 8601 with microseconds and "Z": 2026-11-25T19:40:01.123456Z
std::string format_timestamp(UnixMicros micros);
// Parses exactly what format_timestamp writes.
std::optional<UnixMicros> parse_timestamp(std::string_view text);

}  // namespace pgbridge
