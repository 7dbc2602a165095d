#include <algorithm>

#include <pgbridge/apply/conflict_resolver.hpp>
#include <pgbridge/core/error.hpp>

namespace pgbridge::apply {

namespace {

void set_deleted_applied(LocalRow& row, ChangePosition p) {
    row.deleted_applied_remote = p.commit_lsn;
    row.deleted_applied_remote_sequence = p.sequence;
}

}  // namespace

void retire_columns(LocalRow& row) {
    row.exists = false;
    for (auto& c : row.columns) {
        c.value = Value{};
        c.last_write = WriteStamp{};
    }
}

ChangePosition LocalRow::row_applied_position() const {
    ChangePosition max = deleted_applied_position();
    for (const auto& c : columns) {
        max = std::max(max, c.applied_position());
    }
    return max;
}

std::string_view to_string(ConflictKind kind) noexcept {
    switch (kind) {
        case ConflictKind::InsertInsert:
            return "insert_insert";
        case ConflictKind::UpdateUpdate:
            return "update_update";
        case ConflictKind::UpdateMissing:
            return "update_missing";
        case ConflictKind::InsertDeleted:
            return "insert_deleted";
        case ConflictKind::DeleteChanged:
            return "delete_changed";
    }
    return "unknown";
}

namespace {

Resolution skip(std::string reason) {
    Resolution r;
    r.action = Resolution::Action::Skip;
    r.reason = std::move(reason);
    return r;
}

// The new row with the values the update left untouched (unchanged TOAST) taken from the old
// row, so that it can be inserted whole.
Row complete_row(const RemoteChange& change) {
    Row row = *change.new_row;
    for (std::size_t i = 0; i < row.size(); ++i) {
        if (row[i].kind == Value::Kind::UnchangedToast && change.old_row &&
            !change.old_is_key_only) {
            row[i] = (*change.old_row)[i];
        }
    }
    return row;
}

std::vector<std::size_t> all_columns(std::size_t n) {
    std::vector<std::size_t> out(n);
    for (std::size_t i = 0; i < n; ++i) {
        out[i] = i;
    }
    return out;
}

// Was the last write to this column here one the sender had not seen when it wrote? Only
// then is it a conflict. A value that came from the sender itself, or that the sender had
// already processed (whatever the clocks say) is not. A value older than pgbridge (unknown
// writer) gives way to a live change, but meets initial-sync data (time unknown too) as an
// equal, so that both sides settle it by the same rule.
bool concurrent_with_local_write(const LocalColumn& mine, const RemoteChange& change,
                                 std::size_t column) {
    switch (mine.last_write.writer) {
        case WriteStamp::Writer::Local:
            return mine.local_writes > change.seen_column(column);
        case WriteStamp::Writer::Unknown:
            return change.commit_time == 0;
        case WriteStamp::Writer::Remote:
            return false;
    }
    return false;
}

}  // namespace

Resolution ConflictResolver::concurrent_with_local_delete(ConflictKind kind) const {
    Resolution r;
    r.action = Resolution::Action::None;
    r.reason = "the local delete wins over a concurrent change";
    r.conflict = kind;
    r.row_winner = local_side_;
    return r;
}

ConflictResolver::ConflictResolver(ConflictRules rules, std::string local_side)
    : rules_(std::move(rules)), local_side_(std::move(local_side)) {}

ColumnConflict ConflictResolver::decide(const QualifiedName& table, const std::string& column,
                                        std::size_t index, const LocalColumn& local,
                                        const RemoteChange& change,
                                        const Value& remote_value) const {
    const ColumnRule rule = rules_.for_column(table, column);
    ColumnConflict c;
    c.column = index;
    c.local_value = local.value;
    c.remote_value = remote_value;
    c.local_time = local.last_write.time;
    c.remote_time = change.commit_time;
    if (rule.source != ColumnRule::Source::DefaultStrategy) {
        c.strategy = "field_priority";
        c.winner = rule.fixed_winner;
        return c;
    }
    c.strategy = std::string(to_string(rule.strategy));
    switch (rule.strategy) {
        case ConflictStrategy::SourcePriority:
            c.winner = rule.fixed_winner;
            break;
        case ConflictStrategy::Manual:
            break;  // pending: the local value stays
        case ConflictStrategy::LastWriteWins:
            // The later write to this column wins; unknown times (0) are the oldest; equal
            // times go to the first side of source_priority. Both sides compare the same two
            // commit times, so they agree.
            if (change.commit_time > local.last_write.time) {
                c.winner = change.side;
            } else if (change.commit_time < local.last_write.time) {
                c.winner = local_side_;
            } else {
                c.winner = rule.tie_winner;
            }
            break;
    }
    return c;
}

void ConflictResolver::settle_column(Resolution& r, const QualifiedName& table,
                                     const std::string& column, std::size_t index,
                                     const LocalColumn& mine, const RemoteChange& change,
                                     const Value& theirs) const {
    if (mine.value == theirs) {
        return;  // both sides arrived at the same value
    }
    if (!concurrent_with_local_write(mine, change, index)) {
        r.write_columns.push_back(index);
        return;
    }
    ColumnConflict c = decide(table, column, index, mine, change, theirs);
    if (c.winner == change.side) {
        r.write_columns.push_back(index);
    }
    r.column_conflicts.push_back(std::move(c));
}

Resolution ConflictResolver::resolve(const QualifiedName& table,
                                     const std::vector<std::string>& columns,
                                     const RemoteChange& change, const LocalRow& local) const {
    if (local.exists && local.columns.size() != columns.size()) {
        throw Error(ErrorKind::Internal, "local row and column list differ in size")
            .with("table", table.display());
    }
    switch (change.op) {
        case ChangeOp::Insert:
            return resolve_insert(table, columns, change, local);
        case ChangeOp::Update:
            return resolve_update(table, columns, change, local);
        case ChangeOp::Delete:
            return resolve_delete(change, local);
        case ChangeOp::Truncate:
            break;
    }
    throw Error(ErrorKind::Internal, "the resolver does not decide truncates")
        .with("table", table.display());
}

Resolution ConflictResolver::resolve_insert(const QualifiedName& table,
                                            const std::vector<std::string>& columns,
                                            const RemoteChange& change,
                                            const LocalRow& local) const {
    const Row& incoming = *change.new_row;
    if (!local.exists) {
        if (local.deleted_applied_position() >= change.position()) {
            return skip("superseded by a later delete from the same side");
        }
        const bool deleted_here =
            local.deleted && local.deleted->writer == WriteStamp::Writer::Local;
        if ((deleted_here || !change.backfill) && local.local_delete_writes > change.seen_row) {
            // This side deleted the key without the other side knowing: concurrent, and the
            // delete wins (the other side meets this delete and removes its row too). So even
            // when the tombstone here is now the other side's: both sides deleted and
            // inserted the key again concurrently, and each delete removes the other's new row.
            // (A copied row carries no vectors: only this side's own tombstone stops it.)
            return concurrent_with_local_delete(ConflictKind::InsertDeleted);
        }
        Resolution r;
        r.action = Resolution::Action::Insert;
        r.reason = "insert";
        r.row = complete_row(change);
        r.changed_columns = all_columns(columns.size());
        return r;
    }
    if (local.row_applied_position() >= change.position()) {
        return skip("duplicate");
    }
    if (local.local_delete_writes > change.seen_row) {
        return concurrent_with_local_delete(ConflictKind::InsertDeleted);
    }
    // Insert of an existing key: column by column, like concurrent updates.
    Resolution r;
    r.action = Resolution::Action::Update;
    r.reason = "insert of an existing key";
    r.changed_columns = all_columns(columns.size());
    for (std::size_t i = 0; i < columns.size(); ++i) {
        if (incoming[i].kind == Value::Kind::UnchangedToast) {
            continue;
        }
        // A copied row only settles what neither side wrote since setup: a column with a
        // known write here is the live stream's to settle (the copy may even hold an old
        // value that came from this very side).
        if (change.backfill && local.columns[i].last_write.writer != WriteStamp::Writer::Unknown) {
            continue;
        }
        settle_column(r, table, columns[i], i, local.columns[i], change, incoming[i]);
    }
    if (!r.column_conflicts.empty()) {
        r.conflict = ConflictKind::InsertInsert;
    }
    return r;
}

Resolution ConflictResolver::resolve_update(const QualifiedName& table,
                                            const std::vector<std::string>& columns,
                                            const RemoteChange& change,
                                            const LocalRow& local) const {
    const Row& incoming = *change.new_row;
    const bool full_old = change.old_row.has_value() && !change.old_is_key_only;
    if (!local.exists) {
        if (local.deleted_applied_position() >= change.position()) {
            return skip("superseded by a later delete from the same side");
        }
        if (local.deleted && local.deleted->writer == WriteStamp::Writer::Local) {
            return concurrent_with_local_delete(ConflictKind::UpdateMissing);
        }
        if (local.deleted || std::any_of(incoming.begin(), incoming.end(), [&](const Value& v) {
                return v.kind == Value::Kind::UnchangedToast && !full_old;
            })) {
            // Deleted by the other side itself (its delete got here first), or a value we
            // cannot reconstruct: nothing to write.
            return skip("row absent");
        }
        // The insert has not arrived yet (messages reordered): the update carries the whole
        // row, so insert it; the late insert will be recognised as superseded.
        Resolution r;
        r.action = Resolution::Action::Insert;
        r.reason = "update of a row not yet inserted here";
        r.row = complete_row(change);
        r.changed_columns = all_columns(columns.size());
        return r;
    }
    if (local.local_delete_writes > change.seen_row) {
        // The key was deleted here (and inserted again since) after what the sender knew:
        // its change belongs to the row that this side deleted, and the delete wins.
        return concurrent_with_local_delete(ConflictKind::UpdateMissing);
    }
    Resolution r;
    r.action = Resolution::Action::Update;
    r.reason = "update";
    for (std::size_t i = 0; i < columns.size(); ++i) {
        const Value& theirs = incoming[i];
        if (theirs.kind == Value::Kind::UnchangedToast) {
            continue;  // the source did not touch it: never overwrite
        }
        if (full_old && (*change.old_row)[i] == theirs) {
            continue;  // the source did not change this column
        }
        const LocalColumn& mine = local.columns[i];
        if (mine.applied_position() >= change.position()) {
            continue;  // this column already has this change or a later one from that side
        }
        r.changed_columns.push_back(i);
        settle_column(r, table, columns[i], i, mine, change, theirs);
    }
    if (r.changed_columns.empty()) {
        return skip("duplicate");
    }
    if (!r.column_conflicts.empty()) {
        r.conflict = ConflictKind::UpdateUpdate;
    }
    return r;
}

Resolution ConflictResolver::resolve_delete(const RemoteChange& change,
                                            const LocalRow& local) const {
    if (!local.exists) {
        if (local.deleted_applied_position() >= change.position()) {
            return skip("duplicate");
        }
        // Deleted here too, or not here yet (the insert may still come; the tombstone makes
        // it recognisable as superseded).
        Resolution r;
        r.action = Resolution::Action::None;
        r.reason = "row already absent";
        return r;
    }
    if (local.row_applied_position() >= change.position()) {
        return skip("superseded by a later change from the same side");
    }
    Resolution r;
    r.action = Resolution::Action::Delete;
    r.reason = "delete";
    // Delete wins over concurrent changes; say so when this side had changed the row.
    if (change.old_row && !change.old_is_key_only) {
        for (std::size_t i = 0; i < local.columns.size(); ++i) {
            const LocalColumn& mine = local.columns[i];
            if (mine.last_write.writer != WriteStamp::Writer::Remote &&
                mine.value != (*change.old_row)[i]) {
                r.conflict = ConflictKind::DeleteChanged;
                r.row_winner = change.side;
                r.reason = "delete wins over a concurrent update";
                break;
            }
        }
    }
    return r;
}

LocalRow apply_resolution(const LocalRow& local, const RemoteChange& change,
                          const Resolution& resolution) {
    // Copied values are "older than pgbridge" as far as the rules go: a live write of either
    // side later meets them as such.
    const WriteStamp remote =
        change.backfill ? WriteStamp{} : WriteStamp{WriteStamp::Writer::Remote, change.commit_time};
    LocalRow next = local;
    if (resolution.action != Resolution::Action::Skip) {
        next.seen_remote_row_writes = std::max(next.seen_remote_row_writes, change.sender_row);
    }
    switch (resolution.action) {
        case Resolution::Action::Skip:
            break;
        case Resolution::Action::Insert: {
            const ChangePosition floor =
                change.backfill ? local.row_applied_position()
                                : std::max(local.row_applied_position(), change.position());
            next.exists = true;
            next.columns.clear();
            for (std::size_t i = 0; i < resolution.row.size(); ++i) {
                const bool counted = i < local.columns.size();
                const std::uint64_t own = counted ? local.columns[i].local_writes : 0;
                const std::uint64_t seen = std::max(
                    counted ? local.columns[i].seen_remote_writes : 0, change.sender_column(i));
                next.columns.push_back(LocalColumn{resolution.row[i], remote, floor.commit_lsn, own,
                                                   seen, floor.sequence});
            }
            next.deleted.reset();
            next.deleted_applied_remote = Lsn();
            break;
        }
        case Resolution::Action::Update:
            for (std::size_t i : resolution.changed_columns) {
                if (!change.backfill) {
                    const ChangePosition p =
                        std::max(next.columns[i].applied_position(), change.position());
                    next.columns[i].applied_remote = p.commit_lsn;
                    next.columns[i].applied_remote_sequence = p.sequence;
                }
            }
            for (std::size_t i = 0; i < next.columns.size(); ++i) {
                next.columns[i].seen_remote_writes =
                    std::max(next.columns[i].seen_remote_writes, change.sender_column(i));
            }
            for (std::size_t i : resolution.write_columns) {
                next.columns[i].value = (*change.new_row)[i];
                next.columns[i].last_write = remote;
            }
            break;
        case Resolution::Action::Delete:
            retire_columns(next);
            next.deleted = remote;
            set_deleted_applied(next, std::max(local.row_applied_position(), change.position()));
            break;
        case Resolution::Action::None:
            if (!next.deleted) {
                next.deleted = remote;
            }
            set_deleted_applied(next, std::max(next.deleted_applied_position(), change.position()));
            break;
    }
    return next;
}

}  // namespace pgbridge::apply
