#include <doctest/doctest.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/core/error_policy.hpp>
#include <pgbridge/pg/connection.hpp>

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

TEST_CASE("a refused login is told from a server that is away, and is never retried") {
    using pg::connect_failure_sqlstate;
    CHECK(connect_failure_sqlstate("connection to server at \"127.0.0.1\", port 5432 failed: "
                                   "FATAL:  password authentication failed for user \"pgb\"") ==
          "28P01");
    CHECK(connect_failure_sqlstate("FATAL:  no pg_hba.conf entry for host \"10.0.0.1\"") ==
          "28000");
    CHECK(connect_failure_sqlstate("FATAL:  role \"pgb\" does not exist") == "28000");
    CHECK(connect_failure_sqlstate("FATAL:  database \"crm\" does not exist") == "3D000");
    CHECK(connect_failure_sqlstate("FATAL:  the database system is starting up") == "57P03");
    CHECK(connect_failure_sqlstate("FATAL:  sorry, too many clients already") == "53300");
    CHECK_FALSE(connect_failure_sqlstate("could not connect to server: Connection refused"));
    CHECK_FALSE(connect_failure_sqlstate("FATAL:  la authentification par mot de passe a échoué"));

    const auto db = [](const char* state) {
        return Error(ErrorKind::Database, "x").with("sqlstate", state);
    };
    CHECK(is_refused_login(db("28P01")));
    CHECK(is_refused_login(db("28000")));
    CHECK(is_refused_login(db("3D000")));
    CHECK_FALSE(is_refused_login(db("57P03")));
    CHECK_FALSE(is_refused_login(Error(ErrorKind::Database, "no answer")));
    const Error refused = Error(ErrorKind::Broker, "no").with("login", "refused");
    CHECK(is_refused_login(refused));
    CHECK_FALSE(is_refused_login(Error(ErrorKind::Broker, "connection lost")));
    CHECK(classify_session_failure(refused) == FailureAction::Fatal);
    CHECK(classify_session_failure(db("28P01")) == FailureAction::Fatal);
    CHECK(classify_session_failure(Error(ErrorKind::Broker, "lost")) == FailureAction::Reconnect);
    CHECK(classify_session_failure(db("57P03")) == FailureAction::Reconnect);
}
