#include <algorithm>

#include <fmt/format.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/pgoutput/decoder.hpp>
#include <pgbridge/pgoutput/transaction_assembler.hpp>

namespace pgbridge::pgoutput {
namespace {

// Removes the items that came from subtransaction subxid; xids[i] tells where items[i] came from.
template <typename T>
void erase_subtransaction(std::vector<T>& items, std::vector<std::uint32_t>& xids,
                          std::uint32_t subxid) {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (xids[i] == subxid) {
            continue;
        }
        if (kept != i) {
            items[kept] = std::move(items[i]);
            xids[kept] = xids[i];
        }
        ++kept;
    }
    items.resize(kept);
    xids.resize(kept);
}

}  // namespace

TransactionAssembler::TransactionAssembler(std::string source_side)
    : side_(std::move(source_side)) {}

bool TransactionAssembler::holds_partial_data() const {
    return open_.has_value() || !streams_.empty() || stream_block_xid_.has_value();
}

void TransactionAssembler::reset() {
    relations_.clear();
    types_.clear();
    open_.reset();
    streams_.clear();
    stream_block_xid_.reset();
    standalone_messages_.clear();
}

const std::shared_ptr<const TableInfo>* TransactionAssembler::find_relation(
    std::uint32_t oid) const {
    auto it = relations_.find(oid);
    return it == relations_.end() ? nullptr : &it->second;
}

std::shared_ptr<const TableInfo> TransactionAssembler::relation(std::uint32_t oid,
                                                                std::string_view message) const {
    auto it = relations_.find(oid);
    if (it == relations_.end()) {
        throw Error(ErrorKind::Protocol,
                    fmt::format("{} message for relation oid {} that no Relation message "
                                "described",
                                message, oid))
            .with("side", side_);
    }
    return it->second;
}

Row TransactionAssembler::checked_row(Row row, const TableInfo& table,
                                      std::string_view message) const {
    if (row.size() != table.columns.size()) {
        throw Error(ErrorKind::Protocol,
                    fmt::format("{} message has {} columns, its relation has {}", message,
                                row.size(), table.columns.size()))
            .with("side", side_)
            .with("table", table.schema + "." + table.name);
    }
    return row;
}

TransactionAssembler::OpenTransaction& TransactionAssembler::current(std::string_view message) {
    if (stream_block_xid_) {
        return streams_.at(*stream_block_xid_);
    }
    if (!open_) {
        throw Error(ErrorKind::Protocol, fmt::format("{} message outside a transaction", message))
            .with("side", side_);
    }
    return *open_;
}

void TransactionAssembler::add_change(ChangeEvent change, std::optional<std::uint32_t> xid,
                                      std::string_view what) {
    OpenTransaction& t = current(what);
    if (stream_block_xid_) {
        t.change_xids.push_back(xid.value_or(*stream_block_xid_));
    }
    // What the change costs in memory, roughly: its values and a fixed overhead.
    std::size_t bytes = 128;
    for (const auto* row : {&change.old_row, &change.new_row}) {
        if (*row) {
            for (const auto& v : **row) {
                bytes += 32 + v.data.size();
            }
        }
    }
    t.txn.changes.push_back(std::move(change));
    hold(t, bytes);
}

void TransactionAssembler::hold(OpenTransaction& t, std::size_t bytes) {
    if (piece_bytes_ == 0 || stream_block_xid_) {
        return;
    }
    t.held_bytes += bytes;
    if (t.held_bytes >= piece_bytes_) {
        hand_out_piece(t);
    }
}

void TransactionAssembler::hand_out_piece(OpenTransaction& t) {
    SourceTransaction piece;
    piece.source_side = t.txn.source_side;
    piece.xid = t.txn.xid;
    piece.commit_lsn = t.txn.commit_lsn;
    piece.commit_time = t.txn.commit_time;
    piece.origin = t.txn.origin;
    piece.origin_lsn = t.txn.origin_lsn;
    piece.in_pieces = true;
    piece.first_place = t.handed_out;
    piece.changes = std::exchange(t.txn.changes, {});
    piece.messages = std::exchange(t.txn.messages, {});
    t.handed_out += static_cast<std::uint32_t>(piece.changes.size());
    t.held_bytes = 0;
    t.in_pieces = true;
    pieces_.push_back(std::move(piece));
}

std::optional<SourceTransaction> TransactionAssembler::feed(std::string_view payload) {
    if (open_ && open_->skipping_changes && !stream_block_xid_ && !payload.empty()) {
        switch (payload.front()) {
            case 'I':  // Insert, Update, Delete, Truncate, Message
            case 'U':
            case 'D':
            case 'T':
            case 'M':
                return std::nullopt;
            default:
                break;
        }
    }
    return apply(decode_message(payload, stream_block_xid_.has_value()));
}

std::optional<SourceTransaction> TransactionAssembler::apply(Message message) {
    std::optional<SourceTransaction> committed;
    std::visit(
        [&](auto&& m) {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, BeginMessage>) {
                if (open_ || stream_block_xid_) {
                    throw Error(ErrorKind::Protocol, "Begin inside an open transaction")
                        .with("side", side_)
                        .with("xid", std::to_string(m.xid));
                }
                open_.emplace();
                open_->txn.source_side = side_;
                open_->txn.xid = m.xid;
                open_->txn.commit_lsn = m.final_lsn;
                open_->txn.commit_time = m.commit_time;
            } else if constexpr (std::is_same_v<T, CommitMessage>) {
                if (!open_) {
                    throw Error(ErrorKind::Protocol, "Commit without Begin")
                        .with("side", side_)
                        .with("lsn", m.commit_lsn.to_string());
                }
                open_->txn.commit_lsn = m.commit_lsn;
                open_->txn.end_lsn = m.end_lsn;
                open_->txn.commit_time = m.commit_time;
                if (open_->in_pieces) {
                    // The last piece: what is still held.
                    open_->txn.in_pieces = true;
                    open_->txn.first_place = open_->handed_out;
                }
                committed = std::move(open_->txn);
                open_.reset();
            } else if constexpr (std::is_same_v<T, OriginMessage>) {
                OpenTransaction& t = current("Origin");
                t.skipping_changes = skipped_origins_ && skipped_origins_(m.name);
                t.txn.origin = m.name;
                t.txn.origin_lsn = m.origin_lsn;
            } else if constexpr (std::is_same_v<T, RelationMessage>) {
                if (auto keys = primary_keys_.find(m.table.relation_oid);
                    keys != primary_keys_.end()) {
                    for (auto& column : m.table.columns) {
                        column.primary_key = std::find(keys->second.begin(), keys->second.end(),
                                                       column.name) != keys->second.end();
                    }
                }
                relations_[m.table.relation_oid] =
                    std::make_shared<const TableInfo>(std::move(m.table));
            } else if constexpr (std::is_same_v<T, TypeMessage>) {
                types_[m.type_oid] = m.schema + "." + m.name;
            } else if constexpr (std::is_same_v<T, InsertMessage>) {
                ChangeEvent c;
                c.op = ChangeOp::Insert;
                c.table = relation(m.relation_oid, "Insert");
                c.new_row = checked_row(std::move(m.new_row), *c.table, "Insert");
                add_change(std::move(c), m.xid, "Insert");
            } else if constexpr (std::is_same_v<T, UpdateMessage>) {
                ChangeEvent c;
                c.op = ChangeOp::Update;
                c.table = relation(m.relation_oid, "Update");
                if (m.old_row) {
                    c.old_row = checked_row(std::move(*m.old_row), *c.table, "Update");
                    c.old_is_key_only = m.old_is_key_only;
                }
                c.new_row = checked_row(std::move(m.new_row), *c.table, "Update");
                add_change(std::move(c), m.xid, "Update");
            } else if constexpr (std::is_same_v<T, DeleteMessage>) {
                ChangeEvent c;
                c.op = ChangeOp::Delete;
                c.table = relation(m.relation_oid, "Delete");
                c.old_row = checked_row(std::move(m.old_row), *c.table, "Delete");
                c.old_is_key_only = m.old_is_key_only;
                add_change(std::move(c), m.xid, "Delete");
            } else if constexpr (std::is_same_v<T, TruncateMessage>) {
                ChangeEvent c;
                c.op = ChangeOp::Truncate;
                for (auto oid : m.relation_oids) {
                    c.truncated.push_back(relation(oid, "Truncate"));
                }
                if (c.truncated.empty()) {
                    throw Error(ErrorKind::Protocol, "Truncate message names no relation")
                        .with("side", side_);
                }
                c.table = c.truncated.front();
                c.truncate_cascade = m.cascade;
                c.truncate_restart_identity = m.restart_identity;
                add_change(std::move(c), m.xid, "Truncate");
            } else if constexpr (std::is_same_v<T, LogicalDecodingMessage>) {
                if (!m.transactional) {
                    standalone_messages_.push_back(
                        LogicalMessage{m.lsn, std::move(m.prefix), std::move(m.content)});
                    return;
                }
                OpenTransaction& t = current("Message");
                if (stream_block_xid_) {
                    t.message_xids.push_back(m.xid.value_or(*stream_block_xid_));
                }
                const std::size_t bytes = 64 + m.prefix.size() + m.content.size();
                t.txn.messages.push_back(
                    LogicalMessage{m.lsn, std::move(m.prefix), std::move(m.content)});
                hold(t, bytes);
            } else if constexpr (std::is_same_v<T, StreamStartMessage>) {
                if (open_ || stream_block_xid_) {
                    throw Error(ErrorKind::Protocol, "Stream Start inside an open transaction")
                        .with("side", side_)
                        .with("xid", std::to_string(m.xid));
                }
                auto [it, inserted] = streams_.try_emplace(m.xid);
                if (inserted) {
                    it->second.txn.source_side = side_;
                    it->second.txn.xid = m.xid;
                    it->second.txn.streamed = true;
                }
                stream_block_xid_ = m.xid;
            } else if constexpr (std::is_same_v<T, StreamStopMessage>) {
                if (!stream_block_xid_) {
                    throw Error(ErrorKind::Protocol, "Stream Stop without Stream Start")
                        .with("side", side_);
                }
                stream_block_xid_.reset();
            } else if constexpr (std::is_same_v<T, StreamCommitMessage>) {
                auto it = streams_.find(m.xid);
                if (stream_block_xid_ || it == streams_.end()) {
                    throw Error(ErrorKind::Protocol,
                                "Stream Commit for a transaction that was not streamed")
                        .with("side", side_)
                        .with("xid", std::to_string(m.xid));
                }
                SourceTransaction txn = std::move(it->second.txn);
                streams_.erase(it);
                txn.commit_lsn = m.commit_lsn;
                txn.end_lsn = m.end_lsn;
                txn.commit_time = m.commit_time;
                committed = std::move(txn);
            } else if constexpr (std::is_same_v<T, StreamAbortMessage>) {
                auto it = streams_.find(m.xid);
                if (stream_block_xid_) {
                    throw Error(ErrorKind::Protocol, "Stream Abort inside a stream block")
                        .with("side", side_);
                }
                if (it == streams_.end()) {
                    return;  // an abort of a transaction whose chunks carried no changes
                }
                if (m.subxid == m.xid) {
                    streams_.erase(it);
                    return;
                }
                OpenTransaction& t = it->second;
                erase_subtransaction(t.txn.changes, t.change_xids, m.subxid);
                erase_subtransaction(t.txn.messages, t.message_xids, m.subxid);
            }
        },
        std::move(message));
    return committed;
}

}  // namespace pgbridge::pgoutput
