// pgbridge.history records as capture's keeper and the applier send them: one statement for
// many, their values as one JSON parameter.

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <pgbridge/core/history_record.hpp>

using namespace pgbridge;

TEST_CASE("history records go in one INSERT, values as JSON, absent documents as NULL") {
    HistoryRecord local;
    local.origin = HistoryRecord::Origin::Local;
    local.from_side = "a";
    local.changed_at = 1764099600123456;
    local.lsn = Lsn(0x16B3748);
    local.seq = 2;
    local.table = "public.talents";
    local.key = R"({"id":"7"})";
    local.operation = "update";
    local.old_values = R"({"email":"x@a"})";
    local.new_values = R"({"email":null})";
    HistoryRecord applied = local;
    applied.origin = HistoryRecord::Origin::Applied;
    applied.from_side = "b";
    applied.operation = "insert";
    applied.old_values.reset();
    applied.decision = R"({"kind":"insert_insert"})";

    const HistoryInsert insert = history_insert("crm", "a", {local, applied});
    CHECK(insert.sql.find("INSERT INTO pgbridge.history") == 0);
    CHECK(insert.sql.find("jsonb_to_recordset($3::jsonb)") != std::string::npos);
    REQUIRE(insert.params.size() == 3);
    CHECK(insert.params[0] == "crm");
    CHECK(insert.params[1] == "a");
    const auto rows = nlohmann::json::parse(*insert.params[2]);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0]["o"] == "local");
    CHECK(rows[0]["f"] == "a");
    CHECK(rows[0]["t"] == 1764099600123456);
    CHECK(rows[0]["l"] == "0/16B3748");
    CHECK(rows[0]["s"] == 2);
    CHECK(rows[0]["k"] == nlohmann::json{{"id", "7"}});
    CHECK(rows[0]["nv"]["email"].is_null());  // a NULL value stays a JSON null
    CHECK(rows[0]["d"].is_null());
    CHECK(rows[1]["o"] == "applied");
    CHECK(rows[1]["ov"].is_null());
    CHECK(rows[1]["d"]["kind"] == "insert_insert");
    // Values that are not valid UTF-8 do not break the statement.
    HistoryRecord odd = local;
    odd.new_values = nlohmann::json{{"v", std::string("\xff\xfe")}}.dump(
        -1, ' ', false, nlohmann::json::error_handler_t::replace);
    CHECK_NOTHROW(history_insert("crm", "a", {odd}));
}
