#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/apply/apply_statements.hpp>
#include <pgbridge/apply/conflict_log.hpp>
#include <pgbridge/apply/remote_change.hpp>
#include <pgbridge/config/object_names.hpp>
#include <pgbridge/config/side_connection.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/error_policy.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/source/slot_identity.hpp>
#include <pgbridge/verify/repair.hpp>

namespace pgbridge::verify {
namespace {

using nlohmann::json;

std::size_t other(std::size_t side) {
    return 1 - side;
}

// The commit time of the last write to each compared column, on one side: what
// last_write_wins compares (0 when unknown: older than pgbridge, or copied at initial sync).
std::vector<UnixMicros> column_write_times(const ComparedTable& table, std::size_t side,
                                           const RowState& state) {
    const apply::LocalRow local =
        apply::to_local_row(state.stored, state.row, table.sides[side].names, state.commit_times);
    std::vector<UnixMicros> out;
    for (const std::size_t p : table.positions[side]) {
        out.push_back(p < local.columns.size() ? local.columns[p].last_write.time : 0);
    }
    return out;
}

std::size_t index_of(const std::array<std::string, 2>& sides, const std::string& name) {
    return sides[0] == name ? 0 : 1;
}

std::string column_of(const ComparedTable& table, std::size_t side, const std::string& canonical) {
    return table.sides[side].columns[table.positions[side][table.column_index(canonical)]].name;
}

std::optional<std::string> param_of(const Value& value) {
    return value.kind == Value::Kind::Null ? std::nullopt : std::optional(value.data);
}

const Value& value_of(const ComparedTable& table, std::size_t side, const RowState& state,
                      const std::string& canonical) {
    return state.row.at(table.positions[side][table.column_index(canonical)]);
}

// Whether a write may go ahead, from both sides' rows read again under the lock: the side
// written is exactly as verify saw it, and the winner still has what the write copies.
bool still_as_compared(const ComparedTable& table, const KeyDifference& d, const RepairWrite& w,
                       const RowState& written_now, const RowState& winner_now) {
    const std::size_t source = other(w.side);
    if (written_now.fingerprint != d.states[w.side].fingerprint ||
        winner_now.exists != d.states[source].exists) {
        return false;
    }
    if (!winner_now.exists) {
        return true;
    }
    for (const auto& c : w.columns) {
        if (value_of(table, source, d.states[source], c) !=
            value_of(table, source, winner_now, c)) {
            return false;
        }
    }
    return true;
}

// Keys written per transaction: one commit (one WAL flush) for many keys.
constexpr std::size_t kKeysPerTransaction = 500;

}  // namespace

RepairPlan plan_repair(const ComparedTable& table, const KeyDifference& d,
                       const ConflictRules& rules, const std::array<std::string, 2>& sides) {
    RepairPlan plan;
    plan.key = d.key;
    if (d.kind != KeyDifference::Kind::Values) {
        const std::size_t has = d.kind == KeyDifference::Kind::OnlyOnA ? 0 : 1;
        const std::size_t lacks = other(has);
        if (d.states[lacks].stored.deleted) {
            plan.writes.push_back({has,
                                   RepairWrite::Op::Delete,
                                   {},
                                   sides[lacks] + " deleted the row: the delete wins"});
        } else {
            plan.writes.push_back({lacks, RepairWrite::Op::Insert, table.columns,
                                   "missing on " + sides[lacks] + ": copied from " + sides[has]});
        }
        return plan;
    }
    const std::array<std::vector<UnixMicros>, 2> times = {
        column_write_times(table, 0, d.states[0]), column_write_times(table, 1, d.states[1])};
    std::array<RepairWrite, 2> updates;
    for (const std::string& column : d.columns) {
        const std::size_t i = table.column_index(column);
        const ColumnRule rule = rules.for_column(table.name(), column);
        std::size_t winner = 0;
        std::string why;
        if (rule.fixed_winner) {
            winner = index_of(sides, *rule.fixed_winner);
            why = rule.reason;
        } else if (rule.strategy == ConflictStrategy::LastWriteWins) {
            const UnixMicros ta = times[0][i];
            const UnixMicros tb = times[1][i];
            winner = ta > tb ? 0 : tb > ta ? 1 : index_of(sides, rule.tie_winner);
            why = ta == tb ? "last_write_wins, equal write times: source_priority"
                           : "last_write_wins: the later write";
        } else {
            plan.undecided.push_back(column);
            continue;
        }
        RepairWrite& w = updates[other(winner)];
        w.columns.push_back(column);
        w.reason +=
            fmt::format("{}{}: {} ({})", w.reason.empty() ? "" : "; ", column, sides[winner], why);
    }
    for (std::size_t side = 0; side < 2; ++side) {
        if (!updates[side].columns.empty()) {
            updates[side].side = side;
            updates[side].op = RepairWrite::Op::Update;
            plan.writes.push_back(std::move(updates[side]));
        }
    }
    return plan;
}

RepairWriter::RepairWriter(const Config& config, Verifier& verifier)
    : config_(config), verifier_(verifier) {}

pg::Connection& RepairWriter::writer(std::size_t side) {
    if (!writers_[side]) {
        auto options = side_connect_options(config_.sides.at(side), config_.engine.timeout_ms,
                                            "pgbridge repair");
        pg::Connection conn = pg::Connection::open(options);
        const std::string origin = names::repair_origin(config_.bridge_name);
        if (conn.exec("SELECT 1 FROM pg_replication_origin WHERE roname = $1", {origin}).rows() ==
            0) {
            throw Error(ErrorKind::Setup,
                        "the repair origin is missing: run `pgbridge setup` again (it adds it)")
                .with("side", config_.sides[side].name)
                .with("origin", origin);
        }
        try {
            conn.exec("SELECT pg_catalog.pg_replication_origin_session_setup($1)", {origin});
        } catch (const Error& e) {
            if (is_connection_failure(e)) {
                throw;
            }
            // PostgreSQL 15 lets one session at a time use an origin.
            throw Error(ErrorKind::Setup,
                        fmt::format("cannot bind a session to the repair origin ({}): is another "
                                    "pgbridge repair (or a scheduled auto_repair) running?",
                                    e.message()))
                .with("side", config_.sides[side].name)
                .with("origin", origin);
        }
        writers_[side] = std::move(conn);
    }
    return *writers_[side];
}

std::vector<RepairOutcome> RepairWriter::repair(const ComparedTable& table,
                                                const std::vector<KeyDifference>& differences,
                                                std::vector<RepairPlan> plans) {
    std::vector<RepairOutcome> outcomes(plans.size());
    for (std::size_t i = 0; i < plans.size(); ++i) {
        outcomes[i].plan = std::move(plans[i]);
    }
    // A server gone or a missing repair origin concerns every key: those errors propagate.
    const auto concerns_all = [](const Error& e) {
        return is_connection_failure(e) || e.kind() == ErrorKind::Setup;
    };
    for (std::size_t side = 0; side < 2; ++side) {
        std::vector<Job> jobs;
        for (std::size_t i = 0; i < outcomes.size(); ++i) {
            for (const RepairWrite& w : outcomes[i].plan.writes) {
                if (w.side == side) {
                    jobs.push_back({i, &w});
                }
            }
        }
        for (std::size_t first = 0; first < jobs.size(); first += kKeysPerTransaction) {
            const std::vector<Job> batch(
                jobs.begin() + static_cast<std::ptrdiff_t>(first),
                jobs.begin() + static_cast<std::ptrdiff_t>(
                                   std::min(jobs.size(), first + kKeysPerTransaction)));
            try {
                write_batch(table, side, differences, batch, outcomes);
                continue;
            } catch (const Error& e) {
                if (concerns_all(e)) {
                    throw;
                }
            }
            for (const Job& job : batch) {
                try {
                    write_batch(table, side, differences, {job}, outcomes);
                } catch (const Error& e) {
                    if (concerns_all(e)) {
                        throw;
                    }
                    outcomes[job.key].skipped = e.what();
                    log::warning("repair", "key not repaired",
                                 {{"table", table.name().display()}, {"error", e.what()}});
                }
            }
        }
    }
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
        const std::vector<std::string>& undecided = outcomes[i].plan.undecided;
        if (undecided.empty()) {
            continue;
        }
        for (std::size_t side = 0; side < 2; ++side) {
            record(writer(side), table, differences[i], side, undecided, std::nullopt,
                   "found by pgbridge repair; the manual strategy leaves it to a person");
        }
    }
    return outcomes;
}

void RepairWriter::write_batch(const ComparedTable& table, std::size_t side,
                               const std::vector<KeyDifference>& differences,
                               const std::vector<Job>& jobs, std::vector<RepairOutcome>& outcomes) {
    pg::Connection& conn = writer(side);
    const std::size_t source = other(side);
    std::vector<Key> keys;
    for (const Job& job : jobs) {
        keys.push_back(differences[job.key].key);
    }
    std::vector<bool> written(jobs.size(), false);
    conn.transaction([&] {
        conn.exec(apply::lock_rows_statement(table.sides[side]), key_array_params(keys));
        const std::vector<RowState> here = read_row_states(conn, table, side, keys);
        const std::vector<RowState> there =
            read_row_states(verifier_.connection(source), table, source, keys);
        for (std::size_t j = 0; j < jobs.size(); ++j) {
            const KeyDifference& d = differences[jobs[j].key];
            if (still_as_compared(table, d, *jobs[j].write, here.at(j), there.at(j))) {
                write(conn, table, d, *jobs[j].write);
                written[j] = true;
            }
        }
    });
    for (std::size_t j = 0; j < jobs.size(); ++j) {
        RepairOutcome& outcome = outcomes[jobs[j].key];
        if (written[j]) {
            outcome.written = true;
        } else {
            outcome.skipped = "changed since it was compared: verify again";
        }
    }
}

void RepairWriter::write(pg::Connection& conn, const ComparedTable& table, const KeyDifference& d,
                         const RepairWrite& w) {
    const apply::TargetTable& target = table.sides[w.side];
    const std::size_t source = other(w.side);
    pg::Params params;
    std::vector<std::size_t> positions;
    for (const auto& c : w.columns) {
        positions.push_back(target.find(column_of(table, w.side, c)));
        params.push_back(param_of(value_of(table, source, d.states[source], c)));
    }
    switch (w.op) {
        case RepairWrite::Op::Insert:
            conn.exec(apply::insert_statement(target, positions), params);
            break;
        case RepairWrite::Op::Update:
            params.insert(params.end(), d.key.begin(), d.key.end());
            conn.exec(apply::update_statement(target, positions), params);
            break;
        case RepairWrite::Op::Delete:
            conn.exec(apply::delete_statement(target), pg::Params(d.key.begin(), d.key.end()));
            break;
    }
    record(conn, table, d, w.side, w.columns, config_.sides[source].name, w.reason);
}

void RepairWriter::record(pg::Connection& conn, const ComparedTable& table, const KeyDifference& d,
                          std::size_t side, const std::vector<std::string>& columns,
                          const std::optional<std::string>& winner, const std::string& note) {
    const apply::TargetTable& target = table.sides[side];
    std::vector<std::string> names;
    json local = json::object();
    json remote = json::object();
    for (const auto& c : columns) {
        const std::string name = column_of(table, side, c);
        names.push_back(name);
        const auto as_json = [&](std::size_t s) -> json {
            if (!d.states[s].exists) {
                return nullptr;
            }
            const Value& v = value_of(table, s, d.states[s], c);
            return v.kind == Value::Kind::Null ? json() : json(v.data);
        };
        local[name] = as_json(side);
        remote[name] = as_json(other(side));
    }
    const auto dump = [](const json& j) {
        return j.dump(-1, ' ', false, json::error_handler_t::replace);
    };
    // Repair compares rows, not changes: no commit times or LSN of a change to record.
    apply::record_conflict(
        conn,
        {.bridge = config_.bridge_name,
         .table = target.name.display(),
         .key = apply::key_json(target, d.key),
         .kind = "repair",
         .columns = std::move(names),
         .local_side = config_.sides[side].name,
         .remote_side = config_.sides[other(side)].name,
         .local_values = d.states[side].exists ? std::optional(dump(local)) : std::nullopt,
         .remote_values = d.states[other(side)].exists ? std::optional(dump(remote)) : std::nullopt,
         .local_commit_time = std::nullopt,
         .remote_commit_time = std::nullopt,
         .remote_lsn = std::nullopt,
         .strategy = winner ? "repair" : "manual",
         .winner = winner,
         .settled_by = "pgbridge repair",
         .note = note});
}

void mark_copies_current(const Config& config) {
    for (const auto& side : config.sides) {
        auto conn = pg::Connection::open(
            side_connect_options(side, config.engine.timeout_ms, "pgbridge repair"));
        source::mark_copies_current(conn, config.bridge_name,
                                    names::slot(config.bridge_name, side.name));
    }
}

RepairReport verify_and_repair(const Config& config, const VerifyOptions& options, bool dry_run) {
    RepairReport report;
    report.dry_run = dry_run;
    Verifier verifier(config, options);
    report.verify = verifier.run();
    const ConflictRules rules(config);
    RepairWriter writer(config, verifier);
    for (std::size_t t = 0; t < report.verify.tables.size(); ++t) {
        const TableReport& found = report.verify.tables[t];
        const ComparedTable& table = verifier.table(t);
        TableRepairs repairs{found.table, {}};
        std::vector<RepairPlan> plans;
        for (const KeyDifference& d : found.differences) {
            plans.push_back(plan_repair(table, d, rules, report.verify.sides));
        }
        if (dry_run) {
            for (auto& plan : plans) {
                repairs.outcomes.push_back(RepairOutcome{std::move(plan), false, std::nullopt});
            }
        } else {
            repairs.outcomes = writer.repair(table, found.differences, std::move(plans));
        }
        std::size_t written = 0;
        for (const RepairOutcome& outcome : repairs.outcomes) {
            written += outcome.written ? 1 : 0;
            report.skipped += outcome.skipped ? 1 : 0;
            report.undecided += outcome.plan.undecided.empty() ? 0 : 1;
        }
        report.written += written;
        if (written > 0) {
            log::info("repair", "keys repaired",
                      {{"table", found.table.display()}, {"keys", std::to_string(written)}});
        }
        report.tables.push_back(std::move(repairs));
    }
    return report;
}

}  // namespace pgbridge::verify
