#include <chrono>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <pgbridge/apply/conflict_log.hpp>
#include <pgbridge/config/side_connection.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/pg/estimated_rows.hpp>
#include <pgbridge/verify/both_sides.hpp>
#include <pgbridge/verify/fence.hpp>
#include <pgbridge/verify/postgres_row_source.hpp>
#include <pgbridge/verify/verifier.hpp>

namespace pgbridge::verify {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

bool VerifyReport::identical() const {
    for (const auto& t : tables) {
        if (!t.differences.empty() || t.truncated) {
            return false;
        }
    }
    return true;
}

Verifier::Verifier(const Config& config, VerifyOptions options)
    : config_(config), options_(std::move(options)) {}

VerifyReport Verifier::run() {
    const auto start = Clock::now();
    VerifyReport report;
    report.bridge = config_.bridge_name;
    connections_.clear();
    tables_.clear();
    for (std::size_t i = 0; i < 2; ++i) {
        report.sides[i] = config_.sides.at(i).name;
        auto options =
            side_connect_options(config_.sides[i], config_.engine.timeout_ms, "pgbridge verify");
        connections_.push_back(pg::Connection::open(options));
    }
    for (const auto& table : config_.tables) {
        if (options_.table && table.name != *options_.table) {
            continue;
        }
        tables_.push_back(describe_compared_table(table, connections_[0], report.sides[0],
                                                  connections_[1], report.sides[1]));
    }
    if (options_.table && tables_.empty()) {
        throw Error(ErrorKind::Usage, "no synced table has this name in the configuration")
            .with("table", options_.table->display());
    }
    row_hash_ = common_row_hash(connections_[0], connections_[1]);
    report.row_hash = std::string(to_string(row_hash_));
    report.consistent = options_.fence;
    if (options_.fence) {
        fence_or_throw(&report);
    }
    for (const auto& table : tables_) {
        throw_if_cancelled();
        report.tables.push_back(verify_table(table));
    }
    report.seconds = seconds_since(start);
    return report;
}

void Verifier::throw_if_cancelled() const {
    if (options_.cancelled && options_.cancelled()) {
        throw Error(ErrorKind::Internal, "verify cancelled").with("bridge", config_.bridge_name);
    }
}

void Verifier::fence_or_throw(VerifyReport* report) {
    const FenceResult fence = pass_fence(
        FenceBridge{config_.bridge_name, static_cast<std::uint32_t>(config_.engine.apply_workers)},
        {&connections_[0], config_.sides[0].name}, {&connections_[1], config_.sides[1].name},
        options_.fence_timeout, options_.cancelled);
    throw_if_cancelled();
    if (!fence.passed) {
        throw Error(ErrorKind::Setup,
                    fmt::format("verify's fence was not applied within {} ms ({}): is `pgbridge "
                                "run` running and keeping up? (--no-fence compares the sides "
                                "as they are, changes in flight included)",
                                options_.fence_timeout.count(), fmt::join(fence.waiting, ", ")))
            .with("bridge", config_.bridge_name);
    }
    if (report) {
        report->fence_wait = fence.took;
    }
}

std::array<std::vector<RowState>, 2> Verifier::read_both(const ComparedTable& table,
                                                         const std::vector<Key>& keys) {
    return on_both_sides(
        [&](std::size_t i) { return read_row_states(connections_.at(i), table, i, keys); });
}

TableReport Verifier::verify_table(const ComparedTable& table) {
    const auto start = Clock::now();
    TableReport report;
    report.table = table.name();
    for (const std::size_t k : table.key) {
        report.key_columns.push_back(table.columns[k]);
    }
    report.not_compared = table.one_sided;

    PostgresRowSource source_a(connections_[0], table, 0, row_hash_);
    PostgresRowSource source_b(connections_[1], table, 1, row_hash_);
    DifferOptions differ = options_.differ;
    if (options_.progress) {
        const std::uint64_t estimated =
            pg::estimated_rows(connections_[0], table.sides[0].name.quoted());
        options_.progress(table.name(), 0, estimated);
        differ.progress = [&](std::uint64_t rows) {
            options_.progress(table.name(), rows, estimated);
        };
    }
    DifferResult found = find_differing_keys(source_a, source_b, differ);
    report.rows = {found.rows_a, found.rows_b};
    report.ranges = found.ranges;
    report.mismatched_ranges = found.mismatched_ranges;
    report.candidates = found.keys.size();
    report.truncated = found.truncated;

    // Read the candidates on both sides, then again after each fence: a key whose sides
    // differ and whose state did not move while everything committed before the previous
    // read was applied is a real difference; one that moved is read again.
    std::vector<Key> keys(found.keys.begin(), found.keys.end());
    auto states = read_both(table, keys);
    std::vector<std::size_t> open;
    for (std::size_t i = 0; i < keys.size(); ++i) {
        if (states_differ(table, states[0][i], states[1][i])) {
            open.push_back(i);
        }
    }
    std::set<Key> pending;
    if (!open.empty()) {
        for (std::size_t s = 0; s < 2; ++s) {
            for (Key& key : apply::pending_conflict_keys(connections_[s], config_.bridge_name,
                                                         table.sides[s])) {
                pending.insert(std::move(key));
            }
        }
    }
    for (int round = 0; round < options_.rechecks && !open.empty(); ++round) {
        if (options_.fence) {
            fence_or_throw(nullptr);
        }
        std::vector<Key> again;
        for (const std::size_t i : open) {
            again.push_back(keys[i]);
        }
        auto now = read_both(table, again);
        std::vector<std::size_t> still_open;
        for (std::size_t j = 0; j < open.size(); ++j) {
            const std::size_t i = open[j];
            RowState& a = now[0][j];
            RowState& b = now[1][j];
            if (!states_differ(table, a, b)) {
                continue;  // it was in flight and has arrived
            }
            if (a.fingerprint != states[0][i].fingerprint ||
                b.fingerprint != states[1][i].fingerprint) {
                states[0][i] = std::move(a);
                states[1][i] = std::move(b);
                still_open.push_back(i);
                continue;
            }
            KeyDifference d;
            d.key = keys[i];
            d.kind = !b.exists   ? KeyDifference::Kind::OnlyOnA
                     : !a.exists ? KeyDifference::Kind::OnlyOnB
                                 : KeyDifference::Kind::Values;
            d.columns = differing_columns(table, a, b);
            d.states = {std::move(a), std::move(b)};
            (pending.count(d.key) ? report.pending_conflicts : report.differences)
                .push_back(std::move(d));
        }
        open = std::move(still_open);
    }
    report.in_flight = open.size();
    report.seconds = seconds_since(start);
    log::info("verify", "table compared",
              {{"table", table.name().display()},
               {"rows", std::to_string(report.rows[0])},
               {"differences", std::to_string(report.differences.size())},
               {"pending_conflicts", std::to_string(report.pending_conflicts.size())},
               {"in_flight", std::to_string(report.in_flight)},
               {"seconds", fmt::format("{:.2f}", report.seconds)}});
    return report;
}

}  // namespace pgbridge::verify
