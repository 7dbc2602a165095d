#include <filesystem>
#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include <pgbridge/config/config.hpp>
#include <pgbridge/core/error.hpp>

using namespace pgbridge;

namespace {

// A complete configuration with a mapped table. Line numbers matter to the tests below that
// patch it: keep the layout.
constexpr std::string_view kValid = R"([bridge]
name = "crm"

[sides.looma_crm]
conninfo = "host=127.0.0.1 port=5432 dbname=looma user=pgbridge"

[sides.zervigo]
conninfo = "host=127.0.0.1 port=5433 dbname=zervigo user=pgbridge"

[rabbitmq]
url = "amqp://pgbridge@127.0.0.1:5672/%2f"
max_priority = 10

[engine]
batch_size = 100
max_retries = 3
retry_delay_ms = 1000
timeout_ms = 30000

[[tables]]
name = "public.talents"
priority = 8

[[tables]]
name = "public.customers"
priority = 5
[tables.sides.zervigo]
name = "hr.candidates"
columns = { email = "contact_email" }

[conflicts]
default_strategy = "last_write_wins"
source_priority = ["looma_crm", "zervigo"]

[conflicts.field_priority]
email = "zervigo"
status = "looma_crm"
"public.customers.status" = "zervigo"
)";

Config parse(std::string_view text) {
    return parse_config(text, "test.toml");
}

// Parses text expecting a config error; returns it.
Error parse_error(std::string_view text) {
    try {
        parse(text);
    } catch (const Error& e) {
        return e;
    }
    FAIL("expected a configuration error");
    return Error(ErrorKind::Internal, "unreachable");
}

int error_line(std::string_view text) {
    const Error e = parse_error(text);
    CHECK(e.kind() == ErrorKind::Config);
    CHECK(e.context_value("file") == "test.toml");
    return std::stoi(std::string(e.context_value("line")));
}

std::string replace(std::string_view text, std::string_view from, std::string_view to) {
    std::string s(text);
    const auto pos = s.find(from);
    REQUIRE(pos != std::string::npos);
    s.replace(pos, from.size(), to);
    return s;
}

}  // namespace

TEST_CASE("a complete configuration loads into typed structs") {
    const Config c = parse(kValid);
    CHECK(c.bridge_name == "crm");
    REQUIRE(c.sides.size() == 2);
    CHECK(c.sides[0].name == "looma_crm");  // declaration order, not alphabetical
    CHECK(c.sides[1].name == "zervigo");
    CHECK(c.sides[1].conninfo == "host=127.0.0.1 port=5433 dbname=zervigo user=pgbridge");
    CHECK(c.rabbitmq.url.host == "127.0.0.1");
    CHECK(c.rabbitmq.url.vhost == "/");
    CHECK(c.rabbitmq.url.user == "pgbridge");
    CHECK(c.rabbitmq.max_priority == 10);
    CHECK(c.rabbitmq.max_message_bytes == 8 * 1024 * 1024);
    CHECK(c.engine.batch_size == 100);
    CHECK(c.engine.timeout_ms == 30000);
    REQUIRE(c.tables.size() == 2);
    CHECK(c.tables[0].name.display() == "public.talents");
    CHECK(c.tables[0].priority == 8);
    const TableConfig& customers = c.tables[1];
    CHECK(customers.name_on("looma_crm").display() == "public.customers");
    CHECK(customers.name_on("zervigo").display() == "hr.candidates");
    CHECK(customers.column_on("zervigo", "email") == "contact_email");
    CHECK(customers.column_on("looma_crm", "email") == "email");
    CHECK(customers.canonical_column("zervigo", "contact_email") == "email");
    CHECK(c.conflicts.default_strategy == ConflictStrategy::LastWriteWins);
    CHECK(c.conflicts.source_priority == std::vector<std::string>{"looma_crm", "zervigo"});
    REQUIRE(c.conflicts.field_priority.size() == 3);
    CHECK(c.conflicts.field_priority[0].column == "email");  // file order
    CHECK(c.conflicts.field_priority[2].table->display() == "public.customers");
    CHECK(c.warnings.empty());
}

TEST_CASE("TLS settings load with amqps://; the client key is a secret file") {
    const auto dir = std::filesystem::temp_directory_path() / "pgbridge-tls-config-test";
    std::filesystem::create_directories(dir);
    const auto key = dir / "client.key";
    std::ofstream(key) << "-----BEGIN PRIVATE KEY-----\n";
    const auto owner = std::filesystem::perms::owner_read | std::filesystem::perms::owner_write;
    std::filesystem::permissions(key, owner);
    const std::string text = replace(replace(kValid, "amqp://", "amqps://"), "max_priority = 10",
                                     "max_priority = 10\nca_file = \"/etc/hostname\"\n"
                                     "cert_file = \"/etc/hostname\"\nkey_file = \"client.key\"\n"
                                     "verify_peer = false");
    const Config c = parse_config(text, "test.toml", dir);
    CHECK(c.rabbitmq.url.tls);
    CHECK(c.rabbitmq.url.port == 5672);  // given explicitly in the URL
    CHECK(c.rabbitmq.ca_file == std::filesystem::path("/etc/hostname"));
    CHECK(c.rabbitmq.cert_file.has_value());
    CHECK(c.rabbitmq.key_file == key);
    CHECK_FALSE(c.rabbitmq.verify_peer);
    // A certificate is public; the key is not: readable by others, it is refused.
    std::filesystem::permissions(key, owner | std::filesystem::perms::group_read);
    try {
        parse_config(text, "test.toml", dir);
        FAIL("expected an error");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("rabbitmq.key_file") != std::string::npos);
        CHECK(std::string(e.what()).find("chmod 0600") != std::string::npos);
    }
    std::filesystem::remove_all(dir);
}

TEST_CASE("defaults apply when optional sections are absent") {
    const Config c = parse(R"([bridge]
name = "b"
[sides.a]
conninfo = "dbname=a"
[sides.b]
conninfo = "dbname=b"
[rabbitmq]
url = "amqp://localhost"
[[tables]]
name = "s.t"
)");
    CHECK(c.engine.batch_size == 100);
    CHECK(c.engine.max_retries == 3);
    CHECK(c.engine.retry_delay_ms == 1000);
    CHECK(c.rabbitmq.max_priority == 10);
    CHECK(c.rabbitmq.url.user == "guest");
    CHECK(c.tables[0].priority == 1);  // above the priority 0 of initial-sync traffic
    CHECK(c.conflicts.default_strategy == ConflictStrategy::LastWriteWins);
    CHECK(c.conflicts.source_priority == std::vector<std::string>{"a", "b"});
    CHECK(c.conflicts.source_priority_as_written.empty());
}

TEST_CASE("status thresholds, metrics and log level load") {
    const Config c =
        parse_config(std::string(kValid) +
                         "\n[status]\nmax_lag_seconds = 5\nmax_queued_messages = 9\n"
                         "max_slot_lag_mb = 7\n[metrics]\nlisten = \"127.0.0.1:9187\"\n",
                     "test.toml");
    CHECK(c.status.max_lag_seconds == 5);
    CHECK(c.status.max_queued_messages == 9);
    CHECK(c.status.max_slot_lag_mb == 7);
    CHECK(c.metrics_listen == "127.0.0.1:9187");
    CHECK(parse_config(replace(kValid, "max_retries = 3", "max_retries = 3\nlog_level = \"debug\""),
                       "test.toml")
              .logging.level == log::Level::Debug);
    CHECK_FALSE(parse_config(kValid, "test.toml").metrics_listen);
    const Config logged = parse_config(
        std::string(kValid) + "\n[log]\nformat = \"json\"\nlevel = \"warning\"\n", "test.toml");
    CHECK(logged.logging.format == log::Format::Json);
    CHECK(logged.logging.level == log::Level::Warning);
    CHECK(parse_config(kValid, "test.toml").logging.format == log::Format::Text);
    CHECK(std::string(parse_error(std::string(kValid) + "\n[log]\nformat = \"xml\"\n").what())
              .find("log.format must be text or json") != std::string::npos);
    CHECK(std::string(parse_error(replace(kValid, "max_retries = 3",
                                          "max_retries = 3\nlog_level = \"debug\"") +
                                  "\n[log]\nlevel = \"info\"\n")
                          .what())
              .find("keep log.level") != std::string::npos);
    // Basic auth needs both a user and a password file.
    const Error half = parse_error(std::string(kValid) +
                                   "\n[metrics]\nlisten = \"127.0.0.1:9187\"\nuser = \"p\"\n");
    CHECK(std::string(half.what()).find("metrics.user and metrics.password_file go together") !=
          std::string::npos);
    // HTTPS needs both files; protection without an endpoint protects nothing.
    const Error no_key = parse_error(std::string(kValid) +
                                     "\n[metrics]\nlisten = \"127.0.0.1:9187\"\n"
                                     "cert_file = \"/etc/hostname\"\n");
    CHECK(std::string(no_key.what()).find("metrics.cert_file and metrics.key_file go together") !=
          std::string::npos);
    const Error unserved = parse_error(std::string(kValid) +
                                       "\n[metrics]\ncert_file = \"/etc/hostname\"\n"
                                       "key_file = \"/etc/hostname\"\n");
    CHECK(std::string(unserved.what()).find("metrics.cert_file is set but metrics.listen is not") !=
          std::string::npos);
}

TEST_CASE("the verify schedule loads; a bad cron expression names its line and field") {
    const Config c = parse_config(
        std::string(kValid) + "\n[verify]\nschedule = \"0 */6 * * *\"\nauto_repair = true\n",
        "test.toml");
    REQUIRE(c.verify.schedule.has_value());
    CHECK(c.verify.schedule->text() == "0 */6 * * *");
    CHECK(c.verify.auto_repair);
    CHECK_FALSE(parse_config(kValid, "test.toml").verify.schedule);
    Error e = parse_error(std::string(kValid) + "\n[verify]\nschedule = \"0 */6 * *\"\n");
    CHECK(e.context_value("line") == "41");
    CHECK(std::string(e.what()).find("five") != std::string::npos);
    e = parse_error(std::string(kValid) + "\n[verify]\nschedule = \"0 25 * * *\"\n");
    CHECK(std::string(e.what()).find("hour field") != std::string::npos);
    e = parse_error(std::string(kValid) + "\n[verify]\nauto_repair = true\n");
    CHECK(std::string(e.what()).find("needs verify.schedule") != std::string::npos);
}

TEST_CASE("sync.recopy: auto by default, ask when set, nothing else") {
    CHECK(parse_config(kValid, "test.toml").sync.recopy == SyncConfig::Recopy::Auto);
    CHECK(parse_config(std::string(kValid) + "\n[sync]\nrecopy = \"ask\"\n", "test.toml")
              .sync.recopy == SyncConfig::Recopy::Ask);
    const Error e = parse_error(std::string(kValid) + "\n[sync]\nrecopy = \"never\"\n");
    CHECK(e.context_value("line") == "41");
    CHECK(std::string(e.what()).find("\"auto\" or \"ask\"") != std::string::npos);
    CHECK(std::string(parse_error(std::string(kValid) + "\n[sync]\nrecopy_ = \"ask\"\n").what())
              .find("unknown key") != std::string::npos);
}

TEST_CASE("where: a table's row filter, a side's own, one condition only") {
    const Config c = parse(
        replace(replace(kValid, "priority = 8", "priority = 8\nwhere = \"active\""),
                "name = \"hr.candidates\"", "name = \"hr.candidates\"\nwhere = \"region = 'eu'\""));
    const TableConfig& talents = *c.find_table(QualifiedName{"public", "talents"});
    CHECK(talents.row_filter_on("looma_crm") == "active");
    CHECK(talents.row_filter_on("zervigo") == "active");
    const TableConfig& customers = *c.find_table(QualifiedName{"public", "customers"});
    CHECK_FALSE(customers.row_filter_on("looma_crm"));
    CHECK(customers.row_filter_on("zervigo") == "region = 'eu'");
    const Error e = parse_error(
        replace(kValid, "priority = 8", "priority = 8\nwhere = \"true); DROP TABLE x\""));
    CHECK(std::string(e.what()).find("one SQL condition") != std::string::npos);
    CHECK(e.context_value("line") == "23");
    CHECK(std::string(
              parse_error(replace(kValid, "priority = 8", "priority = 8\nwhere = \" \"")).what())
              .find("tables.where") != std::string::npos);
}

TEST_CASE("tables.keys: checked by setup unless \"disjoint\"; nothing else") {
    const Config defaults = parse(kValid);
    CHECK(defaults.tables[0].keys == TableConfig::Keys::Checked);
    CHECK(defaults.tables[1].keys == TableConfig::Keys::Checked);

    const Config disjoint =
        parse(replace(kValid, "priority = 5", "priority = 5\nkeys = \"disjoint\""));
    CHECK(disjoint.tables[0].keys == TableConfig::Keys::Checked);
    CHECK(disjoint.tables[1].keys == TableConfig::Keys::Disjoint);

    // Sequences already partitioned need no word in the file: setup sees them.
    Error e = parse_error(replace(kValid, "priority = 8", "priority = 8\nkeys = \"partitioned\""));
    CHECK(e.context_value("line") == "23");
    CHECK(e.context_value("column") == "8");
    CHECK(std::string(e.what()).find("tables.keys must be \"disjoint\"") != std::string::npos);
    CHECK(std::string(e.what()).find("'partitioned'") != std::string::npos);

    e = parse_error(replace(kValid, "priority = 8", "priority = 8\nkeys = true"));
    CHECK(e.context_value("line") == "23");
    CHECK(std::string(e.what()).find("must be a string, got a boolean") != std::string::npos);

    // A key of the table's own section, not of a side's mapping.
    e = parse_error(replace(kValid, "name = \"hr.candidates\"",
                            "name = \"hr.candidates\"\nkeys = \"disjoint\""));
    CHECK(e.context_value("line") == "29");
    CHECK(std::string(e.what()).find("unknown key 'keys'") != std::string::npos);
}

TEST_CASE("exclude_columns: canonical column names, nothing else") {
    const Config c = parse(
        replace(kValid, "priority = 5", "priority = 5\nexclude_columns = [\"email\", \"notes\"]"));
    const TableConfig& customers = *c.find_table(QualifiedName{"public", "customers"});
    CHECK(customers.excluded_columns == std::set<std::string>{"email", "notes"});
    CHECK(customers.column_on("zervigo", "email") == "contact_email");
    CHECK(c.find_table(QualifiedName{"public", "talents"})->excluded_columns.empty());
    const Error e =
        parse_error(replace(kValid, "priority = 5", "priority = 5\nexclude_columns = [1]"));
    CHECK(std::string(e.what()).find("tables.exclude_columns must list column names") !=
          std::string::npos);
}

TEST_CASE("invalid configurations name the line of the mistake") {
    SUBCASE("TOML syntax error") {
        CHECK(error_line(replace(kValid, "batch_size = 100", "batch_size = = 100")) == 15);
    }
    SUBCASE("unknown top-level key") {
        const std::string text = std::string(kValid) + "\n[metricz]\nlisten = \"x\"\n";
        const Error e = parse_error(text);
        CHECK(std::string(e.what()).find("unknown key 'metricz'") != std::string::npos);
        CHECK(e.context_value("line") == "40");
    }
    SUBCASE("metrics.listen without a port") {
        const std::string text = std::string(kValid) + "\n[metrics]\nlisten = \"127.0.0.1\"\n";
        const Error e = parse_error(text);
        CHECK(std::string(e.what()).find("HOST:PORT") != std::string::npos);
        CHECK(e.context_value("line") == "41");
    }
    SUBCASE("a status threshold out of range, and an unknown log level") {
        const std::string text = std::string(kValid) + "\n[status]\nmax_lag_seconds = 0\n";
        CHECK(parse_error(text).context_value("line") == "41");
        CHECK(error_line(replace(kValid, "max_retries = 3",
                                 "max_retries = 3\nlog_level = \"loud\"")) == 17);
    }
    SUBCASE("unknown key in [engine]") {
        const Error e = parse_error(replace(kValid, "max_retries = 3", "max_retry = 3"));
        CHECK(e.context_value("line") == "16");
        CHECK(std::string(e.what()).find("expected one of: batch_size, max_retries") !=
              std::string::npos);
    }
    SUBCASE("unknown key in a side") {
        CHECK(error_line(replace(kValid, "[sides.zervigo]\n", "[sides.zervigo]\nhost = \"x\"\n")) ==
              8);
    }
    SUBCASE("missing conninfo names the side's table") {
        CHECK(error_line(replace(kValid,
                                 "conninfo = \"host=127.0.0.1 port=5433 dbname=zervigo "
                                 "user=pgbridge\"",
                                 "")) == 7);
    }
    SUBCASE("priority above max_priority") {
        const Error e = parse_error(replace(kValid, "priority = 8", "priority = 11"));
        CHECK(e.context_value("line") == "22");
        CHECK(std::string(e.what()).find("between 0 and 10") != std::string::npos);
    }
    SUBCASE("priority of the wrong type") {
        CHECK(error_line(replace(kValid, "priority = 8", "priority = \"high\"")) == 22);
    }
    SUBCASE("table name not schema-qualified") {
        CHECK(error_line(replace(kValid, "name = \"public.talents\"", "name = \"talents\"")) == 21);
    }
    SUBCASE("table listed twice") {
        CHECK(error_line(replace(kValid, "name = \"public.customers\"",
                                 "name = \"PUBLIC.Talents\"")) == 25);
    }
    SUBCASE("mapping to an unknown side") {
        CHECK(error_line(replace(kValid, "[tables.sides.zervigo]", "[tables.sides.zervigoo]")) ==
              27);
    }
    SUBCASE("two columns mapped to the same side column") {
        CHECK(error_line(replace(kValid, "columns = { email = \"contact_email\" }",
                                 "columns = { email = \"contact_email\", mail = "
                                 "\"contact_email\" }")) == 29);
    }
    SUBCASE("unknown strategy") {
        const Error e = parse_error(replace(kValid, "\"last_write_wins\"", "\"newest_wins\""));
        CHECK(e.context_value("line") == "32");
        CHECK(std::string(e.what()).find("last_write_wins, source_priority, manual") !=
              std::string::npos);
    }
    SUBCASE("source_priority names an unknown side") {
        CHECK(error_line(replace(kValid, "[\"looma_crm\", \"zervigo\"]",
                                 "[\"looma_crm\", \"zervigo\", \"crm\"]")) == 33);
    }
    SUBCASE("source_priority lists a side twice") {
        CHECK(error_line(replace(kValid, "[\"looma_crm\", \"zervigo\"]",
                                 "[\"zervigo\", \"zervigo\"]")) == 33);
    }
    SUBCASE("field_priority names an unknown side") {
        CHECK(error_line(replace(kValid, "email = \"zervigo\"", "email = \"zervig\"")) == 36);
    }
    SUBCASE("field_priority names a table that is not synced") {
        CHECK(error_line(replace(kValid, "\"public.customers.status\"",
                                 "\"public.orders.status\"")) == 38);
    }
    SUBCASE("field_priority key with two parts") {
        CHECK(error_line(replace(kValid, "\"public.customers.status\"", "\"customers.status\"")) ==
              38);
    }
    SUBCASE("invalid AMQP URL") {
        const Error e = parse_error(replace(kValid, "amqp://pgbridge@", "http://pgbridge@"));
        CHECK(e.context_value("line") == "11");
        CHECK(std::string(e.what()).find("amqp://") != std::string::npos);
    }
    SUBCASE("invalid libpq conninfo") {
        CHECK(error_line(replace(kValid, "port=5433 dbname=zervigo", "port=5433 dbname")) == 8);
        // libpq quotes what it stopped at, which may be a password: never shown.
        for (const char* broken :
             {"user=pgbridge hunter2", "user=pgbridge password='hunter2", "user=pgbridge hunter2=x",
              "postgresql://pgbridge:hunter2@[::1/zervigo"}) {
            const Error e = parse_error(replace(kValid, "dbname=zervigo user=pgbridge", broken));
            INFO(e.what());
            CHECK(e.context_value("line") == "8");
            CHECK(std::string(e.what()).find("hunter2") == std::string::npos);
            CHECK(std::string(e.what()).find("not a valid libpq connection string") !=
                  std::string::npos);
        }
    }
    SUBCASE("bridge name with characters a slot name cannot hold") {
        CHECK(error_line(replace(kValid, "name = \"crm\"", "name = \"CRM-1\"")) == 2);
    }
    SUBCASE("three sides") {
        CHECK(error_line(replace(kValid, "[rabbitmq]",
                                 "[sides.third]\nconninfo = \"dbname=x\"\n"
                                 "[rabbitmq]")) == 10);
    }
    SUBCASE("engine value out of range") {
        CHECK(error_line(replace(kValid, "batch_size = 100", "batch_size = 0")) == 15);
    }
    SUBCASE("max_priority out of RabbitMQ's range") {
        CHECK(error_line(replace(kValid, "max_priority = 10", "max_priority = 300")) == 12);
    }
    SUBCASE("max_message_bytes below one chunk's minimum") {
        CHECK(error_line(replace(kValid, "max_priority = 10",
                                 "max_priority = 10\nmax_message_bytes = 1000")) == 13);
    }
    SUBCASE("TLS files without an amqps:// URL") {
        CHECK(error_line(replace(kValid, "max_priority = 10",
                                 "max_priority = 10\nca_file = \"/etc/hostname\"")) == 11);
    }
    SUBCASE("a client certificate without its key") {
        CHECK(error_line(replace(replace(kValid, "amqp://", "amqps://"), "max_priority = 10",
                                 "max_priority = 10\ncert_file = \"/etc/hostname\"")) == 13);
    }
    SUBCASE("an unreadable CA file") {
        CHECK(error_line(replace(replace(kValid, "amqp://", "amqps://"), "max_priority = 10",
                                 "max_priority = 10\nca_file = \"/nonexistent/ca.pem\"")) == 13);
    }
    SUBCASE("verify_peer that is not a boolean") {
        CHECK(error_line(replace(replace(kValid, "amqp://", "amqps://"), "max_priority = 10",
                                 "max_priority = 10\nverify_peer = \"no\"")) == 13);
    }
    SUBCASE("names too long for PostgreSQL identifiers") {
        const std::string long_name(50, 'x');
        CHECK(error_line(replace(kValid, "name = \"crm\"", "name = \"" + long_name + "\"")) == 4);
    }
}

TEST_CASE("every problem is reported at once, in file order") {
    std::string text = replace(kValid, "priority = 8", "priority = 99");
    text = replace(text, "max_retries = 3", "max_retry = 3");
    const Error e = parse_error(text);
    const std::string message = e.what();
    CHECK(e.context_value("line") == "16");  // the first one in the file
    CHECK(message.find("test.toml:16:1: unknown key 'max_retry'") != std::string::npos);
    CHECK(message.find("test.toml:22:") != std::string::npos);
}

TEST_CASE("password files are read, never shown, and their permissions checked") {
    const auto dir = std::filesystem::temp_directory_path() / "pgbridge-config-test";
    std::filesystem::create_directories(dir);
    const auto file = dir / "looma.pass";
    {
        std::ofstream out(file);
        out << "s3cret-pw\n";
    }
    std::filesystem::permissions(
        file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    const std::string text =
        replace(kValid, "[sides.zervigo]", "password_file = \"looma.pass\"\n[sides.zervigo]");

    SUBCASE("relative to the config file, first line only") {
        const Config c = parse_config(text, "test.toml", dir);
        CHECK(c.sides[0].password.reveal() == "s3cret-pw");
        CHECK(c.warnings.empty());
    }
    SUBCASE("a file group or others can read is refused, at the key") {
        for (const auto perm :
             {std::filesystem::perms::group_read, std::filesystem::perms::others_read,
              std::filesystem::perms::group_write}) {
            std::filesystem::permissions(
                file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
            std::filesystem::permissions(file, perm, std::filesystem::perm_options::add);
            const Error e = [&] {
                try {
                    parse_config(text, "test.toml", dir);
                } catch (const Error& err) {
                    return err;
                }
                FAIL("expected an error");
                return Error(ErrorKind::Internal, "");
            }();
            CHECK(e.kind() == ErrorKind::Config);
            CHECK(e.context_value("line") == "7");
            const std::string message = e.what();
            CHECK(message.find("chmod 0600") != std::string::npos);
            CHECK(message.find("s3cret") == std::string::npos);
        }
        // Owner only, read-only: accepted.
        std::filesystem::permissions(file, std::filesystem::perms::owner_read);
        CHECK(parse_config(text, "test.toml", dir).sides[0].password.reveal() == "s3cret-pw");
    }
    SUBCASE("missing file is an error at the key") {
        const Error e = [&] {
            try {
                parse_config(text, "test.toml", dir / "elsewhere");
            } catch (const Error& err) {
                return err;
            }
            FAIL("expected an error");
            return Error(ErrorKind::Internal, "");
        }();
        CHECK(e.context_value("line") == "7");
    }
    SUBCASE("a password in the conninfo is a warning and never echoed") {
        const Config c = parse(replace(kValid, "dbname=looma user=pgbridge",
                                       "dbname=looma user=pgbridge password=hunter2"));
        REQUIRE(c.warnings.size() == 1);
        CHECK(c.warnings[0].find("hunter2") == std::string::npos);
    }
    std::filesystem::remove_all(dir);
}

TEST_CASE("a signing key file: its keys, its permissions, errors that never quote it") {
    const auto dir = std::filesystem::temp_directory_path() / "pgbridge-signing-test";
    std::filesystem::create_directories(dir);
    const auto file = dir / "signing.keys";
    auto write = [&](const std::string& text, std::filesystem::perms perms) {
        std::ofstream(file) << text;
        std::filesystem::permissions(file, perms);
    };
    const auto owner = std::filesystem::perms::owner_read | std::filesystem::perms::owner_write;
    const std::string text = replace(kValid, "max_priority = 10",
                                     "max_priority = 10\nsigning_key_file = \"signing.keys\"");
    const std::string key = "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE=";  // 32 x '1'
    write(key + "\n", owner);
    const Config c = parse_config(text, "test.toml", dir);
    REQUIRE(c.rabbitmq.signing_keys.size() == 1);
    CHECK(c.rabbitmq.signing_keys[0].key.reveal() == std::string(32, '1'));
    CHECK(describe_signing(c.rabbitmq.signing_keys)
              .find("signed with key " + c.rabbitmq.signing_keys[0].id) != std::string::npos);
    CHECK(describe_signing({}).find("trusted") != std::string::npos);

    auto error_of = [&] {
        try {
            parse_config(text, "test.toml", dir);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        FAIL("expected an error");
        return std::string();
    };
    write(key + "\n", owner | std::filesystem::perms::others_read);
    CHECK(error_of().find("chmod 0600") != std::string::npos);
    write(key + "\nc2hvcnQ=\n", owner);  // "short"
    const std::string short_key = error_of();
    CHECK(short_key.find("line 2 is not a key") != std::string::npos);
    CHECK(short_key.find("c2hvcnQ") == std::string::npos);
    CHECK(short_key.find(key) == std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST_CASE("a missing file names the path") {
    try {
        load_config("/nonexistent/pgbridge.toml");
        FAIL("expected an error");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::Config);
        CHECK(e.context_value("file") == "/nonexistent/pgbridge.toml");
    }
}

TEST_CASE("the example config shipped in the repository is valid") {
    const char* root = std::getenv("PGBRIDGE_SOURCE_ROOT");
    REQUIRE(root != nullptr);
    const Config c = load_config(std::filesystem::path(root) / "packaging" / "pgbridge.toml");
    CHECK(c.bridge_name == "crm");
    CHECK(c.sides.size() == 2);
}

TEST_CASE("a cron step as large as an int loads without overflow (found by fuzzing)") {
    const Config c = parse_config(
        std::string(kValid) + "\n[verify]\nschedule = \"1/2147483647 23/2147483647 * * *\"\n",
        "test.toml");
    REQUIRE(c.verify.schedule.has_value());
    // Minute 1 of hour 23 only: a step from N runs up to the field's maximum.
    const auto next = c.verify.schedule->next_after(
        std::chrono::sys_seconds(std::chrono::seconds(1795635601)));  // 2026-11-25T19:40:01Z
    REQUIRE(next.has_value());
    CHECK(next->time_since_epoch().count() == 1795647660);  // 2026-11-25T23:01:00Z
}

TEST_CASE("a password_file that never ends a line is refused, not read forever") {
    const Error e = parse_error(
        replace(kValid, "[sides.zervigo]", "password_file = \"/dev/zero\"\n[sides.zervigo]"));
    CHECK(e.context_value("line") == "7");
    CHECK(std::string(e.what()).find("longer than 65536 bytes") != std::string::npos);
}

TEST_CASE("rabbitmq.urls: every node of a cluster, one scheme, user and virtual host") {
    const std::string url_line = "url = \"amqp://pgbridge@127.0.0.1:5672/%2f\"";
    const Config c = parse(replace(kValid, url_line,
                                   "urls = [\"amqp://pgbridge@10.0.0.1:5672/%2f\", "
                                   "\"amqp://pgbridge@10.0.0.2/%2f\", "
                                   "\"amqp://pgbridge@10.0.0.3:5673/%2f\"]"));
    CHECK(c.rabbitmq.url.host == "10.0.0.1");
    REQUIRE(c.rabbitmq.failover_urls.size() == 2);
    CHECK(c.rabbitmq.failover_urls[0].host == "10.0.0.2");
    CHECK(c.rabbitmq.failover_urls[0].port == 5672);
    CHECK(c.rabbitmq.failover_urls[1].port == 5673);
    // One node: no failover.
    CHECK(parse(kValid).rabbitmq.failover_urls.empty());

    auto error_of = [&](const std::string& with, std::string_view line = "11") {
        const Error e = parse_error(replace(kValid, url_line, with));
        CHECK(e.context_value("line") == line);
        return std::string(e.what());
    };
    CHECK(error_of(url_line + "\nurls = [\"amqp://a/%2f\"]", "12").find("both url and urls") !=
          std::string::npos);
    CHECK(error_of("urls = []").find("empty") != std::string::npos);
    CHECK(error_of("urls = [\"amqp://pgbridge@a/%2f\", \"amqps://pgbridge@b/%2f\"]")
              .find("scheme, user and virtual host") != std::string::npos);
    CHECK(error_of("urls = [\"amqp://pgbridge@a/%2f\", \"amqp://other@b/%2f\"]")
              .find("scheme, user and virtual host") != std::string::npos);
    CHECK(error_of("urls = [\"amqp://pgbridge@a/%2f\", 5]").find("rabbitmq.urls") !=
          std::string::npos);
    CHECK(std::string(parse_error(replace(kValid, url_line, "")).what())
              .find("needs url (one node) or urls") != std::string::npos);
}

TEST_CASE("sides.NAME.rabbitmq_url(s): a broker at each site") {
    const std::string zervigo =
        "conninfo = \"host=127.0.0.1 port=5433 dbname=zervigo user=pgbridge\"";
    // One side with its own broker: the other keeps [rabbitmq]'s.
    const Config one =
        parse(replace(kValid, zervigo,
                      zervigo + "\nrabbitmq_urls = [\"amqp://pgbridge@10.0.1.1/site_b\", "
                                "\"amqp://pgbridge@10.0.1.2/site_b\"]"));
    REQUIRE(one.side("zervigo").broker);
    CHECK_FALSE(one.side("looma_crm").broker);
    CHECK(one.broker_of("looma_crm").url.host == "127.0.0.1");
    const RabbitConfig site_b = one.broker_of("zervigo");
    CHECK(site_b.url.host == "10.0.1.1");
    CHECK(site_b.url.vhost == "site_b");
    REQUIRE(site_b.failover_urls.size() == 1);
    CHECK(site_b.failover_urls[0].host == "10.0.1.2");
    CHECK(site_b.max_priority == 10);  // every other setting is [rabbitmq]'s
    REQUIRE(one.brokers().size() == 2);
    CHECK(one.brokers()[0].url.host == "127.0.0.1");
    CHECK(one.brokers()[1].url.host == "10.0.1.1");
    // The same broker named twice is one broker.
    CHECK(parse(replace(kValid, zervigo,
                        zervigo + "\nrabbitmq_url = \"amqp://pgbridge@127.0.0.1:5672/%2f\""))
              .brokers()
              .size() == 1);

    // Both sides with their own: [rabbitmq] needs no url.
    const std::string url_line = "url = \"amqp://pgbridge@127.0.0.1:5672/%2f\"";
    const Config both = parse(
        replace(replace(replace(kValid, url_line, ""), zervigo,
                        zervigo + "\nrabbitmq_url = \"amqp://pgbridge@10.0.1.1/%2f\""),
                "dbname=looma user=pgbridge\"",
                "dbname=looma user=pgbridge\"\nrabbitmq_url = \"amqp://pgbridge@10.0.0.1/%2f\""));
    CHECK(both.broker_of("looma_crm").url.host == "10.0.0.1");
    CHECK(both.broker_of("zervigo").url.host == "10.0.1.1");
    CHECK(std::string(parse_error(replace(kValid, url_line, "")).what())
              .find("[rabbitmq] needs url (one node) or urls") != std::string::npos);

    const auto error_of = [&](const std::string& lines, std::string_view line = "9") {
        const Error e = parse_error(replace(kValid, zervigo, zervigo + "\n" + lines));
        CHECK(e.context_value("line") == line);
        return std::string(e.what());
    };
    CHECK(error_of("rabbitmq_url = \"amqp://a/%2f\"\nrabbitmq_urls = [\"amqp://b/%2f\"]", "10")
              .find("[sides.zervigo] has both rabbitmq_url and rabbitmq_urls") !=
          std::string::npos);
    CHECK(error_of("rabbitmq_url = \"http://a/\"").find("sides.zervigo.rabbitmq_url: expected") !=
          std::string::npos);
    CHECK(error_of("rabbitmq_password_file = \"x\"").find("set rabbitmq_url or rabbitmq_urls") !=
          std::string::npos);
}

TEST_CASE("[history] retention, and tables.history") {
    CHECK_FALSE(parse(kValid).history.enabled());
    CHECK(parse(kValid).tables[0].history);
    const auto with = [](const std::string& retention) {
        return std::string(kValid) + "\n[history]\nretention = " + retention + "\n";
    };
    CHECK(parse(with("\"7d\"")).history.retention == std::chrono::hours(24 * 7));
    CHECK(parse(with("\"12h\"")).history.retention == std::chrono::hours(12));
    CHECK(parse(with("\"90m\"")).history.retention == std::chrono::minutes(90));
    for (const char* wrong : {"\"7\"", "\"d\"", "\"7w\"", "\"-1d\"", "\"30s\"", "\"1.5d\""}) {
        CAPTURE(wrong);
        const Error e = parse_error(with(wrong));
        CHECK(std::string(e.what()).find("history.retention") != std::string::npos);
    }
    CHECK(std::string(parse_error(with("7")).what()).find("retention must be a string") !=
          std::string::npos);
    CHECK(
        std::string(parse_error(std::string(kValid) + "\n[history]\n").what()).find("retention") !=
        std::string::npos);
    const Config excluded = parse(replace(kValid, "priority = 8", "priority = 8\nhistory = false"));
    CHECK_FALSE(excluded.tables[0].history);
    CHECK(excluded.tables[1].history);
}

TEST_CASE("rabbitmq.queue_type: classic by default; quorum with priority bands") {
    CHECK(parse(kValid).rabbitmq.queue_type == RabbitConfig::QueueType::Classic);
    CHECK(parse(kValid).rabbitmq.priority_bands.empty());
    const std::string max_line = "max_priority = 10";
    const Config quorum = parse(replace(kValid, max_line, max_line + "\nqueue_type = \"quorum\""));
    CHECK(quorum.rabbitmq.queue_type == RabbitConfig::QueueType::Quorum);
    CHECK(quorum.rabbitmq.priority_bands == std::vector<int>{5});
    const Config bands = parse(
        replace(kValid, max_line, max_line + "\nqueue_type = \"quorum\"\npriority_bands = [8, 3]"));
    CHECK(bands.rabbitmq.priority_bands == std::vector<int>{8, 3});

    auto error_of = [&](const std::string& with) {
        const Error e = parse_error(replace(kValid, max_line, max_line + "\n" + with));
        CHECK(e.context_value("line") == "13");
        return std::string(e.what());
    };
    CHECK(error_of("queue_type = \"stream\"").find("\"classic\" or \"quorum\"") !=
          std::string::npos);
    CHECK(error_of("priority_bands = [5]").find("for queue_type = \"quorum\"") !=
          std::string::npos);
    // Bands highest first, each between 1 and max_priority.
    for (const char* bad : {"[3, 8]", "[5, 5]", "[0]", "[11]", "[\"5\"]"}) {
        CAPTURE(bad);
        const Error e = parse_error(
            replace(kValid, max_line,
                    max_line + "\nqueue_type = \"quorum\"\npriority_bands = " + std::string(bad)));
        CHECK(std::string(e.what()).find("highest first") != std::string::npos);
    }
}

TEST_CASE("engine.apply_workers and tables.atomic_transactions") {
    const Config defaults = parse(kValid);
    CHECK(defaults.engine.apply_workers == 1);
    CHECK_FALSE(defaults.tables[0].atomic_transactions);

    const Config sharded = parse(
        replace(replace(kValid, "timeout_ms = 30000", "timeout_ms = 30000\napply_workers = 4"),
                "priority = 5", "priority = 5\natomic_transactions = true"));
    CHECK(sharded.engine.apply_workers == 4);
    CHECK_FALSE(sharded.tables[0].atomic_transactions);
    CHECK(sharded.tables[1].atomic_transactions);

    Error e =
        parse_error(replace(kValid, "timeout_ms = 30000", "timeout_ms = 30000\napply_workers = 0"));
    CHECK(e.context_value("line") == "19");
    CHECK(std::string(e.what()).find("between 1 and 32") != std::string::npos);
    e = parse_error(replace(kValid, "priority = 8", "priority = 8\natomic_transactions = \"yes\""));
    CHECK(e.context_value("line") == "23");
    CHECK(std::string(e.what()).find("tables.atomic_transactions must be true or false") !=
          std::string::npos);

    // Shard origins are longer than the origin: the names must still fit PostgreSQL's 63.
    const std::string long_name(37, 'b');
    e = parse_error(replace(replace(kValid, "name = \"crm\"", "name = \"" + long_name + "\""),
                            "timeout_ms = 30000", "timeout_ms = 30000\napply_workers = 12"));
    CHECK(e.context_value("line") == "19");
    CHECK(std::string(e.what()).find("too long for 12 apply workers") != std::string::npos);
}

TEST_CASE("engine.remote_apply_shards: shards applied by apply-only workers") {
    CHECK(parse(kValid).engine.remote_apply_shards.empty());
    const auto with = [](const std::string& lines) {
        return replace(kValid, "timeout_ms = 30000", "timeout_ms = 30000\n" + lines);
    };
    const Config remote = parse(with("apply_workers = 4\nremote_apply_shards = [4, 2]"));
    CHECK(remote.engine.remote_apply_shards == std::vector<int>{2, 4});

    Error e = parse_error(with("apply_workers = 2\nremote_apply_shards = [3]"));
    CHECK(e.context_value("line") == "20");
    CHECK(std::string(e.what()).find("1 to apply_workers (2)") != std::string::npos);
    // Checked against apply_workers wherever the two stand.
    CHECK(parse(with("remote_apply_shards = [2]\napply_workers = 2")).engine.remote_apply_shards ==
          std::vector<int>{2});
    e = parse_error(with("apply_workers = 3\nremote_apply_shards = [2, 2]"));
    CHECK(std::string(e.what()).find("lists shard 2 twice") != std::string::npos);
    e = parse_error(with("apply_workers = 3\nremote_apply_shards = [\"2\"]"));
    CHECK(std::string(e.what()).find("by number") != std::string::npos);
    e = parse_error(with("apply_workers = 3\nremote_apply_shards = 2"));
    CHECK(std::string(e.what()).find("an array") != std::string::npos);
}
