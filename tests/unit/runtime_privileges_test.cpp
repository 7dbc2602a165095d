// The runtime role's privileges are written twice, in setup (runtime_privileges.hpp) and in
// sql/02_role.sql for DBAs who run the scripts: both must say the same, for every table of the
// metadata schema.

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <set>

#include <doctest/doctest.h>

#include <pgbridge/setup/runtime_privileges.hpp>

using namespace pgbridge;

namespace {

std::string sql_file(const char* name) {
    const char* root = std::getenv("PGBRIDGE_SOURCE_ROOT");
    REQUIRE(root != nullptr);
    std::ifstream in(std::filesystem::path(root) / "sql" / name);
    REQUIRE(in.good());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::map<std::string, std::string> in_code() {
    std::map<std::string, std::string> out;
    for (const auto& entry : kMetadataTablePrivileges) {
        out.emplace(entry.table, entry.privileges);
    }
    return out;
}

}  // namespace

TEST_CASE("every table of the metadata schema says what the runtime role may do with it") {
    const std::string schema = sql_file("01_metadata_schema.sql");
    const std::regex create(R"(CREATE TABLE IF NOT EXISTS pgbridge\.(\w+))");
    std::set<std::string> tables;
    for (auto it = std::sregex_iterator(schema.begin(), schema.end(), create);
         it != std::sregex_iterator(); ++it) {
        tables.insert((*it)[1]);
    }
    CHECK(tables.size() >= 11);
    std::set<std::string> listed;
    for (const auto& [table, privileges] : in_code()) {
        listed.insert(table);
    }
    CHECK(listed == tables);
}

TEST_CASE("sql/02_role.sql grants what setup grants") {
    const std::string role = sql_file("02_role.sql");
    const std::regex entry(R"(\('(\w+)',\s*'([A-Z, ]+)'\))");
    std::map<std::string, std::string> in_script;
    for (auto it = std::sregex_iterator(role.begin(), role.end(), entry);
         it != std::sregex_iterator(); ++it) {
        in_script.emplace((*it)[1], (*it)[2]);
    }
    CHECK(in_script == in_code());
    CHECK(in_code().at("schema_version") == "SELECT");

    CHECK(role.find("GRANT " + std::string(kSyncedTablePrivileges) + " ON TABLE") !=
          std::string::npos);
    CHECK(role.find("TRUNCATE ON") == std::string::npos);
    for (auto function : kOriginFunctions) {
        CAPTURE(function);
        CHECK(role.find("'" + std::string(function) + "'") != std::string::npos);
    }
    for (auto function : kUnusedOriginFunctions) {
        CAPTURE(function);
        CHECK(role.find("'" + std::string(function) + "'") != std::string::npos);
    }
    CHECK(role.find("REVOKE SELECT ON " + std::string(kUnusedOriginView)) != std::string::npos);
    CHECK(role.find(std::string(kEmitMessageFunction)) != std::string::npos);
    // pgbridge's own functions: revoked from PUBLIC by the schema, granted to the role.
    const std::string schema = sql_file("01_metadata_schema.sql");
    for (auto function : kMetadataFunctions) {
        CAPTURE(function);
        CHECK(role.find("GRANT EXECUTE ON FUNCTION " + std::string(function) + " TO") !=
              std::string::npos);
        CHECK(schema.find("REVOKE ALL ON FUNCTION " + std::string(function) + " FROM PUBLIC") !=
              std::string::npos);
    }
}
