#include <doctest/doctest.h>

#include <pgbridge/core/qualified_name.hpp>

using pgbridge::QualifiedName;

TEST_CASE("qualified names parse like SQL identifiers") {
    auto plain = QualifiedName::parse("Public.Talents");
    REQUIRE(plain);
    CHECK(plain->schema == "public");
    CHECK(plain->name == "talents");
    CHECK(plain->quoted() == "\"public\".\"talents\"");
    CHECK(plain->display() == "public.talents");

    auto quoted = QualifiedName::parse("hr.\"Candidates.2024\"");
    REQUIRE(quoted);
    CHECK(quoted->name == "Candidates.2024");
    CHECK(quoted->display() == "hr.\"Candidates.2024\"");

    auto embedded_quote = QualifiedName::parse("s.\"a\"\"b\"");
    REQUIRE(embedded_quote);
    CHECK(embedded_quote->name == "a\"b");
    CHECK(embedded_quote->quoted() == "\"s\".\"a\"\"b\"");
}

TEST_CASE("malformed qualified names are rejected") {
    for (const char* bad : {"", "talents", "a.b.c", ".t", "s.", "s.\"unclosed", "s.\"\"", "s.t x",
                            "s.1t", "s.\"a\"b", "s..t"}) {
        CAPTURE(bad);
        CHECK_FALSE(QualifiedName::parse(bad));
    }
}
