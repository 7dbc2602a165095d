// The two forms of a log line: text for people, JSON for log shippers (one object a line,
// valid whatever bytes a field holds).

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <pgbridge/core/log.hpp>

using namespace pgbridge;

TEST_SUITE("unit") {
    TEST_CASE("a JSON log line is one valid object with time, level, component, message, fields") {
        const UnixMicros time = 1764099601123456;
        const std::string line =
            log::format_line(log::Format::Json, time, log::Level::Warning, "consumer",
                             "message \"dead\"-lettered\nsecond line",
                             {{"queue", "pgbridge.crm.to.b"}, {"table", "bad \xff byte"}});
        REQUIRE(line.ends_with("}\n"));
        CHECK(line.find('\n') == line.size() - 1);  // one line, whatever the message holds
        const auto j = nlohmann::json::parse(line);
        CHECK(j["time"] == "2025-11-25T19:40:01.123456Z");
        CHECK(j["level"] == "warning");
        CHECK(j["component"] == "consumer");
        CHECK(j["message"] == "message \"dead\"-lettered\nsecond line");
        CHECK(j["fields"]["queue"] == "pgbridge.crm.to.b");
        CHECK(j["fields"]["table"].get<std::string>().starts_with("bad "));
        CHECK(j.size() == 5);
        const auto empty = nlohmann::json::parse(
            log::format_line(log::Format::Json, time, log::Level::Info, "run", "started", {}));
        CHECK(empty["fields"].empty());
    }

    TEST_CASE("a text log line is logfmt: quoted values where they would split the line") {
        const std::string line =
            log::format_line(log::Format::Text, 1764099601123456, log::Level::Info, "capture",
                             "streaming", {{"side", "a"}, {"error", "two words \"quoted\""}});
        CHECK(line ==
              "2025-11-25T19:40:01.123456Z info capture: streaming side=a "
              "error=\"two words \\\"quoted\\\"\"\n");
        CHECK(log::parse_format("json") == log::Format::Json);
        CHECK(log::parse_format("text") == log::Format::Text);
        CHECK_FALSE(log::parse_format("JSON"));
    }
}
