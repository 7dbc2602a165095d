// Times as PostgreSQL sends them and as the message format writes them (core/lsn.hpp): the
// range pgbridge handles, and text that only normalises to a time. Found by fuzzing the
// pgoutput decoder and the message codec (tests/fuzz).

#include <cstdint>
#include <limits>

#include <doctest/doctest.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/core/lsn.hpp>

using namespace pgbridge;

TEST_CASE("PostgreSQL times convert within the years 0000..9999 and are refused beyond") {
    CHECK(from_postgres_time(0) == kPostgresEpochUnixMicros);
    CHECK(from_postgres_time(kMaxUnixMicros - kPostgresEpochUnixMicros) == kMaxUnixMicros);
    CHECK(from_postgres_time(kMinUnixMicros - kPostgresEpochUnixMicros) == kMinUnixMicros);
    for (const std::int64_t bad :
         {std::numeric_limits<std::int64_t>::max(), std::int64_t{0x7fffffffffffffdb},
          std::numeric_limits<std::int64_t>::min(), kMaxUnixMicros - kPostgresEpochUnixMicros + 1,
          kMinUnixMicros - kPostgresEpochUnixMicros - 1}) {
        CAPTURE(bad);
        try {
            from_postgres_time(bad, "commit time");
            FAIL("expected a protocol error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::Protocol);
            CHECK(e.message().find("commit time") == 0);
        }
    }
}

TEST_CASE("format_timestamp and parse_timestamp agree on every time they handle") {
    CHECK(format_timestamp(kMaxUnixMicros) == "9999-12-31T23:59:59.999999Z");
    CHECK(format_timestamp(kMinUnixMicros) == "0000-01-01T00:00:00.000000Z");
    CHECK(format_timestamp(-1) == "1969-12-31T23:59:59.999999Z");
    for (const UnixMicros t : {kMinUnixMicros, kMaxUnixMicros, UnixMicros{0}, UnixMicros{-1},
                               UnixMicros{1764099601123456}, UnixMicros{951782400000000}}) {
        CAPTURE(t);
        CHECK(parse_timestamp(format_timestamp(t)) == t);
    }
    // Beyond the range the text is that of the nearest end, which still parses.
    CHECK(format_timestamp(std::numeric_limits<std::int64_t>::max()) ==
          "9999-12-31T23:59:59.999999Z");
    CHECK(format_timestamp(std::numeric_limits<std::int64_t>::min()) ==
          "0000-01-01T00:00:00.000000Z");
}

TEST_CASE("parse_timestamp refuses text format_timestamp never writes") {
    CHECK(parse_timestamp("2028-02-29T00:00:00.000000Z").has_value());
    for (const char* text : {
             "9999-12-31T23:59:60.999999Z",  // normalised into the year 10000, unwritable
             "2026-11-25T19:40:60.000000Z",  // second 60
             "2026-02-29T00:00:00.000000Z",  // not a leap year
             "2026-04-31T00:00:00.000000Z",
             "-001-01-01T00:00:00.000000Z",  // signs, which from_chars takes
             "2026-11-25T19:40:01.-00001Z",
             "2026-11-25T19:40:01.+00001Z",
             "2026-11-25 19:40:01.123456Z",
             "2026-11-25T19:40:01.123456",
         }) {
        CAPTURE(text);
        CHECK_FALSE(parse_timestamp(text).has_value());
    }
}
