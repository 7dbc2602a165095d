// pgbridge lag and pgbridge status: how far behind each direction is, and one verdict for
// monitoring (exit 0 healthy, 1 degraded, 2 down).

#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/cli/commands.hpp>
#include <pgbridge/cli/text_table.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/core/byte_size.hpp>
#include <pgbridge/metrics/bridge_probe.hpp>

namespace pgbridge::cli {
namespace {

using nlohmann::json;

template <typename T>
json or_null(const std::optional<T>& v) {
    return v ? json(*v) : json();
}

template <typename T>
std::string or_dash(const std::optional<T>& v) {
    return v ? fmt::format("{}", *v) : "-";
}

json lag_json(const metrics::DirectionLag& d) {
    return json{{"source", d.source},
                {"target", d.target},
                {"wal_bytes_not_captured", or_null(d.wal_bytes)},
                {"queued_messages", or_null(d.queued)},
                {"dead_letter_queue_messages", or_null(d.dead)},
                {"seconds_behind", or_null(d.seconds_behind)},
                {"pending_conflicts", or_null(d.pending_conflicts)},
                {"dead_letters", or_null(d.new_dead_letters)}};
}

// The initial copy from a side: tables left, and each copy begun with its rate and time left.
json copy_json(const metrics::SideProbe& side) {
    json tables = json::array();
    for (const auto& c : side.copies) {
        tables.push_back(json{{"table", c.table},
                              {"rows_copied", c.rows_copied},
                              {"rows_estimated", c.rows_estimated},
                              {"rows_per_second", c.rows_per_second()},
                              {"seconds_left", or_null(c.seconds_left())},
                              {"stalled", c.stalled()}});
    }
    return json{{"tables_left", side.reachable ? json(side.tables_not_copied) : json()},
                {"running", tables}};
}

void print_copies(const metrics::BridgeProbe& probe) {
    for (const auto& s : probe.sides) {
        if (!s.reachable || s.tables_not_copied == 0) {
            continue;
        }
        std::cout << fmt::format("\nInitial copy from {}: {} tables left\n", s.side,
                                 s.tables_not_copied);
        for (const auto& c : s.copies) {
            std::cout << "  " << metrics::describe_copy(c) << "\n";
        }
    }
}

TextTable lag_table(const std::vector<metrics::DirectionLag>& lag) {
    TextTable table({"DIRECTION", "WAL NOT CAPTURED", "QUEUED", "DEAD QUEUE", "SECONDS BEHIND",
                     "PENDING CONFLICTS", "DEAD LETTERS"});
    for (const auto& d : lag) {
        table.add_row({d.source + " -> " + d.target,
                       d.wal_bytes ? format_bytes(static_cast<std::int64_t>(*d.wal_bytes)) : "-",
                       or_dash(d.queued), or_dash(d.dead),
                       d.seconds_behind ? fmt::format("{:.1f}", *d.seconds_behind) : "-",
                       or_dash(d.pending_conflicts), or_dash(d.new_dead_letters)});
    }
    return table;
}

// What could not be read, on stderr; true when anything was unreachable.
bool report_unreachable(const metrics::BridgeProbe& probe) {
    bool any = false;
    for (const auto& s : probe.sides) {
        if (!s.reachable) {
            std::cerr << fmt::format("pgbridge: side {} cannot be reached: {}\n", s.side, s.error);
            any = true;
        }
    }
    if (!probe.broker.reachable) {
        std::cerr << fmt::format("pgbridge: RabbitMQ cannot be reached: {}\n", probe.broker.error);
        any = true;
    }
    return any;
}

}  // namespace

int lag_command(const GlobalOptions& global) {
    const Config config = load_config(global.config_path);
    const metrics::BridgeProbe probe = metrics::probe_bridge(config);
    const auto lag = metrics::lag_of(config, probe);
    const bool unreachable = report_unreachable(probe);
    if (global.json) {
        json out = json::array();
        for (const auto& d : lag) {
            json direction = lag_json(d);
            direction["copy"] = copy_json(probe.side(d.source));
            out.push_back(std::move(direction));
        }
        std::cout << out.dump(2) << "\n";
    } else {
        lag_table(lag).print(std::cout);
        print_copies(probe);
    }
    return unreachable ? 1 : 0;
}

int status_command(const GlobalOptions& global) {
    const Config config = load_config(global.config_path);
    const metrics::BridgeProbe probe = metrics::probe_bridge(config);
    const auto lag = metrics::lag_of(config, probe);
    const metrics::HealthReport report = metrics::assess(config, probe, lag);
    if (global.json) {
        json sides = json::array();
        for (const auto& s : probe.sides) {
            sides.push_back(json{{"side", s.side},
                                 {"reachable", s.reachable},
                                 {"error", s.error.empty() ? json() : json(s.error)},
                                 {"slot_exists", s.slot_exists},
                                 {"slot_active", s.slot_active},
                                 {"wal_status", s.wal_status.empty() ? json() : json(s.wal_status)},
                                 {"pending_conflicts", s.pending_conflicts},
                                 {"dead_letters", s.new_dead_letters},
                                 {"copy", copy_json(s)}});
        }
        json directions = json::array();
        for (const auto& d : lag) {
            directions.push_back(lag_json(d));
        }
        std::cout << json{{"bridge", config.bridge_name},
                          {"health", metrics::to_string(report.health)},
                          {"exit_code", static_cast<int>(report.health)},
                          {"problems", report.problems},
                          {"broker_reachable", probe.broker.reachable},
                          {"broker_trusted", config.rabbitmq.signing_keys.empty()},
                          {"sides", sides},
                          {"directions", directions}}
                         .dump(2)
                  << "\n";
        return static_cast<int>(report.health);
    }
    std::cout << fmt::format("bridge {}: {}\n\n", config.bridge_name,
                             metrics::to_string(report.health));
    TextTable sides(
        {"SIDE", "REACHABLE", "SLOT", "WAL STATUS", "PENDING CONFLICTS", "DEAD LETTERS"});
    for (const auto& s : probe.sides) {
        sides.add_row({s.side, s.reachable ? "yes" : "no",
                       !s.reachable     ? "-"
                       : !s.slot_exists ? "missing"
                       : s.slot_active  ? "active"
                                        : "inactive",
                       s.wal_status.empty() ? "-" : s.wal_status,
                       s.reachable ? std::to_string(s.pending_conflicts) : "-",
                       s.reachable ? std::to_string(s.new_dead_letters) : "-"});
    }
    sides.print(std::cout);
    std::cout << fmt::format("\nRabbitMQ: {}; {}\n\n",
                             probe.broker.reachable ? "reachable" : "cannot be reached",
                             describe_signing(config.rabbitmq.signing_keys));
    lag_table(lag).print(std::cout);
    print_copies(probe);
    if (!report.problems.empty()) {
        std::cout << "\n";
        for (const auto& p : report.problems) {
            std::cout << "- " << p << "\n";
        }
    }
    return static_cast<int>(report.health);
}

}  // namespace pgbridge::cli
