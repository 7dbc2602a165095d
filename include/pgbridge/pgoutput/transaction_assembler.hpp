#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <pgbridge/core/change_event.hpp>
#include <pgbridge/pgoutput/messages.hpp>

namespace pgbridge::pgoutput {

// Turns the stream of pgoutput messages of one replication connection into whole committed
// transactions: keeps the relation descriptions (Relation messages) that row messages refer
// to, collects a transaction's changes between Begin and Commit, and for protocol version 2
// collects streamed chunks per transaction until Stream Commit (dropping them on Stream Abort,
// per subtransaction). Pure: no I/O, fed one payload at a time.
class TransactionAssembler {
  public:
    explicit TransactionAssembler(std::string source_side);

    // Decodes and applies one XLogData payload. Returns the transaction this message commits,
    // if it commits one. Throws Error(ErrorKind::Protocol) on malformed input or messages out
    // of order (a change outside a transaction, a row of an undescribed relation, ...).
    std::optional<SourceTransaction> feed(std::string_view payload);
    std::optional<SourceTransaction> apply(Message message);

    // True while a transaction or streamed chunk has been started but not committed or
    // aborted: then the server's position may be ahead of data this side has not finished.
    bool holds_partial_data() const;
    std::size_t streamed_transactions_open() const { return streams_.size(); }

    // The primary key columns of each published table (relation oid -> column names), read
    // from the source catalog: with REPLICA IDENTITY FULL pgoutput flags every column as key,
    // so the Relation message alone cannot tell the primary key.
    void set_primary_keys(std::unordered_map<std::uint32_t, std::vector<std::string>> keys) {
        primary_keys_ = std::move(keys);
    }

    // A transaction (not streamed) whose changes and logical messages grow past `bytes`
    // (0: never) is handed out in pieces as it arrives (take_pieces), so that no transaction
    // size is held in memory; the transaction feed() returns on its Commit is then its last
    // piece. A piece holds the changes and messages that arrived since the previous one.
    void set_piece_bytes(std::size_t bytes) { piece_bytes_ = bytes; }

    // Transactions the caller drops whole by their origin (capture drops what pgbridge itself
    // applied: no echo). Their row changes and logical messages are not decoded, only
    // skipped: the transaction comes out of Commit without them. Relation and Type messages
    // inside them are still read, as later transactions refer to them. Streamed transactions
    // are decoded as before (kept simple: they are few, and dropped whole all the same).
    void set_skipped_origins(std::function<bool(std::string_view origin_name)> skipped) {
        skipped_origins_ = std::move(skipped);
    }
    std::vector<SourceTransaction> take_pieces() { return std::exchange(pieces_, {}); }
    // Logical messages written outside any transaction (pg_logical_emit_message(false, ...)),
    // as they arrived since the last call: the server sends them when it decodes them, between
    // transactions. pgbridge's apply-only workers use one to ask this side's capture for news.
    std::vector<LogicalMessage> take_standalone_messages() {
        return std::exchange(standalone_messages_, {});
    }

    // A new connection starts over: the server resends relations and any transaction that was
    // not acknowledged.
    void reset();

    const std::shared_ptr<const TableInfo>* find_relation(std::uint32_t oid) const;
    // Data types described by Type messages (non built-in types), oid -> "schema.name".
    const std::unordered_map<std::uint32_t, std::string>& types() const { return types_; }

  private:
    struct OpenTransaction {
        SourceTransaction txn;
        // Streamed only: the (sub)transaction id each change and message came from, so that a
        // subtransaction abort drops exactly its changes.
        std::vector<std::uint32_t> change_xids;
        std::vector<std::uint32_t> message_xids;
        // Handed out in pieces: how many changes so far, and an estimate of the bytes held.
        // (No member initialisers: value-initialised by optional::emplace(), which clang
        // cannot check inside the enclosing class's definition otherwise.)
        bool in_pieces;
        bool skipping_changes;  // its origin is one of the skipped ones
        std::uint32_t handed_out;
        std::size_t held_bytes;
    };

    // Counts what a change or message costs in memory, and hands out the changes and
    // messages held so far as a piece once that passes the piece size.
    void hold(OpenTransaction& t, std::size_t bytes);
    void hand_out_piece(OpenTransaction& t);

    std::shared_ptr<const TableInfo> relation(std::uint32_t oid, std::string_view message) const;
    Row checked_row(Row row, const TableInfo& table, std::string_view message) const;
    OpenTransaction& current(std::string_view message);
    void add_change(ChangeEvent change, std::optional<std::uint32_t> xid, std::string_view what);

    std::string side_;
    std::unordered_map<std::uint32_t, std::shared_ptr<const TableInfo>> relations_;
    std::unordered_map<std::uint32_t, std::string> types_;
    std::unordered_map<std::uint32_t, std::vector<std::string>> primary_keys_;
    std::optional<OpenTransaction> open_;               // between Begin and Commit
    std::map<std::uint32_t, OpenTransaction> streams_;  // streamed, by top-level xid
    std::optional<std::uint32_t> stream_block_xid_;     // between Stream Start and Stream Stop
    std::size_t piece_bytes_ = 0;
    std::vector<SourceTransaction> pieces_;
    std::vector<LogicalMessage> standalone_messages_;
    std::function<bool(std::string_view)> skipped_origins_;
};

}  // namespace pgbridge::pgoutput
