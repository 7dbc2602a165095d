#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include <pgbridge/config/config.hpp>
#include <pgbridge/config/conflict_rules.hpp>
#include <pgbridge/pg/connection.hpp>
#include <pgbridge/verify/verifier.hpp>

namespace pgbridge::verify {

// One write that brings the losing side of a difference to the winner's data.
struct RepairWrite {
    enum class Op { Insert, Update, Delete };
    std::size_t side = 0;  // the side written (index into the config's sides)
    Op op = Op::Update;
    std::vector<std::string> columns;  // canonical: the columns written (Update, Insert)
    std::string reason;                // how it was decided, in words
};

// What repair does for one differing key: decided by the same conflict rules as the live
// path (docs/verify.md), column by column.
struct RepairPlan {
    Key key;
    std::vector<RepairWrite> writes;  // at most one per side
    // Columns whose rule is `manual`: recorded as pending conflicts, not written.
    std::vector<std::string> undecided;
};

// A row on one side only is copied to the other, unless the other side's row_versions holds
// its deletion (a tombstone): then the delete wins, as it wins over a concurrent update.
// Differing columns: field_priority, else the default strategy (source_priority: the first
// side; last_write_wins: the later write to that column by the row_versions of each side,
// ties to source_priority; manual: left to a person).
RepairPlan plan_repair(const ComparedTable& table, const KeyDifference& difference,
                       const ConflictRules& rules, const std::array<std::string, 2>& sides);

struct RepairOutcome {
    RepairPlan plan;
    bool written = false;
    // Why nothing was written: the key changed since it was compared, or the server refused.
    std::optional<std::string> skipped;
};

// Carries out repair plans in a session bound to the repair origin on each side (capture drops
// what it writes, so nothing echoes, and records no new local version for it). The writes of each
// side go in transactions of up to 500 keys: the rows are locked and both sides read again first,
// and a key that changed on either side since verify compared it is skipped. A transaction the
// server refuses is done again key by key, so a bad key costs only itself. Every repair is a row of
// pgbridge.conflicts on the side written (kind and strategy `repair`), every undecided column a
// pending conflict on both sides.
class RepairWriter {
  public:
    RepairWriter(const Config& config, Verifier& verifier);

    // plans[i] is the plan of differences[i].
    std::vector<RepairOutcome> repair(const ComparedTable& table,
                                      const std::vector<KeyDifference>& differences,
                                      std::vector<RepairPlan> plans);

  private:
    struct Job {
        std::size_t key;  // index into differences
        const RepairWrite* write;
    };

    pg::Connection& writer(std::size_t side);
    // One transaction on `side` for the jobs; marks the outcomes once it has committed.
    // Throws when the server refuses any of it.
    void write_batch(const ComparedTable& table, std::size_t side,
                     const std::vector<KeyDifference>& differences, const std::vector<Job>& jobs,
                     std::vector<RepairOutcome>& outcomes);
    void write(pg::Connection& conn, const ComparedTable& table, const KeyDifference& difference,
               const RepairWrite& w);
    void record(pg::Connection& conn, const ComparedTable& table, const KeyDifference& difference,
                std::size_t side, const std::vector<std::string>& columns,
                const std::optional<std::string>& winner, const std::string& note);

    const Config& config_;
    Verifier& verifier_;
    std::array<std::optional<pg::Connection>, 2> writers_;
};

struct TableRepairs {
    QualifiedName table;
    std::vector<RepairOutcome> outcomes;
};

struct RepairReport {
    VerifyReport verify;
    std::vector<TableRepairs> tables;
    bool dry_run = false;
    std::size_t written = 0;    // keys written
    std::size_t skipped = 0;    // keys that changed or failed
    std::size_t undecided = 0;  // keys left to a person (manual)
};

// `pgbridge repair`: verify, then a plan per differing key and, unless dry_run, its writes.
// Differences that a pending conflict already explains are left to `conflicts resolve`.
RepairReport verify_and_repair(const Config& config, const VerifyOptions& options, bool dry_run);

// After a repair of every synced table: the copies on both sides count as made through their
// slots' current generation (source/slot_identity.hpp), which is what status waits for after
// a slot was created again.
void mark_copies_current(const Config& config);

}  // namespace pgbridge::verify
