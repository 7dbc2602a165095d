#include <algorithm>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/cli/commands.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/config/conflict_rules.hpp>
#include <pgbridge/config/object_names.hpp>
#include <pgbridge/config/side_connection.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/pg/connection.hpp>
#include <pgbridge/pg/conninfo.hpp>
#include <pgbridge/transport/topology.hpp>

namespace pgbridge::cli {
namespace {

// Key ids only: the first signs.
std::vector<std::string> signing_key_ids(const std::vector<SigningKey>& keys) {
    std::vector<std::string> ids;
    for (const auto& k : keys) {
        ids.push_back(k.id);
    }
    return ids;
}

std::string password_source(const std::optional<std::filesystem::path>& file, bool in_url) {
    if (file) {
        return "password from " + file->string();
    }
    return in_url ? "password in the URL" : "no password configured";
}

std::string_view rule_source_name(ColumnRule::Source source) {
    switch (source) {
        case ColumnRule::Source::TableFieldRule:
            return "table_field_priority";
        case ColumnRule::Source::ColumnFieldRule:
            return "field_priority";
        case ColumnRule::Source::DefaultStrategy:
            return "default_strategy";
    }
    return "unknown";
}

nlohmann::json rule_json(const ColumnRule& rule) {
    nlohmann::json j{{"rule", rule_source_name(rule.source)},
                     {"strategy", rule.source == ColumnRule::Source::DefaultStrategy
                                      ? std::string(to_string(rule.strategy))
                                      : std::string("field_priority")},
                     {"reason", rule.reason},
                     {"description", rule.describe()}};
    j["winner"] = rule.fixed_winner ? nlohmann::json(*rule.fixed_winner) : nlohmann::json();
    if (rule.source == ColumnRule::Source::DefaultStrategy &&
        rule.strategy == ConflictStrategy::LastWriteWins) {
        j["tie_winner"] = rule.tie_winner;
    }
    return j;
}

std::vector<std::string> failover_nodes(const RabbitConfig& r) {
    std::vector<std::string> out;
    for (const auto& url : r.failover_urls) {
        out.push_back(url.redacted());
    }
    return out;
}

// Which process applies a shard (0-based): pgbridge run, or an apply-only worker.
std::string applied_by(const Config& config, std::uint32_t shard) {
    const int number = static_cast<int>(shard) + 1;
    if (!config.engine.applied_remotely(number)) {
        return "pgbridge run";
    }
    return fmt::format("pgbridge run --apply-only --shard {}/{}", number,
                       config.engine.apply_workers);
}

nlohmann::json config_json(const Config& config) {
    const ConflictRules rules(config);
    nlohmann::json sides = nlohmann::json::array();
    const auto topology = transport::Topology::of(config);
    for (const auto& side : config.sides) {
        const auto& other = config.other_side(side.name);
        nlohmann::json shards = nlohmann::json::array();
        for (std::uint32_t shard = 0; shard < topology.shards; ++shard) {
            shards.push_back({{"shard", shard + 1},
                              {"queues", topology.change_queues(side.name, shard)},
                              {"retry_queue", topology.retry_queue(side.name, shard)},
                              {"origin", names::shard_origin(config.bridge_name, other.name, shard,
                                                             topology.shards)},
                              {"applied_by", applied_by(config, shard)}});
        }
        sides.push_back({
            {"name", side.name},
            {"conninfo", pg::redact_conninfo(side.conninfo)},
            {"password", password_source(side.password_file, false)},
            {"slot", names::slot(config.bridge_name, side.name)},
            {"publication", names::publication(config.bridge_name)},
            {"origin_for_changes_from_" + other.name,
             names::shard_origin(config.bridge_name, other.name, 0, topology.shards)},
            {"queue", topology.change_queues(side.name).back()},
            {"apply_shards", shards},
            {"broker", side.broker ? nlohmann::json(side.broker->url.redacted())
                                   : nlohmann::json("[rabbitmq]")},
            {"dead_letter_queue", names::dead_letter_queue(config.bridge_name, side.name)},
        });
    }
    nlohmann::json tables = nlohmann::json::array();
    for (const auto& table : config.tables) {
        nlohmann::json names_by_side = nlohmann::json::object();
        for (const auto& side : config.sides) {
            nlohmann::json columns = nlohmann::json::object();
            if (auto it = table.sides.find(side.name); it != table.sides.end()) {
                for (const auto& [canonical, mapped] : it->second.columns) {
                    columns[canonical] = mapped;
                }
            }
            names_by_side[side.name] = {{"table", table.name_on(side.name).display()},
                                        {"columns", columns}};
        }
        nlohmann::json columns = nlohmann::json::object();
        for (const auto& [column, rule] : rules.named_columns(table.name)) {
            columns[column] = rule_json(rule);
        }
        tables.push_back(
            {{"name", table.name.display()},
             {"priority", table.priority},
             {"keys", table.keys == TableConfig::Keys::Disjoint ? "disjoint" : "checked"},
             {"atomic_transactions", table.atomic_transactions},
             {"sides", names_by_side},
             {"conflict_rules",
              {{"columns", columns}, {"other_columns", rule_json(rules.for_other_columns())}}}});
    }
    const auto& r = config.rabbitmq;
    return {
        {"valid", true},
        {"file", config.file.string()},
        {"bridge", config.bridge_name},
        {"sides", sides},
        {"rabbitmq",
         {{"url", r.url.redacted()},
          {"failover_urls", failover_nodes(r)},
          {"password", password_source(r.password_file, r.url.password_in_url)},
          {"max_priority", r.max_priority},
          {"queue_type", r.queue_type == RabbitConfig::QueueType::Quorum ? "quorum" : "classic"},
          {"priority_bands", r.priority_bands},
          {"exchange", names::exchange(config.bridge_name)},
          {"broker_trusted", r.signing_keys.empty()},
          {"signing_keys", signing_key_ids(r.signing_keys)}}},
        {"engine",
         {{"batch_size", config.engine.batch_size},
          {"max_retries", config.engine.max_retries},
          {"retry_delay_ms", config.engine.retry_delay_ms},
          {"timeout_ms", config.engine.timeout_ms},
          {"apply_workers", config.engine.apply_workers}}},
        {"verify",
         {{"schedule", config.verify.schedule ? nlohmann::json(config.verify.schedule->text())
                                              : nlohmann::json()},
          {"auto_repair", config.verify.auto_repair}}},
        {"conflicts",
         {{"default_strategy", to_string(config.conflicts.default_strategy)},
          {"source_priority", config.conflicts.source_priority}}},
        {"tables", tables},
        {"warnings", config.warnings},
    };
}

void print_text(const Config& config, std::ostream& out) {
    const ConflictRules rules(config);
    out << fmt::format("{}: valid\n\n", config.file.string());
    out << fmt::format("bridge {}\n", config.bridge_name);
    const auto topology = transport::Topology::of(config);
    for (const auto& side : config.sides) {
        const auto& other = config.other_side(side.name);
        out << fmt::format("  side {}: {} ({})\n", side.name, pg::redact_conninfo(side.conninfo),
                           password_source(side.password_file, false));
        if (topology.shards == 1) {
            out << fmt::format("    slot {}, publication {}, origin {} for changes from {}\n",
                               names::slot(config.bridge_name, side.name),
                               names::publication(config.bridge_name),
                               names::origin(config.bridge_name, other.name), other.name);
            const auto queues = topology.change_queues(side.name);
            out << fmt::format("    changes to apply here arrive on queue{} {}\n",
                               queues.size() > 1 ? "s" : "", fmt::join(queues, ", "));
            continue;
        }
        if (side.broker) {
            const RabbitConfig site = config.broker_of(side.name);
            out << fmt::format(
                "    broker at this site: {} ({}); its capture publishes there, "
                "its queues are there\n",
                site.url.redacted(), password_source(site.password_file, site.url.password_in_url));
        }
        out << fmt::format("    slot {}, publication {}\n",
                           names::slot(config.bridge_name, side.name),
                           names::publication(config.bridge_name));
        out << fmt::format("    changes from {} are applied here by {} shards:\n", other.name,
                           topology.shards);
        for (std::uint32_t shard = 0; shard < topology.shards; ++shard) {
            const auto queues = topology.change_queues(side.name, shard);
            out << fmt::format(
                "      shard {}: origin {}, queue{} {}; applied by {}\n", shard + 1,
                names::shard_origin(config.bridge_name, other.name, shard, topology.shards),
                queues.size() > 1 ? "s" : "", fmt::join(queues, ", "), applied_by(config, shard));
        }
    }
    const auto& r = config.rabbitmq;
    const bool own_brokers =
        std::all_of(config.sides.begin(), config.sides.end(),
                    [](const SideConfig& side) { return side.broker.has_value(); });
    out << fmt::format("  rabbitmq {} ({}), exchange {}, max_priority {}\n",
                       own_brokers ? std::string("at each side's site (above)") : r.url.redacted(),
                       password_source(r.password_file, r.url.password_in_url),
                       names::exchange(config.bridge_name), r.max_priority);
    if (r.queue_type == RabbitConfig::QueueType::Quorum) {
        std::vector<std::string> bands;
        int top = r.max_priority;
        for (const int bound : r.priority_bands) {
            bands.push_back(fmt::format("{}..{}", bound, top));
            top = bound - 1;
        }
        bands.push_back(fmt::format("0..{}", top));
        out << fmt::format("    quorum queues; priority bands {}, highest first\n",
                           fmt::join(bands, ", "));
    }
    if (!r.failover_urls.empty()) {
        out << fmt::format("    on loss of that node, fails over to {}\n",
                           fmt::join(failover_nodes(r), ", "));
    }
    out << fmt::format("    {}\n", describe_signing(r.signing_keys));
    const auto& e = config.engine;
    out << fmt::format(
        "  engine: batch_size {}, max_retries {}, retry_delay_ms {}, timeout_ms {}, "
        "apply_workers {}\n",
        e.batch_size, e.max_retries, e.retry_delay_ms, e.timeout_ms, e.apply_workers);
    if (config.verify.schedule) {
        out << fmt::format("  verify: on schedule \"{}\" (UTC){}\n", config.verify.schedule->text(),
                           config.verify.auto_repair ? ", then repair" : ", report only");
    } else {
        out << "  verify: not scheduled (run `pgbridge verify` by hand or from cron)\n";
    }

    out << "\ntables and conflict rules\n";
    for (const auto& table : config.tables) {
        out << fmt::format("  {} (priority {}{}{})\n", table.name.display(), table.priority,
                           table.keys == TableConfig::Keys::Disjoint
                               ? "; keys disjoint: setup leaves its sequences alone"
                               : "",
                           table.atomic_transactions && config.engine.apply_workers > 1
                               ? "; atomic transactions: applied by shard 1"
                               : "");
        for (const auto& side : config.sides) {
            auto mapping = table.sides.find(side.name);
            std::string columns;
            if (mapping != table.sides.end()) {
                for (const auto& [canonical, mapped] : mapping->second.columns) {
                    columns += fmt::format("{}{} -> {}", columns.empty() ? "; columns " : ", ",
                                           canonical, mapped);
                }
            }
            out << fmt::format("    on {}: {}{}\n", side.name, table.name_on(side.name).display(),
                               columns);
        }
        const auto named = rules.named_columns(table.name);
        for (const auto& [column, rule] : named) {
            out << fmt::format("    column {}: {} ({})\n", column, rule.describe(), rule.reason);
        }
        const ColumnRule other = rules.for_other_columns();
        out << fmt::format("    {} columns: {} ({})\n", named.empty() ? "all" : "other",
                           other.describe(), other.reason);
    }
    if (!config.warnings.empty()) {
        out << "\nwarnings\n";
        for (const auto& w : config.warnings) {
            out << "  " << w << '\n';
        }
    }
}

// The columns field_priority rules name, checked against the synced tables as the first side
// that answers has them: a typo would make a rule that never applies. The only part of
// check-config that asks a server; without rules it asks none. Says what it checked against.
std::string check_rule_columns(const Config& config) {
    if (config.conflicts.field_priority.empty()) {
        return "no field_priority rules";
    }
    std::string unreachable;
    for (const auto& side : config.sides) {
        std::map<QualifiedName, std::set<std::string>> columns;
        try {
            auto conn = pg::Connection::open(
                side_connect_options(side, config.engine.timeout_ms, "pgbridge check-config"));
            for (const auto& table : config.tables) {
                const pg::Result names = conn.exec(
                    "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass($1)"
                    "   AND attnum > 0 AND NOT attisdropped",
                    {table.name_on(side.name).quoted()});
                auto& canonical = columns[table.name];
                for (int r = 0; r < names.rows(); ++r) {
                    canonical.insert(
                        table.canonical_column(side.name, std::string(names.value(r, 0))));
                }
            }
        } catch (const Error& e) {
            unreachable +=
                fmt::format("{}side {}: {}", unreachable.empty() ? "" : "; ", side.name, e.what());
            continue;
        }
        const auto unknown = unknown_field_rule_columns(config, columns);
        if (!unknown.empty()) {
            throw Error(ErrorKind::Config, fmt::format("{} (checked against the tables of side {})",
                                                       fmt::join(unknown, "; "), side.name));
        }
        return "field_priority columns checked against the tables of side " + side.name;
    }
    return "field_priority columns not checked: no side could be reached (" + unreachable + ")";
}

}  // namespace

int check_config_command(const GlobalOptions& global, bool offline) {
    const Config config = load_config(global.config_path);
    const std::string columns_checked =
        offline ? "field_priority columns not checked (--offline)" : check_rule_columns(config);
    if (global.json) {
        nlohmann::json doc = config_json(config);
        doc["field_priority_columns"] = columns_checked;
        std::cout << doc.dump(2) << '\n';
    } else {
        print_text(config, std::cout);
        std::cout << '\n' << columns_checked << '\n';
    }
    return 0;
}

}  // namespace pgbridge::cli
