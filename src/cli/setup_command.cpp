#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/cli/commands.hpp>
#include <pgbridge/cli/text_table.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/setup/database_setup.hpp>
#include <pgbridge/transport/amqp_connection.hpp>
#include <pgbridge/transport/topology.hpp>

namespace pgbridge::cli {
namespace {

DatabaseSetupOptions database_options(const Config& config, const SetupCommandOptions& options) {
    DatabaseSetupOptions result;
    for (const auto& [side, conninfo] : options.admin_conninfo) {
        // Fails with a config-style message for a side the file does not declare.
        bool known = false;
        for (const auto& s : config.sides) {
            known = known || s.name == side;
        }
        if (!known) {
            throw Error(ErrorKind::Usage,
                        fmt::format("--admin-conninfo names unknown side '{}'", side));
        }
        result.admin_conninfo.emplace(side, conninfo);
    }
    result.dry_run = options.dry_run;
    result.keep_metadata = options.keep_metadata;
    result.partition_sequences = options.partition_sequences;
    result.timeout_ms = config.engine.timeout_ms;
    return result;
}

void print_report(const SetupReport& report, std::string_view verb, bool json) {
    if (json) {
        nlohmann::json steps = nlohmann::json::array();
        for (const auto& step : report.steps) {
            steps.push_back({{"side", step.side},
                             {"object", step.object},
                             {"outcome", to_string(step.outcome)},
                             {"detail", step.detail}});
        }
        std::cout << nlohmann::json{{"dry_run", report.dry_run},
                                    {"changes", report.changes()},
                                    {"steps", steps}}
                         .dump(2)
                  << '\n';
        return;
    }
    TextTable table({"SIDE", "OBJECT", "OUTCOME", "DETAIL"});
    for (const auto& step : report.steps) {
        table.add_row({step.side.empty() ? "-" : step.side, step.object,
                       std::string(to_string(step.outcome)), step.detail});
    }
    table.print(std::cout);
    const int changes = report.changes();
    if (changes == 0) {
        std::cout << fmt::format("\n{}: nothing to do, everything is already in place\n", verb);
    } else {
        std::cout << fmt::format("\n{}: {} {} {}\n", verb, changes,
                                 changes == 1 ? "change" : "changes",
                                 report.dry_run ? "would be made (dry run)" : "made");
    }
}

}  // namespace

// Adds the broker part to a report of the database part and prints it; when the broker part
// fails, what was done to the databases is printed before the error.
template <typename BrokerStep>
int finish_with_broker(const Config& config, SetupReport report, std::string_view verb, bool json,
                       BrokerStep&& step) {
    // Every broker holds the whole topology: with one per site, a side's capture publishes to
    // its own and a shovel carries the other side's queues over (docs/topologies.md).
    std::size_t done = 0;
    for (const RabbitConfig& site : config.brokers()) {
        try {
            transport::AmqpConnection broker(
                transport::AmqpConnectOptions::from(site, config.engine.timeout_ms));
            step(broker, transport::Topology::of(config), report);
            ++done;
        } catch (Error& e) {
            print_report(report,
                         done == 0
                             ? fmt::format("{} (databases only)", verb)
                             : fmt::format("{} (databases and {} of the brokers)", verb, done),
                         json);
            e.with("broker", site.url.redacted());
            throw;
        }
    }
    print_report(report, verb, json);
    return 0;
}

int setup_command(const GlobalOptions& global, const SetupCommandOptions& options) {
    const Config config = load_config(global.config_path);
    for (const auto& warning : config.warnings) {
        std::cerr << "warning: " << warning << '\n';
    }
    // The broker's login and virtual host first, so that they fail before any slot exists (a
    // slot holds WAL from the moment it is created). Closed again: the databases may take a
    // while, longer than the broker waits for heartbeats from an idle connection.
    for (const RabbitConfig& site : config.brokers()) {
        const transport::AmqpConnection login_check(
            transport::AmqpConnectOptions::from(site, config.engine.timeout_ms));
    }
    return finish_with_broker(
        config, setup_databases(config, database_options(config, options)), "setup", global.json,
        [&](transport::AmqpConnection& broker, const transport::Topology& topology,
            SetupReport& report) {
            transport::declare_topology(broker, topology, &report, options.dry_run);
        });
}

int teardown_command(const GlobalOptions& global, const SetupCommandOptions& options) {
    const Config config = load_config(global.config_path);
    return finish_with_broker(config, teardown_databases(config, database_options(config, options)),
                              "teardown", global.json,
                              [&](transport::AmqpConnection& broker,
                                  const transport::Topology& topology, SetupReport& report) {
                                  transport::delete_topology(broker, topology, report,
                                                             options.dry_run);
                              });
}

}  // namespace pgbridge::cli
