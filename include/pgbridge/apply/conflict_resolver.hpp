#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pgbridge/config/conflict_rules.hpp>
#include <pgbridge/core/change_event.hpp>
#include <pgbridge/core/lsn.hpp>
#include <pgbridge/core/stored_versions.hpp>

namespace pgbridge::apply {

// Who last wrote a column (or deleted a row) on this side, and when: the commit time of that
// write. Time 0 means unknown (a row older than pgbridge, or initial-sync data) and sorts
// before every known time, so both sides order the same pair of writes the same way.
struct WriteStamp {
    using Writer = VersionWriter;
    Writer writer = Writer::Unknown;
    UnixMicros time = 0;

    bool operator==(const WriteStamp&) const = default;
};

// Where a remote change stands in the other side's history: its transaction's commit LSN, and
// its place in that transaction (1, 2, ...). A source transaction is always applied whole, in
// one target transaction, so a position read back from pgbridge.row_versions covers its whole
// transaction (kWholeTransaction); only changes applied in the target transaction under way
// have a place: a later change of the same transaction to the same key is not a duplicate.
inline constexpr std::uint32_t kWholeTransaction = UINT32_MAX;

struct ChangePosition {
    Lsn commit_lsn;
    std::uint32_t sequence = kWholeTransaction;

    auto operator<=>(const ChangePosition&) const = default;
};

// One column of the local row, with its version (pgbridge.row_versions).
struct LocalColumn {
    Value value;
    WriteStamp last_write;
    // The highest commit LSN of the other side applied to (or seen for) this column: a remote
    // change at or below it is a duplicate or superseded.
    Lsn applied_remote;
    // A version vector for the column, one counter per side: how many times this side wrote
    // it, and how many of the other side's writes to it this side has processed (applied or
    // outvoted). Shipped with every change, it tells the receiver exactly which of its writes
    // the sender had seen: causality, not clocks (which skew and tie) or values (which can
    // return to an old value).
    std::uint64_t local_writes = 0;
    std::uint64_t seen_remote_writes = 0;
    // The place of the change that set applied_remote in its transaction (ChangePosition).
    std::uint32_t applied_remote_sequence = kWholeTransaction;

    ChangePosition applied_position() const { return {applied_remote, applied_remote_sequence}; }
};

// The local state of one key, in canonical column order.
struct LocalRow {
    bool exists = false;
    // When exists, the row. When absent, the counters its columns had reached (values null),
    // if the key ever had a row here: every incarnation of a key continues the same vectors,
    // so that a delete and a re-insert on one side against an update of the old row on the
    // other is decided the same way on both sides.
    std::vector<LocalColumn> columns;
    // When absent: the deletion pgbridge saw, if any (a tombstone).
    std::optional<WriteStamp> deleted;
    Lsn deleted_applied_remote;  // highest remote LSN applied to the key while absent
    // The same version vector for the key as a whole (every write to the row counts), and
    // the local count at this side's last delete of the key: a remote change that had not
    // seen that delete was concurrent with it, and the delete wins.
    std::uint64_t local_row_writes = 0;
    std::uint64_t seen_remote_row_writes = 0;
    std::uint64_t local_delete_writes = 0;
    std::uint32_t deleted_applied_remote_sequence = kWholeTransaction;

    Lsn row_applied_remote() const { return row_applied_position().commit_lsn; }
    ChangePosition row_applied_position() const;
    ChangePosition deleted_applied_position() const {
        return {deleted_applied_remote, deleted_applied_remote_sequence};
    }
};

// A row change from the other side, in canonical column order.
struct RemoteChange {
    std::string side;
    Lsn commit_lsn;
    std::uint32_t sequence = 1;  // place in its transaction, from 1
    UnixMicros commit_time = 0;  // 0: unknown (initial sync)
    ChangeOp op = ChangeOp::Insert;
    std::optional<Row> old_row;  // update, delete: the whole old row (REPLICA IDENTITY FULL)
    bool old_is_key_only = false;
    std::optional<Row> new_row;  // insert, update
    // The sender's version vectors after its write, per column (canonical order; empty means
    // none) and for the key: how many of the receiver's writes it had seen, and its own count.
    std::vector<std::uint64_t> seen_columns;
    std::vector<std::uint64_t> sender_columns;
    std::uint64_t seen_row = 0;
    std::uint64_t sender_row = 0;
    // Initial-copy data (docs/initial-sync.md): the row's state at the copy's snapshot. It
    // marks nothing as applied, so the live changes of the same rows still apply whatever
    // order they arrive in, and the last of them leaves the row as the source has it.
    bool backfill = false;

    std::uint64_t seen_column(std::size_t i) const {
        return i < seen_columns.size() ? seen_columns[i] : 0;
    }
    std::uint64_t sender_column(std::size_t i) const {
        return i < sender_columns.size() ? sender_columns[i] : 0;
    }
    ChangePosition position() const { return {commit_lsn, sequence}; }
};

enum class ConflictKind {
    InsertInsert,   // insert of a key the target already has
    UpdateUpdate,   // both sides changed the same column since the common value
    UpdateMissing,  // update of a row the target has deleted: the delete wins
    InsertDeleted,  // insert of a key the target has deleted: the delete wins
    DeleteChanged,  // delete of a row the target has changed: the delete wins
};
std::string_view to_string(ConflictKind kind) noexcept;

// How one conflicting column was decided.
struct ColumnConflict {
    std::size_t column = 0;
    Value local_value;
    Value remote_value;
    UnixMicros local_time = 0;
    UnixMicros remote_time = 0;
    std::string strategy;               // field_priority, source_priority, last_write_wins, manual
    std::optional<std::string> winner;  // the side whose value stays; none while pending
};

// What the applier does with one remote row change.
struct Resolution {
    enum class Action {
        Skip,    // a duplicate, or superseded by what the target already has: change nothing
        Insert,  // insert `row` (all columns)
        Update,  // write the remote value of `write_columns`
        Delete,  // delete the row
        None,    // write no row, but record the versions (and any conflict)
    };
    Action action = Action::Skip;
    std::string reason;  // for logs: "duplicate", "superseded", "delete wins", ...
    Row row;             // Insert: every column
    std::vector<std::size_t> write_columns;  // Update: columns that take the remote value
    // Columns the source changed: their applied_remote moves to the change's LSN, whether
    // they were written or the local value was kept.
    std::vector<std::size_t> changed_columns;
    std::optional<ConflictKind> conflict;
    std::vector<ColumnConflict> column_conflicts;  // UpdateUpdate, InsertInsert
    std::optional<std::string> row_winner;         // UpdateMissing, InsertDeleted, DeleteChanged
};

// The row gone (deleted or truncated): its columns keep their counters, values and stamps
// gone, so that the key's next incarnation counts on from them.
void retire_columns(LocalRow& row);

// The local row (values and versions) after the applier has carried out `resolution`: what
// the applier writes to the table and to pgbridge.row_versions.
LocalRow apply_resolution(const LocalRow& local, const RemoteChange& change,
                          const Resolution& resolution);

// The column-level conflict rules as a pure function of (rules, the local row with its
// versions, the remote change). Deterministic and symmetric: given the same two concurrent
// writes, the side that receives A's change and the side that receives B's change pick the
// same winner for every column, so both converge. docs/apply-design.md explains each rule.
class ConflictResolver {
  public:
    ConflictResolver(ConflictRules rules, std::string local_side);

    Resolution resolve(const QualifiedName& table, const std::vector<std::string>& columns,
                       const RemoteChange& change, const LocalRow& local) const;

  private:
    Resolution resolve_update(const QualifiedName& table, const std::vector<std::string>& columns,
                              const RemoteChange& change, const LocalRow& local) const;
    Resolution resolve_insert(const QualifiedName& table, const std::vector<std::string>& columns,
                              const RemoteChange& change, const LocalRow& local) const;
    Resolution resolve_delete(const RemoteChange& change, const LocalRow& local) const;
    Resolution concurrent_with_local_delete(ConflictKind kind) const;
    // One column the source wrote: take it, keep ours, or decide a conflict by its rule.
    void settle_column(Resolution& r, const QualifiedName& table, const std::string& column,
                       std::size_t index, const LocalColumn& mine, const RemoteChange& change,
                       const Value& theirs) const;
    // Decides one column changed on both sides; nullopt winner = pending (manual).
    ColumnConflict decide(const QualifiedName& table, const std::string& column, std::size_t index,
                          const LocalColumn& local, const RemoteChange& change,
                          const Value& remote_value) const;

    ConflictRules rules_;
    std::string local_side_;
};

}  // namespace pgbridge::apply
