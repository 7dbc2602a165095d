#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <pgbridge/config/config.hpp>
#include <pgbridge/pg/connection.hpp>
#include <pgbridge/verify/compared_table.hpp>
#include <pgbridge/verify/postgres_row_source.hpp>
#include <pgbridge/verify/range_differ.hpp>
#include <pgbridge/verify/row_state.hpp>

namespace pgbridge::verify {

struct VerifyOptions {
    std::optional<QualifiedName> table;  // only this synced table (canonical name)
    DifferOptions differ;
    // Pass a fence before comparing and between re-reads (docs/verify.md). Without it the
    // comparison is of the two sides as they are, changes in flight included.
    bool fence = true;
    std::chrono::milliseconds fence_timeout{60000};
    // Re-reads of the differing keys, each after a fence, before a key that keeps changing
    // is given up as "in flight".
    int rechecks = 5;
    // Asked between steps; when it says so, run() stops with Error(Internal) "cancelled"
    // (`pgbridge run` stopping in the middle of a scheduled verify).
    std::function<bool()> cancelled;
    // Told, for each table, the rows of side A compared so far and the planner's estimate of
    // its rows (pg_class.reltuples): what a progress bar shows.
    std::function<void(const QualifiedName& table, std::uint64_t rows, std::uint64_t estimated)>
        progress;
};

// A key whose data differ and stayed the same across a fence: not in flight.
struct KeyDifference {
    enum class Kind { OnlyOnA, OnlyOnB, Values };
    Key key;  // in key column order
    Kind kind = Kind::Values;
    std::vector<std::string> columns;  // Values: the compared columns that differ
    std::array<RowState, 2> states;    // as each side had it (repair decides from these)
};

struct TableReport {
    QualifiedName table;
    std::vector<std::string> key_columns;  // canonical
    std::array<std::uint64_t, 2> rows{0, 0};
    std::uint64_t ranges = 0;
    std::uint64_t mismatched_ranges = 0;
    std::uint64_t candidates = 0;                  // keys the range comparison pointed at
    std::vector<KeyDifference> differences;        // drift
    std::vector<KeyDifference> pending_conflicts;  // differences a pending conflict explains
    std::uint64_t in_flight = 0;            // keys still changing at every re-read: not judged
    bool truncated = false;                 // more keys differ than max_keys
    std::vector<std::string> not_compared;  // columns only one side has
    double seconds = 0;
};

struct VerifyReport {
    std::string bridge;
    std::array<std::string, 2> sides;
    bool consistent = true;  // a fence passed before the comparison
    std::string row_hash;    // md5 or hashtextextended
    std::chrono::milliseconds fence_wait{0};
    std::vector<TableReport> tables;
    double seconds = 0;

    // No drift in any table (pending manual conflicts are known differences, not drift).
    bool identical() const;
};

// Compares every synced table (or one) of the two sides; docs/verify.md.
class Verifier {
  public:
    Verifier(const Config& config, VerifyOptions options);

    // Throws Error(Setup) when the fence does not pass in time, naming the directions.
    VerifyReport run();

    // The sides' connections, open after run() (repair writes through them).
    pg::Connection& connection(std::size_t side_index) { return connections_.at(side_index); }
    const ComparedTable& table(std::size_t index) const { return tables_.at(index); }

  private:
    TableReport verify_table(const ComparedTable& table);
    void fence_or_throw(VerifyReport* report);
    void throw_if_cancelled() const;
    std::array<std::vector<RowState>, 2> read_both(const ComparedTable& table,
                                                   const std::vector<Key>& keys);

    const Config& config_;
    VerifyOptions options_;
    std::vector<pg::Connection> connections_;
    std::vector<ComparedTable> tables_;
    RowHash row_hash_ = RowHash::Md5;
};

}  // namespace pgbridge::verify
