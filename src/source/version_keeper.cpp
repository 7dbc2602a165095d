#include <algorithm>

#include <fmt/format.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/core/json_writer.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/pg/array_literal.hpp>
#include <pgbridge/pg/pipeline.hpp>
#include <pgbridge/source/version_keeper.hpp>

namespace pgbridge::source {
namespace {

// The position recorded never goes back: an announcement and a record may race.
constexpr const char* kWriteRecordedStatement =
    "INSERT INTO pgbridge.local_versions AS v (bridge, side, recorded_lsn) VALUES ($1, $2, "
    "$3::pg_lsn) ON CONFLICT (bridge, side) DO UPDATE SET recorded_lsn = "
    "greatest(v.recorded_lsn, EXCLUDED.recorded_lsn), recorded_at = now()";

std::string param(std::size_t n) {
    return "$" + std::to_string(n);
}

// unnest($first::int4[], ...) of the key columns, cast to their types, as jsonb_build_array:
// the same document the applier builds for the same key (apply_statements.cpp).
std::string typed_key(const std::vector<std::string>& types, const std::string& alias) {
    std::string out = "jsonb_build_array(";
    for (std::size_t k = 0; k < types.size(); ++k) {
        out += (k > 0 ? ", " : "") + fmt::format("CAST({}.k{} AS {})", alias, k, types[k]);
    }
    return out + ")";
}

// Compacts a key's entries after a write by the rule the applier uses too; a column the table
// no longer has keeps what it had.
void compact(ColumnVersions& columns, const std::vector<std::string>& names) {
    std::vector<StoredColumnVersion> entries;
    entries.reserve(names.size());
    for (const auto& name : names) {
        entries.push_back(column_entry(columns, name));
    }
    ColumnVersions out = compact_columns(names, std::move(entries));
    for (auto& [name, entry] : columns) {
        if (name != kDefaultColumnEntry &&
            std::find(names.begin(), names.end(), name) == names.end()) {
            out.emplace(name, std::move(entry));
        }
    }
    columns = std::move(out);
}

}  // namespace

StoredDocuments read_stored_documents(std::string_view columns,
                                      std::optional<std::string_view> deleted) {
    StoredDocuments out;
    try {
        out.columns = parse_column_versions(columns);
    } catch (const Error& e) {
        // Not a document pgbridge wrote: its columns count from zero again (the applier
        // dead-letters changes of the key until then).
        out.malformed.emplace_back(e.what());
    }
    if (deleted) {
        try {
            out.deleted = parse_stamp(*deleted);
        } catch (const Error& e) {
            // Still a tombstone, by whom and when unknown: read as none, the key's deleted row
            // would count as never deleted, and a late change of it could bring it back.
            out.deleted = StoredStamp{};
            out.malformed.emplace_back(e.what());
        }
    }
    return out;
}

VersionKeeper::VersionKeeper(VersionKeeperOptions options) : options_(std::move(options)) {}

VersionKeeper::~VersionKeeper() = default;

pg::Connection& VersionKeeper::connection() {
    if (!conn_) {
        conn_ = std::make_unique<pg::Connection>(pg::Connection::open(options_.connect));
        // The same few statements, once per transaction captured: planned once. A custom plan
        // per execution cost ten times the execution of these index lookups.
        conn_->exec("SET plan_cache_mode = force_generic_plan");
    }
    return *conn_;
}

Lsn VersionKeeper::start_session(
    std::unordered_map<std::uint32_t, std::vector<std::string>> primary_keys) {
    primary_keys_ = std::move(primary_keys);
    tables_.clear();
    piece_commit_lsn_ = Lsn();
    piece_places_added_ = 0;
    conn_.reset();  // a session starts over after any failure, this connection's too
    prepared_.clear();
    const pg::Result r = connection().exec(
        "SELECT recorded_lsn::text FROM pgbridge.local_versions WHERE bridge = $1 AND side = $2",
        {options_.bridge, options_.side});
    if (r.rows() > 0) {
        recorded_ = std::max(recorded_, Lsn::parse(r.value(0, 0)).value_or(Lsn()));
    }
    return recorded_;
}

void VersionKeeper::note_received(const SourceTransaction& txn) {
    if (!options_.watermark) {
        return;
    }
    std::vector<std::string> keys;
    for (const auto& change : txn.changes) {
        if (change.op == ChangeOp::Truncate || !change.table) {
            continue;
        }
        const Table& table = table_of(change.table);
        for (const Row* row : {change.old_row ? &*change.old_row : nullptr,
                               change.new_row ? &*change.new_row : nullptr}) {
            if (row == nullptr) {
                continue;
            }
            if (const auto key = key_of(table, *row)) {
                keys.push_back(VersionsWatermark::key(key->table, key->values));
            }
        }
    }
    options_.watermark->add_unrecorded(keys);
    unrecorded_keys_.emplace_back(txn.end_lsn, std::move(keys));
    options_.watermark->set_decoded(txn.end_lsn);
}

void VersionKeeper::decoded(Lsn lsn) {
    if (options_.watermark) {
        options_.watermark->set_decoded(lsn);
    }
}

Lsn VersionKeeper::rewind(Lsn durable) noexcept {
    try {
        record_durable(durable);
    } catch (const std::exception& e) {
        log::warning("capture", "could not record column versions; they are counted again",
                     {{"side", options_.side}, {"error", e.what()}});
        conn_.reset();
        prepared_.clear();
    }
    known_.clear();
    known_until_.clear();
    pending_.clear();
    passed_ = Lsn();
    piece_commit_lsn_ = Lsn();
    piece_places_added_ = 0;
    unrecorded_keys_.clear();
    large_end_ = Lsn();
    if (options_.watermark) {
        options_.watermark->rewind(recorded_);
    }
    return std::min(durable, recorded_);
}

Lsn VersionKeeper::reached() const {
    if (pending_.empty() || passed_ < pending_.front().end_lsn) {
        return std::max(recorded_, passed_);
    }
    return recorded_;
}

const VersionKeeper::Table& VersionKeeper::table_of(
    const std::shared_ptr<const TableInfo>& described) {
    const TableInfo& info = *described;
    Table& t = tables_[info.relation_oid];
    // The same description (a new one after ALTER TABLE may reuse a freed one's address: a
    // weak pointer to it tells them apart).
    if (t.described.lock() == described) {
        return t;
    }
    const pg::Result r = connection().exec(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), a.attname,"
        "       format_type(a.atttypid, a.atttypmod)"
        "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        "  JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary"
        " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)"
        "  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum"
        " WHERE c.oid = $1::oid ORDER BY k.ord",
        {std::to_string(info.relation_oid)});
    t = Table{};
    t.described = described;
    t.history = options_.history_tables.contains(QualifiedName{info.schema, info.name});
    for (const auto& c : info.columns) {
        t.columns.push_back(c.name);
    }
    ++descriptions_;
    t.read_name = fmt::format("pgbridge_versions_read_{}", descriptions_);
    for (int row = 0; row < r.rows(); ++row) {
        t.versions_name = std::string(r.value(row, 0));
        const std::string column(r.value(row, 1));
        const auto it = std::find_if(info.columns.begin(), info.columns.end(),
                                     [&](const ColumnInfo& c) { return c.name == column; });
        if (it == info.columns.end()) {
            t.key_columns.clear();  // a key column the change does not carry: no versions
            break;
        }
        t.key_columns.push_back(static_cast<std::size_t>(it - info.columns.begin()));
        t.key_types.emplace_back(r.value(row, 2));
    }
    if (t.key_columns.empty()) {
        log::warning("capture",
                     "no primary key found for a published table: its changes go "
                     "without column versions",
                     {{"side", options_.side}, {"table", info.schema + "." + info.name}});
        return t;
    }
    const std::size_t n = t.key_columns.size();
    std::string keys = param(2) + "::int4[]";
    std::string names = "ord";
    for (std::size_t k = 0; k < n; ++k) {
        keys += ", " + param(3 + k) + "::text[]";
        names += fmt::format(", k{}", k);
    }
    // LIMIT 1 (a primary key: at most one row anyway) keeps the lookup per key: a plan made
    // while row_versions was empty would otherwise hash-join the whole table, and a generic
    // plan stays until the table is analyzed (67 ms a read at 200,000 rows, measured).
    t.read_sql =
        "SELECT k.ord, v.columns::text, v.local_row_writes, v.seen_remote_row_writes,"
        " v.local_delete_writes, v.deleted::text, v.deleted_applied_remote::text,"
        " v.local_xid, v.local_lsn::text FROM unnest(" +
        keys + ") AS k(" + names +
        ") CROSS JOIN LATERAL (SELECT * FROM pgbridge.row_versions WHERE table_name = $1"
        " AND key = " +
        typed_key(t.key_types, "k") + " LIMIT 1) AS v";
    std::string args;
    std::string columns;
    for (std::size_t k = 0; k < n; ++k) {
        args += param(2 + k) + "::text[], ";
        columns += fmt::format("k{}, ", k);
    }
    const std::size_t p = 2 + n;
    args += fmt::format(
        "{}::text[], {}::int8[], {}::int8[], {}::int8[], {}::text[], {}::text[], "
        "{}::int8[], {}::text[]",
        param(p), param(p + 1), param(p + 2), param(p + 3), param(p + 4), param(p + 5),
        param(p + 6), param(p + 7));
    columns += "columns, lw, sw, dw, deleted, da, xid, lsn";
    // seen_remote_row_writes belongs to the applier: kept as the row has it.
    t.write_sql =
        "INSERT INTO pgbridge.row_versions AS r (table_name, key, columns, local_row_writes,"
        " seen_remote_row_writes, local_delete_writes, deleted, deleted_applied_remote, local_xid,"
        " local_lsn) SELECT $1, " +
        typed_key(t.key_types, "k") +
        ", k.columns::jsonb, k.lw, k.sw, k.dw, k.deleted::jsonb, k.da::pg_lsn, k.xid,"
        " k.lsn::pg_lsn FROM unnest(" +
        args + ") AS k(" + columns +
        ") ON CONFLICT (table_name, key) DO UPDATE SET columns = EXCLUDED.columns,"
        " local_row_writes = EXCLUDED.local_row_writes, local_delete_writes ="
        " EXCLUDED.local_delete_writes, deleted = EXCLUDED.deleted, deleted_applied_remote ="
        " EXCLUDED.deleted_applied_remote, local_xid = EXCLUDED.local_xid, local_lsn ="
        " EXCLUDED.local_lsn";
    return t;
}

std::optional<VersionKeeper::Key> VersionKeeper::key_of(const Table& table, const Row& row) const {
    if (table.key_columns.empty()) {
        return std::nullopt;
    }
    Key key{table.versions_name, {}};
    for (const std::size_t c : table.key_columns) {
        if (c >= row.size() || row[c].kind != Value::Kind::Text) {
            return std::nullopt;
        }
        key.values.push_back(row[c].data);
    }
    return key;
}

std::optional<std::pair<const VersionKeeper::Table*, VersionKeeper::Key>>
VersionKeeper::keyed_change(const ChangeEvent& change) {
    if (change.op == ChangeOp::Truncate || !change.table) {
        return std::nullopt;
    }
    const Table& table = table_of(change.table);
    const Row* row = change.new_row   ? &*change.new_row
                     : change.old_row ? &*change.old_row
                                      : nullptr;
    auto key = row ? key_of(table, *row) : std::nullopt;
    if (!key) {
        return std::nullopt;
    }
    return std::pair{&table, std::move(*key)};
}

std::uint32_t VersionKeeper::split_key_changes(SourceTransaction& txn) {
    std::uint32_t added = 0;
    for (std::size_t i = 0; i < txn.changes.size(); ++i) {
        ChangeEvent& change = txn.changes[i];
        if (change.op != ChangeOp::Update || !change.old_row || change.old_is_key_only ||
            !change.new_row || !change.table) {
            continue;
        }
        const Table& table = table_of(change.table);
        const auto old_key = key_of(table, *change.old_row);
        const auto new_key = key_of(table, *change.new_row);
        if (!old_key || !new_key || *old_key == *new_key) {
            continue;
        }
        // The row under its new key: whole (what the update left unchanged, TOAST included,
        // comes from the old row).
        ChangeEvent insert;
        insert.op = ChangeOp::Insert;
        insert.table = change.table;
        insert.new_row = std::move(*change.new_row);
        for (std::size_t c = 0; c < insert.new_row->size(); ++c) {
            if ((*insert.new_row)[c].kind == Value::Kind::UnchangedToast &&
                c < change.old_row->size()) {
                (*insert.new_row)[c] = (*change.old_row)[c];
            }
        }
        change.op = ChangeOp::Delete;
        change.new_row.reset();
        txn.changes.insert(txn.changes.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                           std::move(insert));
        ++added;
        ++i;
    }
    return added;
}

void VersionKeeper::load(const std::vector<std::pair<const Table*, Key>>& keys) {
    std::map<const Table*, std::vector<const Key*>> by_table;
    for (const auto& [table, key] : keys) {
        by_table[table].push_back(&key);
    }
    std::vector<std::pair<std::size_t, const std::vector<const Key*>*>> reads;
    std::vector<pg::Result> results;
    {
        pg::Pipeline pipeline(connection());
        for (const auto& [table, list] : by_table) {
            std::vector<std::optional<std::string>> ordinals;
            std::vector<std::vector<std::optional<std::string>>> columns(table->key_columns.size());
            for (std::size_t i = 0; i < list.size(); ++i) {
                ordinals.push_back(std::to_string(i));
                for (std::size_t c = 0; c < columns.size(); ++c) {
                    columns[c].push_back(list[i]->values[c]);
                }
            }
            pg::Params params{table->versions_name, pg::array_literal(ordinals)};
            for (const auto& c : columns) {
                params.push_back(pg::array_literal(c));
            }
            if (prepared_.insert(table->read_name).second) {
                pipeline.prepare(table->read_name, table->read_sql);
            }
            reads.emplace_back(pipeline.send_prepared(table->read_name, params), &list);
        }
        results = pipeline.sync();
    }
    for (const auto& [index, list] : reads) {
        const pg::Result& r = results.at(index);
        for (int row = 0; row < r.rows(); ++row) {
            const Key& key = *list->at(std::stoul(std::string(r.value(row, 0))));
            State s;
            s.found = true;
            StoredDocuments documents = read_stored_documents(
                r.value(row, 1), r.is_null(row, 5) ? std::nullopt : std::optional(r.value(row, 5)));
            for (const auto& problem : documents.malformed) {
                log::warning("capture",
                             "column versions of a key are malformed; what cannot be read counts "
                             "anew (a tombstone stays one)",
                             {{"side", options_.side}, {"table", key.table}, {"error", problem}});
            }
            s.columns = std::move(documents.columns);
            s.deleted = std::move(documents.deleted);
            s.local_row_writes = std::stoll(std::string(r.value(row, 2)));
            s.seen_remote_row_writes = std::stoll(std::string(r.value(row, 3)));
            s.local_delete_writes = std::stoll(std::string(r.value(row, 4)));
            if (!r.is_null(row, 6)) {
                s.deleted_applied_remote = Lsn::parse(r.value(row, 6)).value_or(Lsn());
            }
            if (!r.is_null(row, 7)) {
                s.local_xid = std::stoll(std::string(r.value(row, 7)));
            }
            if (!r.is_null(row, 8)) {
                s.local_lsn = Lsn::parse(r.value(row, 8)).value_or(Lsn());
            }
            known_.emplace(key, std::move(s));
        }
    }
}

void VersionKeeper::stamp_change(const SourceTransaction& txn, ChangeEvent& change,
                                 const Table& table, State& state) const {
    // Counted once per transaction: a second change of the key in the same transaction, or
    // the same transaction stamped again (a piece after a restart), adds nothing.
    if (state.local_lsn != txn.commit_lsn) {
        ++state.local_row_writes;
        state.local_lsn = txn.commit_lsn;
    }
    state.found = true;
    state.local_xid = static_cast<std::int64_t>(txn.xid);
    const StoredStamp stamp{VersionWriter::Local, {}, txn.commit_time, txn.commit_lsn};
    if (change.op == ChangeOp::Delete) {
        state.local_delete_writes = state.local_row_writes;
        state.deleted = stamp;
        // What the columns had applied from the other side stays known for the key, so that
        // a late copy of one of those changes is recognised as superseded. Their counters
        // stay, without a stamp: the key's next incarnation goes on from them
        // (apply::LocalRow::columns). So does the last local write's LSN: an insert of the key
        // in the same transaction (a delete and an insert, a key update) counts once, however
        // often the transaction is stamped.
        for (auto& [name, entry] : state.columns) {
            state.deleted_applied_remote =
                std::max(state.deleted_applied_remote, entry.applied_remote);
            entry.last_write =
                StoredStamp{VersionWriter::Unknown, {}, 0, entry.last_write.local_lsn};
            entry.applied_remote = Lsn();
        }
        compact(state.columns, table.columns);
    } else {
        const Row& next = *change.new_row;
        const bool whole_old =
            change.op == ChangeOp::Update && change.old_row && !change.old_is_key_only;
        if (change.op == ChangeOp::Insert) {
            state.deleted.reset();
        }
        bool written = false;
        for (std::size_t c = 0; c < next.size() && c < table.columns.size(); ++c) {
            if (next[c].kind == Value::Kind::UnchangedToast) {
                continue;
            }
            if (whole_old && c < change.old_row->size() && (*change.old_row)[c] == next[c]) {
                continue;
            }
            StoredColumnVersion entry = column_entry(state.columns, table.columns[c]);
            if (entry.last_write.local_lsn != txn.commit_lsn) {
                ++entry.local_writes;
            }
            // Stamped even when this transaction counted the column already (written, then
            // the row deleted and inserted again): the new row's column is this write's.
            entry.last_write = stamp;
            state.columns.insert_or_assign(table.columns[c], std::move(entry));
            written = true;
        }
        if (written) {
            compact(state.columns, table.columns);
        }
    }
    RowVersions v;
    v.row = {static_cast<std::uint64_t>(state.local_row_writes),
             static_cast<std::uint64_t>(state.seen_remote_row_writes)};
    for (const auto& [name, entry] : state.columns) {
        v.columns.emplace(name, VersionVector{entry.local_writes, entry.seen_remote_writes});
    }
    change.versions = std::move(v);
}

void VersionKeeper::note_history(const SourceTransaction& txn, const ChangeEvent& change,
                                 const Table& table, const Key& key, std::uint32_t place,
                                 std::vector<HistoryRecord>& out) const {
    if (!table.history || change.op == ChangeOp::Truncate) {
        return;
    }
    HistoryRecord h;
    h.origin = HistoryRecord::Origin::Local;
    h.from_side = options_.side;
    h.changed_at = txn.commit_time;
    h.lsn = txn.commit_lsn;
    h.seq = place;
    h.table = QualifiedName{change.table->schema, change.table->name}.display();
    h.operation = change.op == ChangeOp::Insert   ? "insert"
                  : change.op == ChangeOp::Update ? "update"
                                                  : "delete";
    {
        JsonWriter w;
        w.open('{');
        for (std::size_t k = 0; k < table.key_columns.size() && k < key.values.size(); ++k) {
            w.key(table.columns[table.key_columns[k]]);
            w.string(key.values[k]);
        }
        w.close('}');
        h.key = w.take();
    }
    const auto value = [](JsonWriter& w, const Value& v) {
        if (v.kind == Value::Kind::Null) {
            w.null();
        } else {
            w.string(v.data);
        }
    };
    JsonWriter before;
    JsonWriter after;
    bool any_before = false;
    bool any_after = false;
    before.open('{');
    after.open('{');
    if (change.op == ChangeOp::Delete) {
        if (change.old_row) {
            for (std::size_t c = 0; c < change.old_row->size() && c < table.columns.size(); ++c) {
                const Value& v = (*change.old_row)[c];
                // Without REPLICA IDENTITY FULL the server sent the key alone: the other
                // columns are unknown, not NULL.
                const bool known = !change.old_is_key_only ||
                                   std::find(table.key_columns.begin(), table.key_columns.end(),
                                             c) != table.key_columns.end();
                if (v.kind != Value::Kind::UnchangedToast && known) {
                    before.key(table.columns[c]);
                    value(before, v);
                    any_before = true;
                }
            }
        }
    } else if (change.new_row) {
        // The columns written: an insert's every column, an update's changed ones.
        const Row* old_row = change.old_row && !change.old_is_key_only ? &*change.old_row : nullptr;
        const Row& next = *change.new_row;
        for (std::size_t c = 0; c < next.size() && c < table.columns.size(); ++c) {
            if (next[c].kind == Value::Kind::UnchangedToast) {
                continue;
            }
            if (change.op == ChangeOp::Update && old_row != nullptr && c < old_row->size()) {
                if ((*old_row)[c] == next[c]) {
                    continue;
                }
                before.key(table.columns[c]);
                value(before, (*old_row)[c]);
                any_before = true;
            }
            after.key(table.columns[c]);
            value(after, next[c]);
            any_after = true;
        }
        if (change.op == ChangeOp::Update && !any_after) {
            return;  // an update that wrote nothing
        }
    }
    before.close('}');
    after.close('}');
    if (any_before) {
        h.old_values = before.take();
    }
    if (any_after) {
        h.new_values = after.take();
    }
    out.push_back(std::move(h));
}

void VersionKeeper::stamp(std::vector<SourceTransaction>& transactions) {
    std::vector<std::pair<const Table*, Key>> missing;
    std::set<Key> asked;
    for (auto& txn : transactions) {
        split_key_changes(txn);
        txn.late_versions.clear();
        for (auto& change : txn.changes) {
            change.versions.reset();  // stamped below, from what the keeper knows
            const auto keyed = keyed_change(change);
            if (keyed && !known_.contains(keyed->second) && asked.insert(keyed->second).second) {
                missing.push_back(*keyed);
            }
        }
    }
    if (!missing.empty()) {
        load(missing);
    }
    for (auto& txn : transactions) {
        PendingTransaction p{txn.end_lsn, std::chrono::steady_clock::now(), {}, {}};
        std::set<Key> touched;
        std::uint32_t place = 0;
        for (auto& change : txn.changes) {
            ++place;
            const auto keyed = keyed_change(change);
            if (!keyed) {
                continue;
            }
            stamp_change(txn, change, *keyed->first, known_[keyed->second]);
            note_history(txn, change, *keyed->first, keyed->second, place, p.history);
            touched.insert(keyed->second);
        }
        for (const Key& key : touched) {
            p.states.emplace_back(key, known_[key]);
            known_until_[key] = txn.end_lsn;
        }
        pending_.push_back(std::move(p));
    }
}

void VersionKeeper::stamp_piece(SourceTransaction& piece) {
    if (!known_.empty()) {
        // Capture makes every whole transaction before a piece durable and recorded first.
        throw Error(ErrorKind::Internal, "a piece to stamp while transactions wait to be recorded")
            .with("side", options_.side);
    }
    if (piece.commit_lsn != piece_commit_lsn_) {
        piece_commit_lsn_ = piece.commit_lsn;
        piece_places_added_ = 0;
        if (options_.watermark) {
            options_.watermark->set_large_unrecorded(true);
        }
    }
    piece.first_place += piece_places_added_;
    piece_places_added_ += split_key_changes(piece);
    piece.late_versions.clear();
    std::vector<std::pair<const Table*, Key>> missing;
    std::set<Key> asked;
    std::vector<std::optional<std::pair<const Table*, Key>>> keys;
    for (auto& change : piece.changes) {
        change.versions.reset();
        const auto keyed = keyed_change(change);
        if (keyed && !known_.contains(keyed->second) && asked.insert(keyed->second).second) {
            missing.push_back(*keyed);
        }
        keys.push_back(keyed);
    }
    if (!missing.empty()) {
        load(missing);
    }
    std::vector<HistoryRecord> history;
    for (std::size_t i = 0; i < piece.changes.size(); ++i) {
        if (keys[i]) {
            stamp_change(piece, piece.changes[i], *keys[i]->first, known_[keys[i]->second]);
            note_history(piece, piece.changes[i], *keys[i]->first, keys[i]->second,
                         piece.first_place + static_cast<std::uint32_t>(i) + 1, history);
        }
    }
    // Written now, with no transaction id: until the whole transaction is in the broker, the
    // applier treats its rows as not yet seen by capture (and waits for the watermark).
    std::map<Key, const State*> states;
    for (auto& [key, state] : known_) {
        state.local_xid = 0;
        states.emplace(key, &state);
    }
    // A piece stamped again after a restart writes its history again: `pgbridge history`
    // shows a change once (same LSN and place), whatever the table holds.
    write(states, std::nullopt, history);
    known_.clear();
    known_until_.clear();
}

void VersionKeeper::piece_committed(Lsn end_lsn) {
    pending_.push_back(PendingTransaction{end_lsn, std::chrono::steady_clock::now(), {}, {}});
    large_end_ = end_lsn;
    decoded(end_lsn);
    piece_commit_lsn_ = Lsn();
    piece_places_added_ = 0;
}

void VersionKeeper::write(const std::map<Key, const State*>& states,
                          const std::optional<Lsn>& recorded,
                          const std::vector<HistoryRecord>& history) {
    try {
        write_pipelined(states, recorded, history);
    } catch (...) {
        // Left in a failed transaction block (or broken): a new connection rolls it back.
        conn_.reset();
        prepared_.clear();
        throw;
    }
}

void VersionKeeper::write_pipelined(const std::map<Key, const State*>& states,
                                    const std::optional<Lsn>& recorded,
                                    const std::vector<HistoryRecord>& history) {
    pg::Pipeline pipeline(connection());
    pipeline.send("BEGIN");
    std::map<std::string, std::vector<std::pair<const Key*, const State*>>> by_table;
    for (const auto& [key, state] : states) {
        by_table[key.table].emplace_back(&key, state);
    }
    for (const auto& [name, list] : by_table) {
        const Table* table = nullptr;
        for (const auto& [oid, t] : tables_) {
            if (t.versions_name == name && !t.write_sql.empty()) {
                table = &t;
                break;
            }
        }
        if (table == nullptr) {
            continue;
        }
        const std::size_t n = table->key_columns.size();
        std::vector<std::vector<std::optional<std::string>>> arrays(n + 8);
        for (const auto& [key, s] : list) {
            for (std::size_t k = 0; k < n; ++k) {
                arrays[k].push_back(key->values[k]);
            }
            arrays[n].push_back(column_versions_document(s->columns));
            arrays[n + 1].push_back(std::to_string(s->local_row_writes));
            arrays[n + 2].push_back(std::to_string(s->seen_remote_row_writes));
            arrays[n + 3].push_back(std::to_string(s->local_delete_writes));
            arrays[n + 4].push_back(s->deleted ? std::optional(stamp_document(*s->deleted))
                                               : std::nullopt);
            arrays[n + 5].push_back(s->deleted_applied_remote.valid()
                                        ? std::optional(s->deleted_applied_remote.to_string())
                                        : std::nullopt);
            arrays[n + 6].push_back(s->local_xid != 0 ? std::optional(std::to_string(s->local_xid))
                                                      : std::nullopt);
            arrays[n + 7].push_back(s->local_lsn.valid() ? std::optional(s->local_lsn.to_string())
                                                         : std::nullopt);
        }
        pg::Params params{name};
        for (const auto& a : arrays) {
            params.push_back(pg::array_literal(a));
        }
        pipeline.send(table->write_sql, params);
    }
    if (!history.empty()) {
        const HistoryInsert insert = history_insert(options_.bridge, options_.side, history);
        pipeline.send(insert.sql, insert.params);
    }
    if (recorded) {
        pipeline.send(kWriteRecordedStatement,
                      {options_.bridge, options_.side, recorded->to_string()});
    }
    pipeline.send("COMMIT");
    pipeline.sync();  // one round trip
}

void VersionKeeper::record_durable(Lsn durable) {
    std::size_t count = 0;
    while (count < pending_.size() && pending_[count].end_lsn <= durable) {
        ++count;
    }
    if (count == 0) {
        return;
    }
    const Lsn last = pending_[count - 1].end_lsn;
    std::map<Key, const State*> states;
    std::vector<HistoryRecord> history;
    for (std::size_t i = 0; i < count; ++i) {
        for (const auto& [key, state] : pending_[i].states) {
            states[key] = &state;  // the later transaction's state of a key wins
        }
        history.insert(history.end(), pending_[i].history.begin(), pending_[i].history.end());
    }
    write(states, last, history);
    for (std::size_t i = 0; i < count; ++i) {
        for (const auto& [key, state] : pending_.front().states) {
            if (const auto it = known_until_.find(key);
                it != known_until_.end() && it->second <= last) {
                known_until_.erase(it);
                known_.erase(key);
            }
        }
        pending_.pop_front();
    }
    recorded_ = std::max(recorded_, last);
    while (!unrecorded_keys_.empty() && unrecorded_keys_.front().first <= last) {
        if (options_.watermark) {
            options_.watermark->remove_unrecorded(unrecorded_keys_.front().second);
        }
        unrecorded_keys_.pop_front();
    }
    if (large_end_.valid() && large_end_ <= last) {
        large_end_ = Lsn();
        if (options_.watermark) {
            options_.watermark->set_large_unrecorded(false);
        }
    }
    advance_watermark();
}

bool VersionKeeper::record_due(std::chrono::steady_clock::time_point now) const {
    if (pending_.empty()) {
        return false;
    }
    if (pending_.size() >= kRecordBatch || now >= record_deadline()) {
        return true;
    }
    if (announcement_wanted_.valid()) {
        return true;
    }
    return options_.watermark && options_.watermark->recording_wanted() > recorded_;
}

std::chrono::steady_clock::time_point VersionKeeper::record_deadline() const {
    return pending_.empty() ? std::chrono::steady_clock::time_point::max()
                            : pending_.front().stamped_at + kRecordDelay;
}

void VersionKeeper::passed(Lsn lsn) {
    passed_ = std::max(passed_, lsn);
    advance_watermark();
}

void VersionKeeper::advance_watermark() {
    if (options_.watermark) {
        options_.watermark->advance(reached());
    }
    announce_reached();
}

void VersionKeeper::request_announcement(Lsn lsn) {
    announcement_wanted_ = std::max(announcement_wanted_, lsn);
    announce_reached();
}

void VersionKeeper::announce_reached() {
    const Lsn now = reached();
    if (!announcement_wanted_.valid() || now <= announced_) {
        return;
    }
    try {
        connection().exec(kWriteRecordedStatement,
                          {options_.bridge, options_.side, now.to_string()});
    } catch (const Error& e) {
        // Asked again with the next move; the worker waits meanwhile.
        log::warning("capture", "could not write how far local writes are recorded",
                     {{"side", options_.side}, {"error", e.what()}});
        conn_.reset();
        prepared_.clear();
        return;
    }
    announced_ = now;
    if (now >= announcement_wanted_) {
        announcement_wanted_ = Lsn();
    }
}

bool VersionKeeper::wanted() const {
    if (!options_.watermark) {
        return false;
    }
    const Lsn want = options_.watermark->wanted();
    return want.valid() && want > options_.watermark->decoded();
}

}  // namespace pgbridge::source
