#include <algorithm>
#include <numeric>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/apply/apply_statements.hpp>
#include <pgbridge/apply/conflict_log.hpp>
#include <pgbridge/apply/local_state.hpp>
#include <pgbridge/apply/postgres_applier.hpp>
#include <pgbridge/apply/remote_change.hpp>
#include <pgbridge/apply/row_versions.hpp>
#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/error_policy.hpp>
#include <pgbridge/core/hex.hpp>
#include <pgbridge/core/history_record.hpp>
#include <pgbridge/core/json_writer.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/core/sqlstate.hpp>
#include <pgbridge/pg/array_literal.hpp>
#include <pgbridge/pg/pipeline.hpp>
#include <pgbridge/transport/message_codec.hpp>

namespace pgbridge::apply {
namespace {

using nlohmann::json;

std::optional<std::string> param_of(const Value& value) {
    if (value.kind == Value::Kind::Null) {
        return std::nullopt;
    }
    return value.data;
}

std::optional<std::string> time_param(UnixMicros time) {
    if (time == 0) {
        return std::nullopt;
    }
    return format_timestamp(time);
}

json value_json(const Value& value) {
    switch (value.kind) {
        case Value::Kind::Null:
            return nullptr;
        case Value::Kind::UnchangedToast:
            return json{{"unchanged_toast", true}};
        case Value::Kind::Text:
        case Value::Kind::Binary:
            break;
    }
    return value.data;
}

std::string dump(const json& doc) {
    return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

// One key of one table touched by the batch, with its local state as the batch goes.
struct KeyState {
    const TargetTable* table = nullptr;
    std::vector<std::string> key;
    int ordinal = 0;
    StoredRowVersions stored;
    std::optional<Row> values;
    CommitTimes commit_times;
    LocalRow local;
    bool versions_changed = false;
    // The row's xmin, when a local session wrote it (origin 0).
    std::optional<std::int64_t> local_xmin;
};

// What the applier saw of a key whose last local write capture had not recorded (by row and
// record): unchanged after the watermark passed, it is a write capture will never record (older
// than the slot, outside the publication's row filter, in a subtransaction), not one on its way.
struct UnsettledKey {
    bool exists = false;
    std::optional<std::int64_t> xmin;
    bool recorded = false;
    std::optional<std::int64_t> local_xid;
    bool operator==(const UnsettledKey&) const = default;
};

// One change of the batch in source order: a row change of one key, or a truncate.
struct Item {
    const SourceTransaction* transaction = nullptr;
    const ChangeEvent* event = nullptr;
    std::size_t key_state = 0;  // row changes
    MappedChange mapped;        // row changes
    std::vector<const TargetTable*> truncated;
};

}  // namespace

// One try at applying one batch, in one target transaction.
class PostgresApplier::Attempt {
  public:
    Attempt(PostgresApplier& applier, const transport::ChangeBatch& batch,
            const ConflictResolver& resolver)
        : a_(applier), batch_(batch), resolver_(resolver) {}

    // One part of a large transaction, inside the target transaction the caller holds open
    // (BEGIN, origin, progress and COMMIT are the caller's). Rows the earlier parts wrote
    // read back with that transaction's commit LSN: they are its own changes, not duplicates.
    void run_part(const transport::ChunkInfo& part) {
        sequence_base_ = part.first_change;
        in_progress_ = batch_.transactions.front().commit_lsn;
        own_transaction_ = false;
        collect();
        pg::Connection& conn = a_.connection();
        read_local_state(conn);
        write(conn);
    }

    void run() {
        collect();
        // A live transaction without row changes (verify's fence: docs/verify.md) still
        // moves apply_progress and the origin, so that its arrival can be seen.
        if (items_.empty() && batch_.kind != transport::BatchKind::Live) {
            return;
        }
        pg::Connection& conn = a_.connection();
        try {
            for (int waits = 0;; ++waits) {
                read_local_state(conn);
                const CaptureCheck check = check_capture();
                if (check == CaptureCheck::Go) {
                    break;
                }
                // Decide nothing against a local write this side's capture has not counted:
                // let go of the locks, wait for it, and read again.
                conn.exec("ROLLBACK");
                wait_for_capture(conn, check, waits);
                reset_local_state();
            }
            write(conn);
        } catch (...) {
            rollback(conn);
            throw;
        }
    }

  private:
    void collect() {
        a_.note_source_shapes(batch_);
        std::map<std::pair<const TargetTable*, std::vector<std::string>>, std::size_t> known;
        for (const auto& txn : batch_.transactions) {
            std::uint32_t sequence = sequence_base_;
            for (const auto& event : txn.changes) {
                ++sequence;
                Item item;
                item.transaction = &txn;
                item.event = &event;
                if (event.op == ChangeOp::Truncate) {
                    for (const auto& t : event.truncated) {
                        item.truncated.push_back(&a_.target_for(a_.table_config_for(*t)));
                    }
                    items_.push_back(std::move(item));
                    continue;
                }
                const TableConfig& config = a_.table_config_for(*event.table);
                const TargetTable& target = a_.target_for(config);
                item.mapped = map_change(event, txn, config, target, a_.gone_columns(config));
                item.mapped.change.backfill = batch_.kind == transport::BatchKind::Backfill;
                item.mapped.change.sequence = sequence;
                const auto [it, added] =
                    known.try_emplace({&target, item.mapped.key}, keys_.size());
                if (added) {
                    if (std::find(tables_.begin(), tables_.end(), &target) == tables_.end()) {
                        tables_.push_back(&target);
                    }
                    KeyState state;
                    state.table = &target;
                    state.key = item.mapped.key;
                    state.ordinal = static_cast<int>(keys_.size());
                    keys_.push_back(std::move(state));
                }
                item.key_state = it->second;
                items_.push_back(std::move(item));
            }
        }
    }

    // Keys of each table, as (ordinals, one array per key column) parameters.
    pg::Params key_arrays(const TargetTable& table) const {
        std::vector<std::optional<std::string>> ordinals;
        std::vector<std::vector<std::optional<std::string>>> columns(table.key.size());
        for (const auto& k : keys_) {
            if (k.table != &table) {
                continue;
            }
            ordinals.push_back(std::to_string(k.ordinal));
            for (std::size_t c = 0; c < table.key.size(); ++c) {
                columns[c].push_back(k.key[c]);
            }
        }
        pg::Params params{pg::array_literal(ordinals)};
        for (const auto& c : columns) {
            params.push_back(pg::array_literal(c));
        }
        return params;
    }

    // The keys whose last local write capture has not recorded, as this read saw them.
    std::map<std::size_t, UnsettledKey> unsettled() const {
        std::map<std::size_t, UnsettledKey> out;
        for (std::size_t i = 0; i < keys_.size(); ++i) {
            const KeyState& k = keys_[i];
            UnsettledKey u{k.values.has_value(), k.local_xmin, k.stored.found, k.stored.local_xid};
            const bool settled = k.values
                                     ? !k.local_xmin || k.local_xmin == k.stored.local_xid
                                     // Absent: a recorded delete, or a key this side never had.
                                     : (k.stored.found ? k.stored.deleted.has_value() : false);
            if (!settled) {
                out.emplace(i, u);
            }
        }
        return out;
    }

    enum class CaptureCheck { Go, WaitDecoded, WaitRecorded };

    // May the batch decide against the local state it read? Yes when every key's last local
    // write is recorded, or is one capture will never record (older than its slot, outside the
    // row filter, in a subtransaction): capture has received everything before the position
    // of this read, and none of these keys waits in it to be recorded.
    CaptureCheck check_capture() {
        const auto& watermark = a_.options_.local_versions;
        if (!watermark || !own_transaction_) {
            return CaptureCheck::Go;
        }
        // A truncate deletes every row this side did not write after it: each local write
        // before this read must be recorded first, or it would go too.
        const bool truncates = std::any_of(items_.begin(), items_.end(),
                                           [](const Item& i) { return !i.truncated.empty(); });
        if (truncates) {
            const Lsn position = waited_for_.valid() ? waited_for_ : insert_lsn_;
            if (watermark->recorded() >= position) {
                return CaptureCheck::Go;
            }
            waited_for_ = position;
            return CaptureCheck::WaitRecorded;
        }
        auto now = unsettled();
        if (now.empty()) {
            return CaptureCheck::Go;
        }
        // Seen the same before: the position of that read is the one to pass.
        const Lsn position =
            waited_for_.valid() && now == seen_unsettled_ ? waited_for_ : insert_lsn_;
        const auto verdict = [&] {
            if (watermark->recorded() >= position) {
                return CaptureCheck::Go;
            }
            if (watermark->decoded() < position) {
                return CaptureCheck::WaitDecoded;
            }
            for (const auto& [index, key] : now) {
                const KeyState& k = keys_[index];
                if (watermark->unrecorded(VersionsWatermark::key(k.table->versions_name, k.key))) {
                    return CaptureCheck::WaitRecorded;
                }
            }
            return CaptureCheck::Go;
        };
        CaptureCheck check = verdict();
        const bool locked_rows =
            std::any_of(keys_.begin(), keys_.end(), [](const KeyState& k) { return k.values; });
        // Not in an apply-only worker: what it knows of the target's capture moves only when
        // asked (wait_for_capture), so waiting in place would only time out.
        if (check == CaptureCheck::WaitDecoded && !locked_rows && flush_lsn_ >= position &&
            !a_.options_.request_announcement) {
            // This transaction has logged nothing yet (no row locked), and the server has
            // flushed its WAL up to the position: capture can reach it while the transaction
            // stays open. Usually a matter of a millisecond. WAL not flushed yet (written by a
            // transaction that commits without waiting for the flush, or not committed yet)
            // would keep it waiting for the WAL writer: the flush of wait_for_capture is
            // quicker.
            a_.stats_.local_version_waits++;
            watermark->wait_decoded(position, kWaitInPlace);
            check = verdict();
        }
        if (check != CaptureCheck::Go) {
            seen_unsettled_ = std::move(now);
            waited_for_ = position;
        }
        return check;
    }

    void wait_for_capture(pg::Connection& conn, CaptureCheck check, int waits) {
        a_.stats_.local_version_waits++;
        // The position read came after this session's row locks, which the server logs and
        // flushes only with a later commit; capture reads only what is flushed. A commit of
        // our own (marked with the origin: capture drops it) flushes everything, if it wrote
        // WAL and waits for the flush: the server commits a transaction that wrote nothing but
        // its commit record, or under synchronous_commit = off, without waiting (then the WAL
        // writer flushes it up to 200 ms later).
        if (a_.options_.request_announcement) {
            // Outside any transaction: capture sees it at once, and the commit below flushes it.
            conn.exec("SELECT pg_catalog.pg_logical_emit_message(false, $1, $2)",
                      {std::string(names::kVersionsWantedPrefix), a_.options_.bridge});
        }
        conn.exec(
            "BEGIN; SET LOCAL synchronous_commit = on;"
            " SELECT pg_catalog.pg_logical_emit_message(true, 'pgbridge.flush', ''); COMMIT");
        const auto& watermark = a_.options_.local_versions;
        const bool reached =
            check == CaptureCheck::WaitRecorded
                ? watermark->wait_recorded(waited_for_, a_.options_.local_versions_wait)
                : watermark->wait_decoded(waited_for_, a_.options_.local_versions_wait);
        if (waits >= kMaxCaptureWaits || !reached) {
            throw Error(ErrorKind::Setup,
                        "waiting for this side's capture to record its local writes")
                .with("side", a_.options_.target_side)
                .with("lsn", waited_for_.to_string())
                .with("waiting_for", "local_versions");
        }
    }

    void reset_local_state() {
        for (auto& k : keys_) {
            k.stored = StoredRowVersions{};
            k.values.reset();
            k.commit_times.clear();
            k.local_xmin.reset();
        }
        truncated_at_.clear();
    }

    // BEGIN, bind the commit to the source, and lock and read every key the batch touches.
    void read_local_state(pg::Connection& conn) {
        const SourceTransaction& last = batch_.transactions.back();
        std::vector<pg::Result> results;
        std::vector<std::pair<std::size_t, std::size_t>> reads;  // (rows, versions) per table
        std::vector<std::size_t> truncation_reads;               // per table
        {
            pg::Pipeline pipeline(conn);
            if (own_transaction_) {
                pipeline.send("BEGIN");
            }
            if (own_transaction_ && last.commit_time != 0) {
                send_prepared(pipeline,
                              "SELECT pg_catalog.pg_replication_origin_xact_setup($1, $2)",
                              {last.end_lsn.to_string(), format_timestamp(last.commit_time)});
            }
            for (const TargetTable* table : tables_) {
                const pg::Params keys = key_arrays(*table);
                const std::size_t rows = send_prepared(pipeline, lock_rows_statement(*table), keys);
                pg::Params versions{table->versions_name};
                versions.insert(versions.end(), keys.begin(), keys.end());
                reads.emplace_back(
                    rows, send_prepared(pipeline, lock_versions_statement(*table), versions));
            }
            // After the row locks: a local TRUNCATE of these tables has committed by now.
            for (const TargetTable* table : tables_) {
                truncation_reads.push_back(
                    send_prepared(pipeline, kReadTruncationStatement, {table->versions_name}));
            }
            // A truncate must not reach a table it does not include (docs/apply-design.md,
            // "Truncate").
            std::vector<std::pair<const Item*, std::size_t>> cascade_reads;
            for (const Item& item : items_) {
                if (item.truncated.empty()) {
                    continue;
                }
                std::vector<std::optional<std::string>> names;
                for (const TargetTable* t : item.truncated) {
                    names.emplace_back(t->name.quoted());
                }
                cascade_reads.emplace_back(&item, send_prepared(pipeline, kReadReachingReferences,
                                                                {pg::array_literal(names)}));
            }
            // Every local write this read saw committed before this position.
            const std::size_t position =
                a_.options_.local_versions
                    ? send_prepared(pipeline,
                                    "SELECT pg_catalog.pg_current_wal_insert_lsn()::text,"
                                    " pg_catalog.pg_current_wal_flush_lsn()::text",
                                    {})
                    : SIZE_MAX;
            results = pipeline.sync();
            for (const auto& [item, index] : cascade_reads) {
                refuse_reaching_truncate(*item, results.at(index));
            }
            if (position != SIZE_MAX) {
                insert_lsn_ = Lsn::parse(results.at(position).value(0, 0)).value_or(Lsn());
                flush_lsn_ = Lsn::parse(results.at(position).value(0, 1)).value_or(Lsn());
            }
        }
        std::size_t t = 0;
        for (const TargetTable* table : tables_) {
            read_rows(*table, results.at(reads[t].first));
            read_versions(results.at(reads[t].second));
            const pg::Result& truncated = results.at(truncation_reads[t]);
            if (truncated.rows() == 1 && !truncated.is_null(0, 0)) {
                truncated_at_[table] = std::stoll(std::string(truncated.value(0, 0)));
            }
            ++t;
        }
        for (auto& k : keys_) {
            k.local = to_local_row(k.stored, k.values, k.table->names, k.commit_times);
            if (in_progress_) {
                for (auto& c : k.local.columns) {
                    if (c.applied_remote == *in_progress_) {
                        c.applied_remote_sequence = 0;
                    }
                }
                if (k.local.deleted_applied_remote == *in_progress_) {
                    k.local.deleted_applied_remote_sequence = 0;
                }
            }
        }
    }

    void read_rows(const TargetTable& table, const pg::Result& rows) {
        const int n = static_cast<int>(table.columns.size());
        for (int i = 0; i < rows.rows(); ++i) {
            KeyState& k = keys_.at(std::stoul(std::string(rows.value(i, 0))));
            k.values = row_from_result(rows, i, 1, table.columns.size());
            // After the columns: xmin, xmin as a number, the origin of its commit.
            if (!rows.is_null(i, n + 3) && rows.value(i, n + 3) == "0") {
                k.local_xmin = std::stoll(std::string(rows.value(i, n + 2)));
            }
        }
    }

    void read_versions(const pg::Result& rows) {
        for (int i = 0; i < rows.rows(); ++i) {
            KeyState& k = keys_.at(std::stoul(std::string(rows.value(i, 0))));
            versions_from_result(rows, i, 1, k.stored, k.commit_times);
        }
    }

    // Sends a statement prepared once per connection (prepared on first use, in the same
    // pipeline), so that the server parses and plans it once.
    std::size_t send_prepared(pg::Pipeline& pipeline, const std::string& sql,
                              const pg::Params& params) {
        auto it = a_.prepared_.find(sql);
        if (it == a_.prepared_.end()) {
            const std::string name = "pgbridge_apply_" + std::to_string(a_.prepared_.size() + 1);
            pipeline.prepare(name, sql);
            it = a_.prepared_.emplace(sql, name).first;
        }
        return pipeline.send_prepared(it->second, params);
    }

    // A statement of the write phase, remembering which change it belongs to (for errors).
    void send_write(pg::Pipeline& pipeline, const std::string& sql, const pg::Params& params,
                    std::size_t item) {
        const std::size_t before = pipeline.queued();
        send_prepared(pipeline, sql, params);
        statement_items_.resize(statement_items_.size() + (pipeline.queued() - before), item);
    }

    void write(pg::Connection& conn) {
        try {
            write_all(conn);
        } catch (Error& e) {
            name_failed_change(e);
            throw;
        }
        ApplierStats& stats = a_.stats_;
        stats.batches++;
        for (const auto& t : observed_.tables) {
            stats.inserted += t.inserted;
            stats.updated += t.updated;
            stats.deleted += t.deleted;
            stats.skipped += t.skipped;
        }
        stats.conflicts += observed_.conflicts.size();
        stats.pending_conflicts += pending_conflicts_;
        if (a_.options_.observer != nullptr) {
            const UnixMicros committed = now_unix_micros();
            observed_.source = batch_.source_side;
            observed_.target = a_.options_.target_side;
            observed_.last_commit_time = batch_.last_commit_time();
            for (const auto& txn : batch_.transactions) {
                if (own_transaction_ && txn.commit_time != 0) {
                    observed_.latencies.push_back(static_cast<double>(committed - txn.commit_time) /
                                                  1e6);
                }
            }
            a_.options_.observer->batch_applied(observed_);
        }
    }

    AppliedBatch::TableCounts& table_counts(const TargetTable& table) {
        const std::string name = table.name.display();
        for (auto& t : observed_.tables) {
            if (t.table == name) {
                return t;
            }
        }
        observed_.tables.push_back({name});
        return observed_.tables.back();
    }

    void write_all(pg::Connection& conn) {
        pg::Pipeline pipeline(conn);
        for (std::size_t i = 0; i < items_.size(); ++i) {
            Item& item = items_[i];
            if (!item.truncated.empty()) {
                truncate(pipeline, item, i);
                continue;
            }
            write_change(pipeline, item, i);
            // Keep what the server holds for us small: read results every so often.
            if (pipeline.queued() >= kSyncEvery) {
                pipeline.sync();
            }
        }
        store_versions(pipeline);
        if (!history_.empty()) {
            const HistoryInsert insert =
                history_insert(a_.options_.bridge, a_.options_.target_side, history_);
            send_write(pipeline, insert.sql, insert.params, kNoItem);
        }
        if (!own_transaction_) {
            pipeline.sync();
            return;
        }
        // The initial copy's positions are not the stream's: it moves no progress.
        if (batch_.kind == transport::BatchKind::Live) {
            const SourceTransaction& last = batch_.transactions.back();
            send_write(pipeline, kRecordProgressStatement,
                       {a_.options_.bridge, batch_.source_side, last.end_lsn.to_string(),
                        time_param(batch_.last_commit_time()), a_.shard_number()},
                       kNoItem);
        }
        statement_items_.push_back(kNoItem);
        pipeline.send("COMMIT");
        pipeline.sync();
    }

    // A foreign key of a table the truncate does not include whose ON DELETE action would
    // change that table (CASCADE, SET NULL, SET DEFAULT): the deletes would reach beyond
    // what the source truncated. Held (retried, then dead-lettered) with the reason, until
    // the DBA decides. A key with NO ACTION or RESTRICT refuses by itself when a row refers.
    void refuse_reaching_truncate(const Item& item, const pg::Result& references) {
        if (references.rows() == 0) {
            return;
        }
        throw Error(ErrorKind::Setup,
                    "a TRUNCATE from the source would change a table it does not include: a "
                    "foreign key with ON DELETE CASCADE, SET NULL or SET DEFAULT refers to a "
                    "truncated table; not applied")
            .with("table", std::string(references.value(0, 1)))
            .with("referenced_by", std::string(references.value(0, 0)))
            .with("source_lsn", item.transaction->commit_lsn.to_string());
    }

    // The source's TRUNCATE, resolved like deletes (docs/apply-design.md, "Truncate"): every
    // row goes but those this side wrote after the truncate committed on the source (their
    // changes reach the source after its truncate, and are applied there). Deletes, never
    // TRUNCATE ... CASCADE: the synced tables the source's cascade reached are listed in the
    // message already, and a cascade here would empty tables this side does not sync. A row
    // another table references refuses its delete (and the change goes the way of any
    // failed apply).
    void truncate(pg::Pipeline& pipeline, const Item& item, std::size_t index) {
        const UnixMicros at = item.transaction->commit_time;
        for (const TargetTable* t : item.truncated) {
            for (auto& k : keys_) {
                if (k.table != t) {
                    continue;
                }
                const bool written_after = std::any_of(
                    k.local.columns.begin(), k.local.columns.end(), [&](const LocalColumn& c) {
                        return at != 0 && c.last_write.writer == WriteStamp::Writer::Local &&
                               c.last_write.time > at;
                    });
                if (!written_after) {
                    retire_columns(k.local);
                }
            }
            // An atomic table's rows are all this (first) shard's; the others' rows are
            // spread over the shards, each removing its own.
            const bool atomic = std::any_of(
                a_.options_.tables.begin(), a_.options_.tables.end(), [&](const TableConfig& c) {
                    return c.name == t->canonical && c.atomic_transactions;
                });
            send_write(pipeline,
                       truncate_statement(*t, a_.options_.shard, atomic ? 1 : a_.options_.shards),
                       {t->versions_name, time_param(at)}, index);
        }
    }

    void write_change(pg::Pipeline& pipeline, Item& item, std::size_t index) {
        KeyState& k = keys_[item.key_state];
        const TargetTable& table = *k.table;
        const RemoteChange& change = item.mapped.change;
        if (const auto t = truncated_at_.find(&table);
            t != truncated_at_.end() && change.commit_time <= t->second) {
            // Committed on the source before this side truncated the table: the truncate
            // removed it here, and removes it there when it arrives.
            table_counts(table).skipped++;
            return;
        }
        const Resolution r =
            resolver_.resolve(table.canonical, table.canonical_names, change, k.local);
        pg::Params key_params(k.key.begin(), k.key.end());
        switch (r.action) {
            case Resolution::Action::Insert: {
                std::vector<std::size_t> columns;
                pg::Params params;
                for (std::size_t c = 0; c < r.row.size(); ++c) {
                    if (r.row[c].kind != Value::Kind::UnchangedToast) {
                        columns.push_back(c);
                        params.push_back(param_of(r.row[c]));
                    }
                }
                send_write(pipeline, insert_statement(table, columns), params, index);
                table_counts(table).inserted++;
                break;
            }
            case Resolution::Action::Update: {
                if (r.write_columns.empty()) {
                    break;
                }
                pg::Params params;
                for (const std::size_t c : r.write_columns) {
                    params.push_back(param_of((*change.new_row)[c]));
                }
                params.insert(params.end(), key_params.begin(), key_params.end());
                send_write(pipeline, update_statement(table, r.write_columns), params, index);
                table_counts(table).updated++;
                break;
            }
            case Resolution::Action::Delete:
                send_write(pipeline, delete_statement(table), key_params, index);
                table_counts(table).deleted++;
                break;
            case Resolution::Action::Skip:
                table_counts(table).skipped++;
                break;
            case Resolution::Action::None:
                break;
        }
        record_conflicts(pipeline, k, item, r, index);
        note_history(k, item, r);
        if (r.action != Resolution::Action::Skip) {
            k.local = apply_resolution(k.local, change, r);
            k.versions_changed = true;
        }
    }

    // pgbridge.history (docs/history.md): what the change wrote here, before and after, and
    // how a conflict was decided. Before the key's local state moves on (k.local is the row
    // the change met). Initial-copy rows are a table's state, not changes: not kept.
    void note_history(const KeyState& k, const Item& item, const Resolution& r) {
        const TargetTable& table = *k.table;
        const RemoteChange& change = item.mapped.change;
        if (change.backfill || !a_.keeps_history(table)) {
            return;
        }
        const auto values = [&](const std::vector<std::size_t>& columns, const auto& value_of) {
            JsonWriter w;  // for every change kept: no DOM
            w.open('{');
            for (const std::size_t c : columns) {
                const Value& v = value_of(c);
                w.key(table.columns[c].name);
                if (v.kind == Value::Kind::Null || v.kind == Value::Kind::UnchangedToast) {
                    w.null();
                } else {
                    w.string(v.data);
                }
            }
            w.close('}');
            return w.take();
        };
        const auto local_value = [&](std::size_t c) -> const Value& {
            return k.local.columns[c].value;
        };
        std::vector<std::size_t> every(table.columns.size());
        std::iota(every.begin(), every.end(), std::size_t{0});
        HistoryRecord h;
        h.origin = HistoryRecord::Origin::Applied;
        h.from_side = change.side;
        h.changed_at = change.commit_time;
        h.lsn = change.commit_lsn;
        h.seq = change.sequence;
        h.table = table.name.display();
        h.key = key_json(table, k.key);
        switch (r.action) {
            case Resolution::Action::Insert: {
                std::vector<std::size_t> written;
                for (std::size_t c = 0; c < r.row.size(); ++c) {
                    if (r.row[c].kind != Value::Kind::UnchangedToast) {
                        written.push_back(c);
                    }
                }
                h.operation = "insert";
                h.new_values =
                    values(written, [&](std::size_t c) -> const Value& { return r.row[c]; });
                break;
            }
            case Resolution::Action::Update:
                if (r.write_columns.empty() && !r.conflict) {
                    return;
                }
                h.operation = "update";
                if (k.local.exists) {
                    h.old_values = values(r.write_columns, local_value);
                }
                h.new_values = values(r.write_columns, [&](std::size_t c) -> const Value& {
                    return (*change.new_row)[c];
                });
                break;
            case Resolution::Action::Delete:
                h.operation = "delete";
                if (k.local.exists) {
                    h.old_values = values(every, local_value);
                }
                break;
            case Resolution::Action::Skip:
            case Resolution::Action::None:
                // Nothing written; kept only when a conflict decided it (the local values won,
                // or wait for a DBA).
                if (!r.conflict) {
                    return;
                }
                h.operation = change.op == ChangeOp::Insert   ? "insert"
                              : change.op == ChangeOp::Delete ? "delete"
                                                              : "update";
                break;
        }
        if (r.conflict) {
            json decision{{"kind", to_string(*r.conflict)}};
            json columns = json::array();
            for (const ColumnConflict& c : r.column_conflicts) {
                columns.push_back({{"column", table.columns[c.column].name},
                                   {"rule", c.strategy},
                                   {"winner", c.winner ? json(*c.winner) : json()}});
            }
            if (!columns.empty()) {
                decision["columns"] = std::move(columns);
            }
            if (r.row_winner) {
                decision["winner"] = *r.row_winner;
            }
            h.decision = dump(decision);
        }
        history_.push_back(std::move(h));
    }

    void record_conflicts(pg::Pipeline& pipeline, const KeyState& k, const Item& item,
                          const Resolution& r, std::size_t index) {
        if (!r.conflict) {
            return;
        }
        const TargetTable& table = *k.table;
        const RemoteChange& change = item.mapped.change;
        const std::string key = key_json(table, k.key);
        const auto record = [&](std::vector<std::string> columns, const json& local_values,
                                const json& remote_values, UnixMicros local_time,
                                const std::string& strategy,
                                const std::optional<std::string>& winner) {
            observed_.conflicts.push_back({table.name.display(),
                                           columns.empty() ? std::string() : columns.front(),
                                           strategy});
            if (!winner) {
                pending_conflicts_++;
            }
            // JSON null, not SQL NULL, for a side without the row: as the log always had it.
            const ConflictInsert insert =
                record_conflict_statement({.bridge = a_.options_.bridge,
                                           .table = table.name.display(),
                                           .key = key,
                                           .kind = std::string(to_string(*r.conflict)),
                                           .columns = std::move(columns),
                                           .local_side = a_.options_.target_side,
                                           .remote_side = change.side,
                                           .local_values = dump(local_values),
                                           .remote_values = dump(remote_values),
                                           .local_commit_time = time_param(local_time),
                                           .remote_commit_time = time_param(change.commit_time),
                                           .remote_lsn = change.commit_lsn.to_string(),
                                           .strategy = strategy,
                                           .winner = winner,
                                           .settled_by = "pgbridge",
                                           .note = std::nullopt});
            statement_items_.push_back(index);
            pipeline.send(insert.sql, insert.params);
        };
        if (!r.column_conflicts.empty()) {
            // One record per column: each is decided (and resolved by hand) on its own.
            for (const ColumnConflict& c : r.column_conflicts) {
                const std::string& column = table.columns[c.column].name;
                record({column}, json{{column, value_json(c.local_value)}},
                       json{{column, value_json(c.remote_value)}}, c.local_time, c.strategy,
                       c.winner);
            }
            return;
        }
        // A row-level conflict: the delete wins. Record what the losing side had.
        json local_values = nullptr;
        json remote_values = nullptr;
        UnixMicros local_time = 0;
        if (k.local.exists) {
            local_values = json::object();
            for (std::size_t c = 0; c < table.columns.size(); ++c) {
                local_values[table.columns[c].name] = value_json(k.local.columns[c].value);
                local_time = std::max(local_time, k.local.columns[c].last_write.time);
            }
        } else if (k.local.deleted) {
            local_time = k.local.deleted->time;
        }
        if (change.new_row) {
            remote_values = json::object();
            for (std::size_t c = 0; c < table.columns.size(); ++c) {
                remote_values[table.columns[c].name] = value_json((*change.new_row)[c]);
            }
        }
        record({}, local_values, remote_values, local_time, "delete_wins", r.row_winner);
    }

    // New version rows go in one statement per table; existing ones (locked at the start)
    // are overwritten one prepared statement each.
    void store_versions(pg::Pipeline& pipeline) {
        for (const TargetTable* table : tables_) {
            const std::string update = update_versions_statement(*table);
            std::vector<pg::Params> inserts(table->key.size() + 6);
            for (const auto& k : keys_) {
                if (k.table != table || !k.versions_changed) {
                    continue;
                }
                const StoredRowVersions s = to_stored(k.local, k.stored, table->names);
                pg::Params values(k.key.begin(), k.key.end());
                values.push_back(column_versions_document(s.columns));
                values.push_back(std::to_string(s.local_row_writes));
                values.push_back(std::to_string(s.seen_remote_row_writes));
                values.push_back(std::to_string(s.local_delete_writes));
                values.push_back(s.deleted ? std::optional(stamp_document(*s.deleted))
                                           : std::nullopt);
                values.push_back(s.deleted_applied_remote.valid()
                                     ? std::optional(s.deleted_applied_remote.to_string())
                                     : std::nullopt);
                if (k.stored.found) {
                    values.insert(values.begin(), table->versions_name);
                    send_write(pipeline, update, values, kNoItem);
                    continue;
                }
                for (std::size_t i = 0; i < values.size(); ++i) {
                    inserts[i].push_back(std::move(values[i]));
                }
            }
            if (inserts.front().empty()) {
                continue;
            }
            pg::Params params{table->versions_name};
            for (const auto& column : inserts) {
                params.push_back(pg::array_literal(column));
            }
            send_write(pipeline, insert_versions_statement(*table), params, kNoItem);
        }
    }

    // Adds table, key and source LSN of the change whose statement failed.
    void name_failed_change(Error& e) const {
        const std::string_view index_text = e.context_value("statement_index");
        if (index_text.empty()) {
            return;
        }
        const std::size_t index = std::stoul(std::string(index_text));
        if (index >= statement_items_.size() || statement_items_[index] == kNoItem) {
            return;
        }
        const Item& item = items_[statement_items_[index]];
        if (!item.truncated.empty()) {
            e.with("table", item.truncated.front()->name.display());
        } else {
            const KeyState& k = keys_[item.key_state];
            e.with("table", k.table->name.display()).with("key", key_json(*k.table, k.key));
        }
        e.with("source", item.transaction->source_side)
            .with("lsn", item.transaction->commit_lsn.to_string());
    }

    void rollback(pg::Connection& conn) noexcept {
        try {
            conn.exec("ROLLBACK");
            // A PREPARE sent in a pipeline that failed may or may not have run.
            conn.exec("DEALLOCATE ALL");
            a_.prepared_.clear();
        } catch (...) {
            a_.forget_session();
        }
    }

    static constexpr std::size_t kSyncEvery = 1000;
    // Waits of one batch for capture: each needs a new local write to one of its keys.
    static constexpr int kMaxCaptureWaits = 20;
    static constexpr std::chrono::milliseconds kWaitInPlace{20};

    Lsn insert_lsn_;
    Lsn flush_lsn_;  // how far the server had flushed its WAL at that read
    Lsn waited_for_;
    std::map<std::size_t, UnsettledKey> seen_unsettled_;
    bool own_transaction_ = true;
    std::uint32_t sequence_base_ = 0;
    std::optional<Lsn> in_progress_;
    static constexpr std::size_t kNoItem = static_cast<std::size_t>(-1);

    PostgresApplier& a_;
    const transport::ChangeBatch& batch_;
    const ConflictResolver& resolver_;
    std::vector<Item> items_;
    std::vector<KeyState> keys_;
    std::vector<const TargetTable*> tables_;  // every table a key belongs to, first seen first
    // Commit time of this side's last TRUNCATE of a table, when it has one.
    std::map<const TargetTable*, UnixMicros> truncated_at_;
    std::vector<std::size_t> statement_items_;  // item of each write statement, by index
    std::vector<HistoryRecord> history_;        // what this batch writes to pgbridge.history
    // What the batch did, added to the applier's stats (and told to the observer) once it has
    // committed.
    AppliedBatch observed_;
    std::uint64_t pending_conflicts_ = 0;
};

namespace {

// The lowest or highest place whose versions a part carries late, if any.
std::optional<std::string> versions_bound(const SourceTransaction& txn, bool lowest) {
    if (txn.late_versions.empty()) {
        return std::nullopt;
    }
    const auto [min, max] = std::minmax_element(
        txn.late_versions.begin(), txn.late_versions.end(),
        [](const PlacedVersions& x, const PlacedVersions& y) { return x.place < y.place; });
    return std::to_string(lowest ? min->place : max->place);
}

}  // namespace

void PostgresApplier::attach_late_versions(pg::Connection& conn, transport::ChangeBatch& part) {
    SourceTransaction& txn = part.transactions.front();
    if (txn.changes.empty()) {
        return;
    }
    const std::uint32_t first = part.chunk->first_change;
    const auto last = static_cast<std::uint32_t>(first + txn.changes.size() - 1);
    const auto attach = [&](const SourceTransaction& from) {
        for (const auto& p : from.late_versions) {
            if (p.place >= first && p.place <= last && p.versions) {
                txn.changes[p.place - first].versions = p.versions;
            }
        }
    };
    // The parts carrying versions for these places: usually one or two, shared with the
    // next part (kept decoded for it).
    const pg::Result carriers = conn.exec(
        "SELECT part, encode(body, 'hex') FROM pgbridge.transaction_parts WHERE bridge = $1 AND "
        "source_side = $2 AND shard = $7::int AND commit_lsn = $3::pg_lsn AND versions_min <= "
        "$5::int AND versions_max >= $4::int AND part <> $6::int ORDER BY part",
        {options_.bridge, part.source_side, txn.commit_lsn.to_string(), std::to_string(first),
         std::to_string(last), std::to_string(part.chunk->index), shard_number()});
    std::map<int, SourceTransaction> decoded;
    for (int i = 0; i < carriers.rows(); ++i) {
        const int index = std::stoi(std::string(carriers.value(i, 0)));
        auto it = carriers_.find(index);
        if (it == carriers_.end()) {
            SourceTransaction versions_only;
            versions_only.late_versions =
                std::move(transport::decode_body(from_hex(carriers.value(i, 1)).value_or(""))
                              .transactions.front()
                              .late_versions);
            it = carriers_.emplace(index, std::move(versions_only)).first;
        }
        attach(it->second);
        decoded.insert(*it);
    }
    carriers_ = std::move(decoded);  // only what this part needed: the next needs the same
    attach(txn);
}

void PostgresApplier::keep_part(const transport::ChangeBatch& batch,
                                const ConflictResolver& resolver) {
    const SourceTransaction& txn = batch.transactions.front();
    const transport::ChunkInfo& part = *batch.chunk;
    const std::string commit_lsn = txn.commit_lsn.to_string();
    pg::Connection& conn = connection();
    conn.exec("BEGIN");
    try {
        const pg::Params id{options_.bridge, batch.source_side, commit_lsn, shard_number()};
        if (conn.exec("SELECT 1 FROM pgbridge.applied_transactions WHERE bridge = $1 AND "
                      "source_side = $2 AND commit_lsn = $3::pg_lsn AND shard = $4::int",
                      id)
                .rows() > 0) {
            conn.exec("COMMIT");  // a part of a transaction applied before: nothing to do
            stats_.skipped++;
            return;
        }
        // A part sent again after a replay replaces the one kept: a replay sends every part
        // again, cut the same way unless max_message_bytes changed in between.
        conn.exec(
            "INSERT INTO pgbridge.transaction_parts AS p (bridge, source_side, commit_lsn, part, "
            "first_change, changes, last, end_lsn, commit_time, body, versions_min, "
            "versions_max, shard) VALUES ($1, $2, $3::pg_lsn, $4::int, $5::int, $6::int, "
            "$7::bool, $8::pg_lsn, $9::timestamptz, decode($10, 'hex'), $11::int, $12::int, "
            "$13::int) ON CONFLICT (bridge, source_side, shard, commit_lsn, part) DO UPDATE SET "
            "first_change = "
            "EXCLUDED.first_change, changes = EXCLUDED.changes, last = EXCLUDED.last, end_lsn = "
            "EXCLUDED.end_lsn, body = EXCLUDED.body, versions_min = EXCLUDED.versions_min, "
            "versions_max = EXCLUDED.versions_max, received_at = now()",
            {options_.bridge, batch.source_side, commit_lsn, std::to_string(part.index),
             std::to_string(part.first_change), std::to_string(txn.changes.size()),
             part.last ? "true" : "false",
             part.last ? std::optional(txn.end_lsn.to_string()) : std::nullopt,
             txn.commit_time != 0 ? std::optional(format_timestamp(txn.commit_time)) : std::nullopt,
             to_hex(transport::encode_body(batch)), versions_bound(txn, true),
             versions_bound(txn, false), shard_number()});
        // Every part here, each starting where the one before ends?
        const pg::Result parts = conn.exec(
            "SELECT part, first_change, changes, last, end_lsn::text, commit_time::text "
            "FROM pgbridge.transaction_parts WHERE bridge = $1 AND source_side = $2 AND "
            "commit_lsn = $3::pg_lsn AND shard = $4::int ORDER BY part",
            id);
        std::int64_t next_first = 0;
        bool complete = parts.rows() > 0;
        for (int i = 0; i < parts.rows() && complete; ++i) {
            complete = std::stol(std::string(parts.value(i, 0))) == i &&
                       std::stol(std::string(parts.value(i, 1))) == next_first &&
                       (parts.value(i, 3) == "t") == (i + 1 == parts.rows());
            next_first += std::stol(std::string(parts.value(i, 2)));
        }
        if (!complete) {
            conn.exec("COMMIT");  // kept: the transaction is applied with its last part
            return;
        }
        const int count = parts.rows();
        const std::string end_lsn(parts.value(count - 1, 4));
        const std::optional<std::string> commit_time = parts.optional_value(count - 1, 5);
        if (commit_time) {
            conn.exec("SELECT pg_catalog.pg_replication_origin_xact_setup($1, $2)",
                      {end_lsn, *commit_time});
        }
        carriers_.clear();
        // Part by part: one part in memory at a time.
        for (int i = 0; i < count; ++i) {
            const pg::Result body = conn.exec(
                "SELECT encode(body, 'hex') FROM pgbridge.transaction_parts WHERE bridge = "
                "$1 AND source_side = $2 AND commit_lsn = $3::pg_lsn AND part = $4::int AND "
                "shard = $5::int",
                {options_.bridge, batch.source_side, commit_lsn, std::to_string(i),
                 shard_number()});
            transport::ChangeBatch stored =
                transport::decode_body(from_hex(body.value(0, 0)).value_or(""));
            if (!stored.chunk) {
                throw Error(ErrorKind::Internal, "a kept part is not a part")
                    .with("lsn", commit_lsn);
            }
            if (stored.transactions.front().changes.empty()) {
                continue;  // versions of earlier changes only: read with those
            }
            attach_late_versions(conn, stored);
            Attempt(*this, stored, resolver).run_part(*stored.chunk);
        }
        carriers_.clear();
        conn.exec(kRecordProgressStatement,
                  {options_.bridge, batch.source_side, end_lsn, commit_time, shard_number()});
        conn.exec(
            "INSERT INTO pgbridge.applied_transactions (bridge, source_side, commit_lsn, "
            "end_lsn, parts, changes, shard) VALUES ($1, $2, $3::pg_lsn, $4::pg_lsn, $5::int, "
            "$6::bigint, $7::int)",
            {options_.bridge, batch.source_side, commit_lsn, end_lsn, std::to_string(count),
             std::to_string(next_first), shard_number()});
        conn.exec(
            "DELETE FROM pgbridge.transaction_parts WHERE bridge = $1 AND source_side = $2 AND "
            "commit_lsn = $3::pg_lsn AND shard = $4::int",
            id);
        conn.exec("COMMIT");
        stats_.batches++;
        log::info("apply", "large transaction applied",
                  {{"source", batch.source_side},
                   {"lsn", commit_lsn},
                   {"parts", std::to_string(count)},
                   {"changes", std::to_string(next_first)}});
    } catch (...) {
        try {
            conn.exec("ROLLBACK");
            conn.exec("DEALLOCATE ALL");
            prepared_.clear();
        } catch (...) {
            forget_session();
        }
        throw;
    }
}

PostgresApplier::PostgresApplier(ApplierOptions options, ConflictRules rules)
    : options_(std::move(options)),
      resolver_(std::make_shared<ConflictResolver>(std::move(rules), options_.target_side)) {}

PostgresApplier::~PostgresApplier() = default;

void PostgresApplier::set_rules(ConflictRules rules) {
    auto next = std::make_shared<ConflictResolver>(std::move(rules), options_.target_side);
    const std::lock_guard lock(rules_mutex_);
    resolver_ = std::move(next);
}

pg::Connection& PostgresApplier::connection() {
    if (!connection_) {
        pg::Connection conn = pg::Connection::open(options_.target);
        // Everything this session commits is marked as coming from the source side, which is
        // what keeps the target's capture from sending it back (no echo).
        conn.exec("SELECT pg_catalog.pg_replication_origin_session_setup($1)",
                  {names::shard_origin(options_.bridge, options_.source_side, options_.shard,
                                       options_.shards)});
        // Its statements are prepared and run once per batch, by key: one plan each (index
        // lookups by key whatever the batch), not a custom plan per execution, whose planning
        // cost more than running them.
        conn.exec("SET plan_cache_mode = force_generic_plan");
        connection_ = std::move(conn);
        prepared_.clear();
    }
    return *connection_;
}

void PostgresApplier::prepare() {
    connection();
    for (const auto& table : options_.tables) {
        try {
            target_for(table);
        } catch (const Error& e) {
            if (is_connection_failure(e)) {
                forget_session();
                throw;
            }
            // Told again, with its table, by the first apply that needs it.
            log::info("apply", "a synced table cannot be read on the target yet",
                      {{"target", options_.target_side},
                       {"table", table.name_on(options_.target_side).display()},
                       {"error", e.what()}});
        }
    }
}

void PostgresApplier::forget_session() noexcept {
    connection_.reset();
    prepared_.clear();
}

bool PostgresApplier::keeps_history(const TargetTable& table) const {
    if (!options_.history) {
        return false;
    }
    for (const auto& t : options_.tables) {
        if (t.name == table.canonical) {
            return t.history;
        }
    }
    return false;
}

const TableConfig& PostgresApplier::table_config_for(const TableInfo& source_table) const {
    const QualifiedName name{source_table.schema, source_table.name};
    for (const auto& t : options_.tables) {
        if (t.name_on(options_.source_side) == name) {
            return t;
        }
    }
    throw Error(ErrorKind::Setup, "change of a table that is not synced by this bridge")
        .with("table", name.display())
        .with("source", options_.source_side);
}

const TargetTable& PostgresApplier::target_for(const TableConfig& table) {
    auto it = targets_.find(table.name);
    if (it == targets_.end()) {
        it = targets_
                 .emplace(table.name, load_target_table(connection(), table, options_.target_side))
                 .first;
    }
    return it->second;
}

void PostgresApplier::note_source_shapes(const transport::ChangeBatch& batch) {
    const TableInfo* last = nullptr;  // the changes of a message share their table's description
    for (const auto& txn : batch.transactions) {
        for (const auto& event : txn.changes) {
            if (!event.table || event.table.get() == last) {
                continue;
            }
            last = event.table.get();
            const auto& columns = event.table->columns;
            auto [it, added] =
                source_shapes_.try_emplace(QualifiedName{event.table->schema, event.table->name});
            const bool same = std::equal(
                it->second.begin(), it->second.end(), columns.begin(), columns.end(),
                [](const std::string& seen, const ColumnInfo& c) { return seen == c.name; });
            if (same) {
                continue;
            }
            it->second.clear();
            for (const auto& c : columns) {
                it->second.push_back(c.name);
            }
            if (!added) {
                // The source's table changed: the target's may have too. (What is gone stays
                // gone: a batch may hold changes from before and after a drop.)
                targets_.erase(table_config_for(*event.table).name);
            }
        }
    }
}

const std::set<std::string>& PostgresApplier::gone_columns(const TableConfig& table) const {
    static const std::set<std::string> none;
    const auto it = gone_columns_.find(table.name);
    return it == gone_columns_.end() ? none : it->second;
}

namespace {

// Columns of one batch found gone from both sides before the batch is given up on (a bound
// that no real batch reaches; it keeps a bug from looping).
constexpr int kMaxColumnsLeftOut = 64;

}  // namespace

bool PostgresApplier::column_gone_from_both(const Error& missing) {
    const std::string_view target_table = missing.context_value("table");
    const std::string column(missing.context_value("column"));
    for (const auto& t : options_.tables) {
        if (t.name_on(options_.target_side).display() != target_table) {
            continue;
        }
        pg::Connection source = pg::Connection::open(options_.source);
        const pg::Result found = source.exec(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = "
            "to_regclass($1) AND attname = $2 AND attnum > 0 AND NOT attisdropped)",
            {t.name_on(options_.source_side).quoted(), column});
        if (found.value(0, 0) == "t") {
            return false;
        }
        gone_columns_[t.name].insert(t.canonical_column(options_.source_side, column));
        log::info("apply",
                  "a column neither side has any more: its values in changes captured before it "
                  "was dropped are left out",
                  {{"source", options_.source_side},
                   {"table", std::string(target_table)},
                   {"column", column}});
        return true;
    }
    return false;
}

void PostgresApplier::record_waiting(const Error& missing) noexcept {
    try {
        connection().exec(kRecordWaitingStatement,
                          {options_.bridge, options_.source_side,
                           fmt::format("column {} of {}", missing.context_value("column"),
                                       missing.context_value("table")),
                           shard_number()});
    } catch (const std::exception& e) {
        log::warning("apply",
                     "could not record in pgbridge.apply_progress what the apply waits for",
                     {{"source", options_.source_side}, {"error", e.what()}});
    }
}

void PostgresApplier::apply(const transport::ChangeBatch& batch) {
    std::shared_ptr<const ConflictResolver> resolver;
    {
        const std::lock_guard lock(rules_mutex_);
        resolver = resolver_;
    }
    if (reload_catalog_.exchange(false)) {
        targets_.clear();
        gone_columns_.clear();
    }
    // The target's description is read again once per batch when it looks older than the
    // target's catalog; each column found gone from both sides costs one more try at once.
    // Neither counts as an attempt: only transient conflicts do.
    bool described_again = false;
    int columns_left_out = 0;
    for (int attempt = 1;;) {
        try {
            if (batch.chunk) {
                keep_part(batch, *resolver);
            } else {
                Attempt(*this, batch, *resolver).run();
            }
            return;
        } catch (Error& e) {
            if (is_connection_failure(e)) {
                forget_session();
                throw;
            }
            const std::string_view state = e.context_value("sqlstate");
            const bool missing_column = e.context_value("waiting_for") == "column";
            if (missing_column || state == sqlstate::kUndefinedTable ||
                state == sqlstate::kUndefinedColumn || state == sqlstate::kDatatypeMismatch ||
                state == sqlstate::kFeatureNotSupported ||
                state == sqlstate::kInvalidSqlStatementName) {
                // The target's tables changed under us (or the source's did and the target
                // has caught up since): describe them again and try once more at once.
                targets_.clear();
                if (!described_again) {
                    described_again = true;
                    continue;
                }
            }
            if (missing_column) {
                if (++columns_left_out <= kMaxColumnsLeftOut && column_gone_from_both(e)) {
                    continue;
                }
                stats_.schema_waits++;
                record_waiting(e);
                throw;
            }
            if (!is_transient_conflict(e) || attempt >= options_.transient_attempts) {
                throw;
            }
            ++attempt;
            stats_.transient_retries++;
            log::info("apply", "transient failure; applying the batch again",
                      {{"source", batch.source_side},
                       {"last_lsn", batch.last_end_lsn().to_string()},
                       {"error", e.what()}});
        }
    }
}

}  // namespace pgbridge::apply
