#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <pgbridge/core/change_event.hpp>
#include <pgbridge/core/history_record.hpp>
#include <pgbridge/core/lsn.hpp>
#include <pgbridge/core/qualified_name.hpp>
#include <pgbridge/core/stored_versions.hpp>
#include <pgbridge/core/versions_watermark.hpp>
#include <pgbridge/pg/connection.hpp>

namespace pgbridge::source {

struct VersionKeeperOptions {
    std::string bridge;
    std::string side;
    pg::ConnectOptions connect;
    // Told how far local writes are recorded (the applier writing to this side reads it).
    std::shared_ptr<VersionsWatermark> watermark;
    // [history] on: the tables (as this side names them) whose local writes also go into
    // pgbridge.history, written with their versions. Empty: none.
    std::set<QualifiedName> history_tables;
};

// Keeps this side's column versions of local writes (pgbridge.row_versions) from the changes
// capture decodes, instead of a trigger inside the application's transaction
// (docs/apply-design.md, "Local versions"): it counts which columns each local write changed
// (old and new row, REPLICA IDENTITY FULL), stamps them with the commit time and LSN, and
// gives every change the writer's version vectors after it, which the change then carries.
//
// A whole transaction's versions are written once the broker has confirmed the message that
// carries it (record_durable), together with the position they reach
// (pgbridge.local_versions): a capture that starts again skips what is recorded, so nothing is
// counted twice and every vector published is the one computed the first time. A transaction
// handed over in pieces writes each piece's versions before the piece goes out (no size is
// held in memory); a column entry names the commit LSN of its last local write, which makes
// counting a piece again a no-op.
// The documents of a key's pgbridge.row_versions row (columns; deleted, SQL NULL: none) as
// the keeper reads them. Columns it cannot read count anew from zero; a tombstone it cannot
// read stays a tombstone, its writer and time unknown. `malformed` says what could not be
// read, for the log.
struct StoredDocuments {
    ColumnVersions columns;
    std::optional<StoredStamp> deleted;
    std::vector<std::string> malformed;
};
StoredDocuments read_stored_documents(std::string_view columns,
                                      std::optional<std::string_view> deleted);

class VersionKeeper {
  public:
    explicit VersionKeeper(VersionKeeperOptions options);
    ~VersionKeeper();
    VersionKeeper(const VersionKeeper&) = delete;
    VersionKeeper& operator=(const VersionKeeper&) = delete;

    // A new replication session: returns the recorded position (transactions ending at or
    // before it are not stamped again: the broker has them). Primary key columns per relation
    // oid, in key order.
    Lsn start_session(std::unordered_map<std::uint32_t, std::vector<std::string>> primary_keys);
    // Downstream lost what is not durable: records what is (if it can) and forgets the rest,
    // which capture receives again from the position returned (at most `durable`).
    Lsn rewind(Lsn durable) noexcept;
    // Every local transaction before this is recorded: the slot may be confirmed up to it.
    Lsn reached() const;

    // A local transaction has reached capture (before it is stamped): the applier of the
    // other direction learns which keys wait to be recorded.
    void note_received(const SourceTransaction& txn);

    // Stamps whole local transactions, in commit order: every row change gets its versions.
    void stamp(std::vector<SourceTransaction>& transactions);
    // Stamps one piece of a large transaction and records it at once.
    void stamp_piece(SourceTransaction& piece);
    // The last piece committed the transaction: it is recorded once `end_lsn` is durable.
    void piece_committed(Lsn end_lsn);

    // Records the stamped transactions ending at or before `durable`; moves the watermark.
    void record_durable(Lsn durable);
    // Every local transaction before `lsn` has reached capture (a transaction pgbridge
    // applied ends there, or the server's keepalive says so).
    void decoded(Lsn lsn);
    // No local transaction ends between what is recorded and `lsn`, none held unstamped: the
    // recorded watermark may pass it.
    void passed(Lsn lsn);
    bool has_pending() const { return !pending_.empty(); }
    // Whether the stamped transactions should be recorded as soon as the broker has them:
    // someone waits for it, or they have waited long enough (kRecordDelay) or are many
    // (kRecordBatch). Until then recording waits, so that one write records many.
    bool record_due(std::chrono::steady_clock::time_point now) const;
    // When record_due becomes true by time alone (with something pending).
    std::chrono::steady_clock::time_point record_deadline() const;
    // A position the applier waits for that has not reached capture yet.
    bool wanted() const;

    // An apply-only worker (`pgbridge run --apply-only`, another process) waits to see this
    // side's local writes recorded: it asked by a logical message written outside any
    // transaction (names::kVersionsWantedPrefix, content the bridge name), which capture
    // decoded at `lsn`. From now until the position reached passes `lsn`, every move of it is
    // written to pgbridge.local_versions at once, where the worker reads it. Only on request:
    // an idle side writes nothing.
    void request_announcement(Lsn lsn);

  private:
    struct Key {
        std::string table;  // versions name: quote_ident(schema) || '.' || quote_ident(name)
        std::vector<std::string> values;
        auto operator<=>(const Key&) const = default;
    };
    struct State {
        bool found = false;
        ColumnVersions columns;
        std::int64_t local_row_writes = 0;
        std::int64_t seen_remote_row_writes = 0;
        std::int64_t local_delete_writes = 0;
        std::optional<StoredStamp> deleted;
        Lsn deleted_applied_remote;
        std::int64_t local_xid = 0;
        Lsn local_lsn;
    };
    struct Table {
        std::weak_ptr<const TableInfo> described;
        std::string versions_name;
        std::vector<std::string> columns;      // the names, in TableInfo::columns order
        std::vector<std::size_t> key_columns;  // in TableInfo::columns
        std::vector<std::string> key_types;
        std::string read_sql;
        std::string read_name;  // prepared once per connection
        std::string write_sql;
        bool history = false;  // its local writes go into pgbridge.history
    };
    struct PendingTransaction {
        Lsn end_lsn;
        std::chrono::steady_clock::time_point stamped_at = std::chrono::steady_clock::now();
        std::vector<std::pair<Key, State>> states;  // after the transaction, one per key
        std::vector<HistoryRecord> history;         // its changes, for pgbridge.history
    };

    pg::Connection& connection();
    const Table& table_of(const std::shared_ptr<const TableInfo>& described);
    std::optional<Key> key_of(const Table& table, const Row& row) const;
    // The table and key a row change writes (by its new row, else its old one); none for a
    // truncate or a table without a primary key.
    std::optional<std::pair<const Table*, Key>> keyed_change(const ChangeEvent& change);
    // Reads the stored state of the keys not known from pending transactions.
    void load(const std::vector<std::pair<const Table*, Key>>& keys);
    // Splits an update that changed the primary key into a delete of the old key and an
    // insert of the new one: versions are kept per key. Returns how many changes it added.
    std::uint32_t split_key_changes(SourceTransaction& txn);
    void stamp_change(const SourceTransaction& txn, ChangeEvent& change, const Table& table,
                      State& state) const;
    // The change as a pgbridge.history record, when its table keeps history. `place`: its
    // place in the transaction, from 1.
    void note_history(const SourceTransaction& txn, const ChangeEvent& change, const Table& table,
                      const Key& key, std::uint32_t place, std::vector<HistoryRecord>& out) const;
    // In one transaction and one round trip, with the position recorded, if any.
    void write(const std::map<Key, const State*>& states, const std::optional<Lsn>& recorded,
               const std::vector<HistoryRecord>& history = {});
    void write_pipelined(const std::map<Key, const State*>& states,
                         const std::optional<Lsn>& recorded,
                         const std::vector<HistoryRecord>& history);
    void advance_watermark();
    // Writes reached() to pgbridge.local_versions while an announcement is requested.
    void announce_reached();

    // Recording batches what the broker confirmed for up to this long, or this many
    // transactions: the slot and the applier's watermark follow a little later, the source
    // database gets one write instead of one per transaction.
    static constexpr std::chrono::milliseconds kRecordDelay{50};
    static constexpr std::size_t kRecordBatch = 256;

    VersionKeeperOptions options_;
    std::unique_ptr<pg::Connection> conn_;
    std::unordered_map<std::uint32_t, std::vector<std::string>> primary_keys_;
    std::unordered_map<std::uint32_t, Table> tables_;
    std::uint64_t descriptions_ = 0;
    std::set<std::string> prepared_;
    std::map<Key, State> known_;      // the latest state of keys of pending transactions
    std::map<Key, Lsn> known_until_;  // the end of the last pending transaction per key
    std::deque<PendingTransaction> pending_;
    Lsn recorded_;
    Lsn passed_;  // passed() beyond the first pending transaction
    // The large transaction being stamped in pieces, and how many changes splitting added to
    // it so far (its later pieces' places move by as many).
    Lsn piece_commit_lsn_;
    std::uint32_t piece_places_added_ = 0;
    // The keys of received transactions not recorded yet, told to the watermark.
    std::deque<std::pair<Lsn, std::vector<std::string>>> unrecorded_keys_;
    Lsn large_end_;  // a large transaction not recorded yet: every key counts as unrecorded
    // request_announcement(): the position requested, and the last one written.
    Lsn announcement_wanted_;
    Lsn announced_;
};

}  // namespace pgbridge::source
