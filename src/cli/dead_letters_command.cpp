// pgbridge dead-letters list / show / replay / discard: the dead-letter log of both sides
// (pgbridge.dead_letters, written by the consumer of each side's queue), and what a DBA does
// about each record once the cause is fixed: send it again through the bridge, where it is
// applied by the conflict rules like any change, or set it aside.

#include <iostream>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/cli/commands.hpp>
#include <pgbridge/cli/side_record.hpp>
#include <pgbridge/cli/text_table.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/hex.hpp>
#include <pgbridge/core/utf8.hpp>
#include <pgbridge/pg/array_literal.hpp>
#include <pgbridge/transport/amqp_connection.hpp>
#include <pgbridge/transport/message_codec.hpp>
#include <pgbridge/transport/message_signature.hpp>
#include <pgbridge/transport/shard_router.hpp>
#include <pgbridge/transport/topology.hpp>

namespace pgbridge::cli {
namespace {

using nlohmann::json;

constexpr std::string_view kApplicationName = "pgbridge dead-letters";
constexpr std::uint16_t kChannel = 1;

constexpr const char* kColumns =
    "id, recorded_at::text, source_side, table_name, key::text, first_lsn::text,"
    " last_lsn::text, commit_time::text, attempts, error_kind, sqlstate, reason, message_id,"
    " octet_length(payload), status, handled_at::text";

json record_json(const std::string& side, const pg::Result& r, int i) {
    const auto text = [&](int c) {
        return r.is_null(i, c) ? json() : json(std::string(r.value(i, c)));
    };
    const auto number = [&](int c) {
        return r.is_null(i, c) ? json() : json(std::stoll(std::string(r.value(i, c))));
    };
    return json{{"id", fmt::format("{}:{}", side, r.value(i, 0))},
                {"side", side},
                {"recorded_at", text(1)},
                {"source_side", text(2)},
                {"table", text(3)},
                {"key", r.is_null(i, 4) ? json() : json::parse(r.value(i, 4), nullptr, false)},
                {"first_lsn", text(5)},
                {"last_lsn", text(6)},
                {"commit_time", text(7)},
                {"attempts", number(8)},
                {"error_kind", text(9)},
                {"sqlstate", text(10)},
                {"reason", text(11)},
                {"message_id", text(12)},
                {"payload_bytes", number(13)},
                {"status", text(14)},
                {"handled_at", text(15)}};
}

std::vector<const SideConfig*> sides_of(const Config& config, const std::string& side) {
    std::vector<const SideConfig*> out;
    for (const auto& s : config.sides) {
        if (side.empty() || s.name == side) {
            out.push_back(&s);
        }
    }
    if (out.empty()) {
        config.side(side);  // throws naming the unknown side
    }
    return out;
}

int list(const Config& config, const GlobalOptions& global,
         const DeadLettersCommandOptions& options) {
    json all = json::array();
    int unreachable = 0;
    for (const SideConfig* side : sides_of(config, options.side)) {
        try {
            auto conn = open_side(config, *side, kApplicationName);
            const pg::Result r = conn.exec(
                std::string("SELECT ") + kColumns +
                    " FROM pgbridge.dead_letters WHERE bridge = $1 AND ($2 OR status = 'new')"
                    " ORDER BY id DESC LIMIT $3::int",
                {config.bridge_name, options.all ? "true" : "false",
                 std::to_string(options.limit)});
            for (int i = 0; i < r.rows(); ++i) {
                all.push_back(record_json(side->name, r, i));
            }
        } catch (const Error& e) {
            ++unreachable;
            std::cerr << fmt::format("pgbridge: side {} cannot be read: {}\n", side->name,
                                     e.what());
        }
    }
    if (global.json) {
        std::cout << all.dump(2) << "\n";
    } else if (all.empty()) {
        std::cout << (options.all ? "no dead letters\n" : "no new dead letters\n");
    } else {
        TextTable table(
            {"ID", "RECORDED", "FROM", "TABLE", "KEY", "KIND", "ATTEMPTS", "STATUS", "REASON"});
        for (const auto& d : all) {
            table.add_row({d["id"], plain(d["recorded_at"]).substr(0, 19), plain(d["source_side"]),
                           plain(d["table"]), plain(d["key"]), plain(d["error_kind"]),
                           plain(d["attempts"]), plain(d["status"]),
                           plain(d["reason"]).substr(0, 80)});
        }
        table.print(std::cout);
    }
    return unreachable > 0 ? 1 : 0;
}

int show(const Config& config, const GlobalOptions& global,
         const DeadLettersCommandOptions& options) {
    const std::string select = std::string("SELECT ") + kColumns +
                               ", encode(payload, 'hex') FROM pgbridge.dead_letters WHERE id = $1";
    const json d =
        find_side_record(config, options.ids.front(), "dead letter", kApplicationName, select,
                         [&](const std::string& side, const pg::Result& r, int i) {
                             json record = record_json(side, r, i);
                             if (options.payload && !r.is_null(i, 16)) {
                                 const std::string bytes = from_hex(r.value(i, 16)).value_or("");
                                 if (is_valid_utf8(bytes)) {
                                     record["payload"] = bytes;
                                 } else {
                                     record["payload_hex"] = std::string(r.value(i, 16));
                                 }
                             }
                             return record;
                         });
    if (global.json) {
        std::cout << d.dump(2) << "\n";
        return 0;
    }
    for (const char* field :
         {"id", "status", "recorded_at", "source_side", "table", "key", "first_lsn", "last_lsn",
          "commit_time", "attempts", "error_kind", "sqlstate", "reason", "message_id",
          "payload_bytes", "handled_at", "payload", "payload_hex"}) {
        if (d.contains(field)) {
            std::cout << fmt::format("{:<15}{}\n", field, plain(d[field]));
        }
    }
    return 0;
}

// One record to handle: where it lives and what it is.
struct Letter {
    const SideConfig* side;
    std::string number;
    std::string error_kind;
    std::optional<std::string> message_id;
    std::optional<std::string> payload;  // decoded from bytea
    std::string id() const { return side->name + ":" + number; }
};

// The new records `--id`s or `--all` select, side by side.
std::vector<Letter> select_letters(const Config& config, pg::Connection& conn,
                                   const SideConfig& side,
                                   const DeadLettersCommandOptions& options) {
    std::vector<std::optional<std::string>> numbers;
    for (const auto& text : options.ids) {
        const SideRecordId id = parse_side_record_id(config, text, "dead letter");
        if (id.side.empty() || id.side == side.name) {
            numbers.emplace_back(id.number);
        }
    }
    if (!options.all && numbers.empty()) {
        return {};
    }
    const pg::Result r = conn.exec(
        "SELECT id, error_kind, message_id, encode(payload, 'hex') FROM pgbridge.dead_letters"
        " WHERE bridge = $1 AND status = 'new' AND ($2 OR id = ANY ($3::bigint[])) ORDER BY id",
        {config.bridge_name, options.all ? "true" : "false", pg::array_literal(numbers)});
    std::vector<Letter> out;
    for (int i = 0; i < r.rows(); ++i) {
        Letter l{&side, std::string(r.value(i, 0)), std::string(r.value(i, 1)),
                 r.optional_value(i, 2), std::nullopt};
        if (!r.is_null(i, 3)) {
            l.payload = from_hex(r.value(i, 3));
        }
        out.push_back(std::move(l));
    }
    return out;
}

// Takes the messages of `message_ids` out of the side's dead-letter queue, where the broker
// keeps its own copy of each: basic.get of every message there, acknowledging those and
// leaving the rest unacknowledged, so that they return to the queue, in order, when the
// connection closes.
std::size_t sweep_dead_queue(const Config& config, const std::string& side,
                             const std::set<std::string>& message_ids) {
    if (message_ids.empty()) {
        return 0;
    }
    transport::AmqpConnection broker(
        transport::AmqpConnectOptions::from(config.broker_of(side), config.engine.timeout_ms));
    const std::string queue = names::dead_letter_queue(config.bridge_name, side);
    const auto state = broker.inspect_queue(kChannel, queue);
    std::size_t removed = 0;
    for (std::uint32_t n = 0; state && n < state->messages; ++n) {
        auto delivery = broker.get(kChannel, queue, /*acknowledge=*/false);
        if (!delivery) {
            break;
        }
        if (delivery->properties.message_id &&
            message_ids.contains(*delivery->properties.message_id)) {
            broker.ack(kChannel, delivery->delivery_tag);
            ++removed;
        }
    }
    return removed;
}

void mark(pg::Connection& conn, const Letter& l, std::string_view status) {
    conn.exec(
        "UPDATE pgbridge.dead_letters SET status = $2, handled_at = now()"
        " WHERE id = $1 AND status = 'new'",
        {l.number, std::string(status)});
}

// Refused for what the message is, not for what the target held: sent again, it would be
// refused again.
bool refused_for_itself(const std::string& kind) {
    return kind == transport::dead_kind::kOversized || kind == transport::dead_kind::kUnparseable ||
           kind == transport::dead_kind::kUnsupported || kind == transport::dead_kind::kMisrouted ||
           // Never signed anew: whatever can publish to the exchange can leave unsigned messages
           // for a `replay --all` to vouch for.
           kind == transport::dead_kind::kUnsigned || kind == transport::dead_kind::kForged ||
           // Signed anew, a forged position would be vouched for too.
           kind == transport::dead_kind::kImpossible;
}

// A dead letter published again: where to, what it holds, and its body.
struct ReplayMessage {
    std::string routing_key;
    transport::ChangeBatch batch;
    std::string body;
};

// A dead letter as messages to publish again to `target`'s queues, routed as the file routes
// today: as it is, to its shard's queue, when it was routed for the same apply_workers (or
// when nothing is sharded); otherwise its changes split anew by key, one message per shard
// (a part of a large transaction cannot be split: it is refused).
std::vector<ReplayMessage> replay_messages(const Config& config, const std::string& target,
                                           const std::string& payload) {
    transport::ChangeBatch batch = transport::decode_body(payload);
    const transport::Topology topology = transport::Topology::of(config);
    std::vector<ReplayMessage> out;
    const std::uint32_t routed_for = batch.shard ? batch.shard->count : 1;
    if (routed_for == topology.shards) {
        const std::uint32_t shard = batch.shard ? batch.shard->index : 0;
        out.push_back(
            ReplayMessage{topology.routing_key(target, 0, shard), std::move(batch), payload});
        return out;
    }
    if (batch.chunk) {
        throw Error(ErrorKind::Usage,
                    fmt::format("it is a part of a large transaction routed for {} apply "
                                "shard(s), and [engine] apply_workers is {} now: a part cannot "
                                "be routed anew; set apply_workers back to replay it",
                                routed_for, topology.shards));
    }
    const transport::ShardRouting routing = transport::ShardRouting::of(config, batch.source_side);
    std::vector<transport::ChangeBatch> shares(topology.shards);
    for (auto& txn : batch.transactions) {
        auto split = transport::split_by_shard(std::move(txn), routing);
        for (std::uint32_t k = 0; k < topology.shards; ++k) {
            if (split[k]) {
                shares[k].transactions.push_back(std::move(*split[k]));
            }
        }
    }
    for (std::uint32_t k = 0; k < topology.shards; ++k) {
        if (shares[k].transactions.empty()) {
            continue;
        }
        shares[k].bridge = batch.bridge;
        shares[k].source_side = batch.source_side;
        shares[k].kind = batch.kind;
        if (topology.shards > 1) {
            shares[k].shard = transport::ShardInfo{k, topology.shards};
        }
        std::string body = transport::encode_body(shares[k]);
        out.push_back(ReplayMessage{topology.routing_key(target, 0, k), std::move(shares[k]),
                                    std::move(body)});
    }
    return out;
}

int handle(const Config& config, const GlobalOptions& global,
           const DeadLettersCommandOptions& options, bool replay) {
    if (options.ids.empty() && !options.all) {
        throw Error(ErrorKind::Usage, fmt::format("say which dead letters to {}: --id SIDE:NUMBER "
                                                  "(repeatable) or --all",
                                                  replay ? "replay" : "discard"));
    }
    json results = json::array();
    int failures = 0;
    std::size_t selected = 0;
    for (const SideConfig* side : sides_of(config, options.side)) {
        auto conn = open_side(config, *side, kApplicationName);
        const std::vector<Letter> letters = select_letters(config, conn, *side, options);
        selected += letters.size();
        std::optional<transport::AmqpConnection> broker;
        std::set<std::string> handled_ids;
        for (const Letter& l : letters) {
            json result{{"id", l.id()}, {"action", replay ? "replayed" : "discarded"}};
            try {
                if (replay) {
                    if (refused_for_itself(l.error_kind) || !l.payload) {
                        throw Error(ErrorKind::Usage,
                                    fmt::format("it was refused for what it is ({}), not for "
                                                "what the target held: sent again it would be "
                                                "refused again; discard it",
                                                l.error_kind));
                    }
                    const auto messages = replay_messages(config, side->name, *l.payload);
                    if (!broker) {
                        broker.emplace(transport::AmqpConnectOptions::from(
                            config.broker_of(side->name), config.engine.timeout_ms));
                        broker->confirm_select(kChannel);
                    }
                    for (const ReplayMessage& replayed : messages) {
                        transport::OutgoingMessage message;
                        message.exchange = names::exchange(config.bridge_name);
                        message.routing_key = replayed.routing_key;
                        message.body = replayed.body;
                        // At the backfill priority: behind live changes, which it cannot undo
                        // (columns applied later are not overwritten by an older change).
                        message.properties = transport::message_properties(replayed.batch, 0);
                        message.properties.headers.set("x-pgbridge-replayed-from", l.id());
                        // Signed anew: it was signed when it arrived, or no key was set.
                        transport::sign(message, config.rabbitmq.signing_keys);
                        broker->publish(kChannel, message);
                        if (!broker->next_confirm(
                                std::chrono::milliseconds(config.engine.timeout_ms))) {
                            throw Error(ErrorKind::Broker,
                                        "the broker did not confirm the message");
                        }
                    }
                }
                mark(conn, l, replay ? "replayed" : "discarded");
                if (l.message_id) {
                    handled_ids.insert(*l.message_id);
                }
            } catch (const Error& e) {
                ++failures;
                result["action"] = "failed";
                result["error"] = e.what();
            }
            results.push_back(std::move(result));
        }
        broker.reset();
        const std::size_t removed = sweep_dead_queue(config, side->name, handled_ids);
        if (removed > 0 && !global.json) {
            std::cout << fmt::format("{} message(s) taken out of {}\n", removed,
                                     names::dead_letter_queue(config.bridge_name, side->name));
        }
    }
    if (selected == 0) {
        throw Error(ErrorKind::Usage, "no new dead letter matches");
    }
    if (global.json) {
        std::cout << results.dump(2) << "\n";
    } else {
        for (const auto& r : results) {
            std::cout << fmt::format("{}: {}{}\n", r["id"].get<std::string>(),
                                     r["action"].get<std::string>(),
                                     r.contains("error") ? ": " + plain(r["error"]) : "");
        }
    }
    return failures > 0 ? 1 : 0;
}

}  // namespace

int dead_letters_command(const GlobalOptions& global, const DeadLettersCommandOptions& options) {
    const Config config = load_config(global.config_path);
    if (options.action == "list") {
        return list(config, global, options);
    }
    if (options.action == "show") {
        return show(config, global, options);
    }
    return handle(config, global, options, options.action == "replay");
}

}  // namespace pgbridge::cli
