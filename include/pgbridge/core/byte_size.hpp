#pragma once

#include <cstdint>
#include <string>

namespace pgbridge {

// A size in bytes as the text output of every command shows it: binary units (B, KiB, MiB,
// GiB, TiB), one decimal from KiB up, "512 B", "1.5 KiB", "12.3 MiB". One function, so that
// `slots`, `lag` and `status` never show the same size two ways; --json keeps raw bytes.
std::string format_bytes(std::int64_t bytes);

// A count of rows with thousands separated: 12345678 -> "12,345,678".
std::string format_count(std::uint64_t n);

}  // namespace pgbridge
