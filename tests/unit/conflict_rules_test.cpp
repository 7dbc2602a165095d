#include <doctest/doctest.h>

#include <pgbridge/config/config.hpp>
#include <pgbridge/config/conflict_rules.hpp>

using namespace pgbridge;

namespace {

Config with_conflicts(std::string_view conflicts) {
    std::string text = R"([bridge]
name = "crm"
[sides.looma_crm]
conninfo = "dbname=a"
[sides.zervigo]
conninfo = "dbname=b"
[rabbitmq]
url = "amqp://localhost"
[[tables]]
name = "public.talents"
[[tables]]
name = "public.customers"
)";
    text += conflicts;
    return parse_config(text, "rules.toml");
}

const QualifiedName kTalents{"public", "talents"};
const QualifiedName kCustomers{"public", "customers"};

}  // namespace

TEST_CASE("a table.column rule beats a column rule, which beats the default") {
    const ConflictRules rules(with_conflicts(R"([conflicts]
default_strategy = "source_priority"
source_priority = ["zervigo"]
[conflicts.field_priority]
email = "zervigo"
"public.customers.email" = "looma_crm"
)"));
    const ColumnRule talents_email = rules.for_column(kTalents, "email");
    CHECK(talents_email.source == ColumnRule::Source::ColumnFieldRule);
    CHECK(talents_email.fixed_winner == "zervigo");
    CHECK(talents_email.reason.find("rules.toml:") != std::string::npos);

    const ColumnRule customers_email = rules.for_column(kCustomers, "email");
    CHECK(customers_email.source == ColumnRule::Source::TableFieldRule);
    CHECK(customers_email.fixed_winner == "looma_crm");

    const ColumnRule phone = rules.for_column(kCustomers, "phone");
    CHECK(phone.source == ColumnRule::Source::DefaultStrategy);
    CHECK(phone.strategy == ConflictStrategy::SourcePriority);
    // A partial source_priority list is completed in declaration order.
    CHECK(phone.fixed_winner == "zervigo");
    CHECK(phone.reason.find("completed in declaration order") != std::string::npos);

    auto named = rules.named_columns(kCustomers);
    REQUIRE(named.size() == 1);
    CHECK(named[0].first == "email");
    CHECK(named[0].second.fixed_winner == "looma_crm");
}

TEST_CASE("last_write_wins breaks ties by source_priority; manual has no winner") {
    const ConflictRules lww(with_conflicts(R"([conflicts]
source_priority = ["zervigo", "looma_crm"]
)"));
    const ColumnRule rule = lww.for_column(kTalents, "status");
    CHECK(rule.strategy == ConflictStrategy::LastWriteWins);
    CHECK_FALSE(rule.fixed_winner);
    CHECK(rule.tie_winner == "zervigo");
    CHECK(rule.describe().find("zervigo") != std::string::npos);

    const ConflictRules manual(with_conflicts(R"([conflicts]
default_strategy = "manual"
)"));
    const ColumnRule m = manual.for_other_columns();
    CHECK(m.strategy == ConflictStrategy::Manual);
    CHECK_FALSE(m.fixed_winner);
    CHECK(m.describe().find("pending") != std::string::npos);
}
