#include <array>

#include <fmt/format.h>

#include <pgbridge/core/byte_size.hpp>

namespace pgbridge {

std::string format_bytes(std::int64_t bytes) {
    // A slot's safe_wal_size or a lag read across a position the server moved can be negative.
    const char* sign = bytes < 0 ? "-" : "";
    const std::uint64_t magnitude = bytes < 0 ? static_cast<std::uint64_t>(-(bytes + 1)) + 1
                                              : static_cast<std::uint64_t>(bytes);
    if (magnitude < 1024) {
        return fmt::format("{}{} B", sign, magnitude);
    }
    static constexpr std::array<const char*, 5> kUnits{"KiB", "MiB", "GiB", "TiB", "PiB"};
    double value = static_cast<double>(magnitude) / 1024;
    std::size_t unit = 0;
    // 1023.96 KiB would print as "1024.0 KiB": move up once the rounded value reaches 1024.
    while (value >= 1023.95 && unit + 1 < kUnits.size()) {
        value /= 1024;
        ++unit;
    }
    return fmt::format("{}{:.1f} {}", sign, value, kUnits[unit]);
}

std::string format_count(std::uint64_t n) {
    const std::string digits = std::to_string(n);
    std::string out;
    out.reserve(digits.size() + digits.size() / 3);
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) {
            out += ',';
        }
        out += digits[i];
    }
    return out;
}

}  // namespace pgbridge
