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

// The times pgbridge handles: years 0000 to 9999, the times format_timestamp writes and
// parse_timestamp reads back (a commit time travels as that text).
inline constexpr UnixMicros kMinUnixMicros = -62167219200000000LL;  // 0000-01-01T00:00:00Z
inline constexpr UnixMicros kMaxUnixMicros = 253402300799999999LL;  // 9999-12-31T23:59:59.999999Z

// A time as PostgreSQL's protocols send it. Throws Error(ErrorKind::Protocol) naming `what`
// when it is outside the years 0000..9999: no server clock says so, the bytes were misread or
// forged, and beyond the int64 range the conversion itself would overflow.
UnixMicros from_postgres_time(std::int64_t pg_micros, std::string_view what = "timestamp");
constexpr std::int64_t to_postgres_time(UnixMicros unix_micros) {
    return unix_micros - kPostgresEpochUnixMicros;
}
UnixMicros now_unix_micros();
// ISO 8601 with microseconds and "Z": 2026-11-25T19:40:01.123456Z. For a time in
// [kMinUnixMicros, kMaxUnixMicros]; others are clamped to that range.
std::string format_timestamp(UnixMicros micros);
// Parses exactly what format_timestamp writes: nullopt for any other text, including times
// that only normalise to one (February 30, second 60, signs in the fields).
std::optional<UnixMicros> parse_timestamp(std::string_view text);

}  // namespace pgbridge
