#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include <pgbridge/apply/apply_observer.hpp>
#include <pgbridge/apply/conflict_resolver.hpp>
#include <pgbridge/apply/target_table.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/core/versions_watermark.hpp>
#include <pgbridge/pg/connection.hpp>
#include <pgbridge/transport/consumer.hpp>

namespace pgbridge::apply {

struct ApplierOptions {
    std::string bridge;
    std::string source_side;
    std::string target_side;
    // The apply shard (0-based) of the direction this applier is, of `shards`
    // (docs/topologies.md, "Sharded apply"): its origin, its progress row, its parts.
    std::uint32_t shard = 0;
    std::uint32_t shards = 1;
    pg::ConnectOptions target;  // the runtime role on the target
    // The runtime role on the source: asked only whether a column the target lacks still
    // exists there (docs/schema-changes.md).
    pg::ConnectOptions source;
    std::vector<TableConfig> tables;
    // Attempts of one batch inside the applier when the server reports a transient failure
    // (deadlock, serialization, a key inserted locally between our read and our write), before
    // the consumer counts a failed attempt.
    int transient_attempts = 3;
    // Told about each committed batch (metrics); may be null.
    ApplyObserver* observer = nullptr;
    // How far the target side's capture has recorded the target's local writes
    // (docs/apply-design.md, "Local versions"). Null: no capture runs on the target and the
    // versions stored are taken as complete (tests of the applier alone, repair).
    std::shared_ptr<VersionsWatermark> local_versions;
    // How long one batch waits for it before the consumer tries the message again in place.
    std::chrono::milliseconds local_versions_wait{10000};
    // The target's capture runs in another process (`pgbridge run --apply-only`), which
    // learns how far it recorded from pgbridge.local_versions (apply/recorded_versions_poller):
    // a wait asks it, by a logical message in the target's WAL, to write that at once.
    bool request_announcement = false;
    // [history] on: each applied change goes into pgbridge.history too (tables with
    // `history = false` excepted), in the transaction that applies it.
    bool history = false;
};

struct ApplierStats {
    std::atomic<std::uint64_t> batches{0};
    std::atomic<std::uint64_t> inserted{0};
    std::atomic<std::uint64_t> updated{0};
    std::atomic<std::uint64_t> deleted{0};
    std::atomic<std::uint64_t> skipped{0};  // duplicates and superseded changes
    std::atomic<std::uint64_t> conflicts{0};
    std::atomic<std::uint64_t> pending_conflicts{0};
    std::atomic<std::uint64_t> transient_retries{0};
    std::atomic<std::uint64_t> schema_waits{0};
    // Batches that met a local write capture had not recorded yet, and waited for it.
    std::atomic<std::uint64_t> local_version_waits{0};
};

// Applies batches of one source side on the target (docs/apply-design.md): one target
// transaction per batch, in a session bound to the origin pgbridge_NAME_from_SOURCE, so that
// the target's capture drops what it writes. Each row change goes through the conflict
// resolver against the locked local row and its column versions; only the columns the
// resolver picks are written, and the versions and any conflict are recorded in the same
// transaction. Statements are pipelined: a batch costs two round trips, whatever its size.
class PostgresApplier final : public transport::BatchHandler {
  public:
    PostgresApplier(ApplierOptions options, ConflictRules rules);
    ~PostgresApplier() override;

    void apply(const transport::ChangeBatch& batch) override;
    // Connects to the target and reads the description of every synced table.
    void prepare() override;

    // Takes effect from the next batch (SIGHUP).
    void set_rules(ConflictRules rules);
    // The target's tables are described again from its catalog before the next batch.
    void reload_catalog() { reload_catalog_ = true; }

    const ApplierStats& stats() const { return stats_; }

  private:
    class Attempt;

    pg::Connection& connection();
    // The shard as pgbridge's tables number it (1..shards), as a statement parameter.
    std::string shard_number() const { return std::to_string(options_.shard + 1); }
    // A part of a large transaction: kept in pgbridge.transaction_parts, and once every part
    // is there, the whole transaction applied part by part in one target transaction.
    void keep_part(const transport::ChangeBatch& batch, const ConflictResolver& resolver);
    // Gives a kept part's changes the versions that travelled in later (or earlier) parts.
    void attach_late_versions(pg::Connection& conn, transport::ChangeBatch& part);
    // The config of the table a source change belongs to; throws Error(Setup) if none.
    const TableConfig& table_config_for(const TableInfo& source_table) const;
    // [history] on, and the table not excluded from it.
    bool keeps_history(const TargetTable& table) const;
    // Its description on the target, read from the catalog on first use (and again after the
    // target's tables changed).
    const TargetTable& target_for(const TableConfig& table);
    // Before a batch: forgets the description of each table whose source shape (the columns
    // of its Relation message) differs from the last one seen, so that it is read again.
    void note_source_shapes(const transport::ChangeBatch& batch);
    // Canonical names of the columns of `table` that neither side has any more.
    const std::set<std::string>& gone_columns(const TableConfig& table) const;
    // A column the target lacks (an Error with waiting_for = "column"): true if the source
    // has no such column either (then its values are left out from now on); false if it
    // does, and the apply waits for the target to have it (recorded for status).
    bool column_gone_from_both(const Error& missing);
    void record_waiting(const Error& missing) noexcept;
    void forget_session() noexcept;

    ApplierOptions options_;
    std::mutex rules_mutex_;
    std::shared_ptr<const ConflictResolver> resolver_;
    std::optional<pg::Connection> connection_;
    std::map<QualifiedName, TargetTable> targets_;  // by canonical name
    std::atomic<bool> reload_catalog_{false};
    // The source columns of each table as last seen, by the table's name on the source.
    std::map<QualifiedName, std::vector<std::string>> source_shapes_;
    std::map<QualifiedName, std::set<std::string>> gone_columns_;  // by canonical name
    std::map<std::string, std::string> prepared_;                  // SQL text -> statement name
    ApplierStats stats_;
    // Parts carrying late versions, decoded (their versions only), by part index: while a
    // large transaction is applied, consecutive parts mostly need the same ones.
    std::map<int, SourceTransaction> carriers_;
};

}  // namespace pgbridge::apply
