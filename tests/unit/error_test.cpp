#include <doctest/doctest.h>

#include <pgbridge/core/error.hpp>

using namespace pgbridge;

TEST_CASE("errors carry kind, message and context in order") {
    const Error e = Error(ErrorKind::Database, "relation does not exist")
                        .with("side", "zervigo")
                        .with("table", "hr.candidates")
                        .with("lsn", "0/16B3748");
    CHECK(e.kind() == ErrorKind::Database);
    CHECK(std::string(e.what()) ==
          "relation does not exist (side=zervigo, table=hr.candidates, lsn=0/16B3748)");
    CHECK(e.context_value("table") == "hr.candidates");
    CHECK(e.context_value("key").empty());
    CHECK(exit_code_for(ErrorKind::Config) == 2);
    CHECK(exit_code_for(ErrorKind::Usage) == 2);
    CHECK(exit_code_for(ErrorKind::Database) == 1);
}
