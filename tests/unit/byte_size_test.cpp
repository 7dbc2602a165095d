// Sizes as the text output of slots, lag and status shows them (core/byte_size.hpp).

#include <cstdint>
#include <limits>

#include <doctest/doctest.h>

#include <pgbridge/core/byte_size.hpp>

using namespace pgbridge;

TEST_CASE("sizes are shown in binary units, one decimal from KiB up") {
    CHECK(format_bytes(0) == "0 B");
    CHECK(format_bytes(1023) == "1023 B");
    CHECK(format_bytes(1024) == "1.0 KiB");
    CHECK(format_bytes(1536) == "1.5 KiB");
    CHECK(format_bytes(64 * 1024) == "64.0 KiB");
    CHECK(format_bytes(std::int64_t{1024} * 1024 * 1024) == "1.0 GiB");
    CHECK(format_bytes(std::int64_t{5} * 1024 * 1024 * 1024 * 1024) == "5.0 TiB");
    CHECK(format_bytes(12'900'000) == "12.3 MiB");
}

TEST_CASE("a size just below the next unit is shown in that unit, not as 1024.0") {
    CHECK(format_bytes(1024 * 1024 - 1) == "1.0 MiB");
    CHECK(format_bytes(1024 * 1024 - 60) == "1023.9 KiB");
}

TEST_CASE("negative sizes keep their sign, down to the smallest int64") {
    CHECK(format_bytes(-1) == "-1 B");
    CHECK(format_bytes(-2048) == "-2.0 KiB");
    CHECK(format_bytes(std::numeric_limits<std::int64_t>::min()) == "-8192.0 PiB");
    CHECK(format_bytes(std::numeric_limits<std::int64_t>::max()) == "8192.0 PiB");
}
