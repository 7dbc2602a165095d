#pragma once

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <pgbridge/config/amqp_url.hpp>
#include <pgbridge/config/cron_schedule.hpp>
#include <pgbridge/config/signing_keys.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/core/qualified_name.hpp>
#include <pgbridge/core/secret.hpp>

namespace pgbridge {

inline constexpr std::string_view kDefaultConfigPath = "/etc/pgbridge/pgbridge.toml";

// Where a value was written, for messages that send the DBA to the right line.
struct SourceLocation {
    std::string file;
    int line = 0;
    int column = 0;
};

// The RabbitMQ broker (a node, or a cluster's nodes) at one side's site, where the bridge
// has one per site joined by a shovel (docs/topologies.md, "Two sites"): `[sides.NAME]
// rabbitmq_url` or `rabbitmq_urls`, and `rabbitmq_password_file`.
struct SiteBroker {
    AmqpUrl url;
    std::vector<AmqpUrl> failover_urls;
    std::optional<std::filesystem::path> password_file;
};

struct SideConfig {
    std::string name;
    // As written; may contain a password, so print it only through redact_conninfo().
    std::string conninfo;
    std::optional<std::filesystem::path> password_file;
    Secret password;  // contents of password_file
    SourceLocation where;
    // This side's own broker; none: [rabbitmq]'s.
    std::optional<SiteBroker> broker;
};

struct RabbitConfig {
    // `url`, or the first of `urls`; the other nodes of a cluster follow in failover_urls.
    // Every node shares the scheme, user, password and virtual host of the first.
    AmqpUrl url;
    std::vector<AmqpUrl> failover_urls;
    std::optional<std::filesystem::path> password_file;
    int max_priority = 10;
    // Classic queues are priority queues on one node; quorum queues are replicated across the
    // cluster but have no x-max-priority on RabbitMQ 3.x, so the priorities go in bands: one
    // quorum queue each, drained highest first (docs/topologies.md).
    enum class QueueType { Classic, Quorum };
    QueueType queue_type = QueueType::Classic;
    // Lower bounds of the bands above the lowest, highest first ([rabbitmq] priority_bands;
    // quorum only). [5]: priorities 5 and up before 0 to 4, as RabbitMQ 4's quorum queues
    // split them.
    std::vector<int> priority_bands;
    // The largest message pgbridge publishes, and the largest body a consumer reads: a
    // larger one is dead-lettered unread. A source transaction larger than this travels in
    // chunks (docs/message-format.md, "Large transactions").
    std::size_t max_message_bytes = 8 * 1024 * 1024;
    // TLS (amqps://): the CA that signed the broker's certificate, and optionally a client
    // certificate and key. Peer and host name verification stay on unless turned off.
    std::optional<std::filesystem::path> ca_file;
    std::optional<std::filesystem::path> cert_file;
    std::optional<std::filesystem::path> key_file;
    bool verify_peer = true;
    // Messages signed with the first key and verified with any (docs/security.md). Without
    // one, whatever can publish to the bridge's exchange is trusted.
    std::optional<std::filesystem::path> signing_key_file;
    std::vector<SigningKey> signing_keys;

    // Which broker this is, whatever user or node order names it: the first node's host,
    // port and virtual host. Two sides with the same identity share one broker.
    std::string identity() const;
};

struct EngineConfig {
    int batch_size = 100;
    int max_retries = 3;
    int retry_delay_ms = 1000;
    int timeout_ms = 30000;
    // Shards of each direction's apply, each with its own queue, origin and applier
    // (docs/topologies.md, "Sharded apply").
    int apply_workers = 1;
    // Shards (1..apply_workers) whose apply runs in `pgbridge run --apply-only --shard I/N`
    // workers rather than in `pgbridge run`, in both directions.
    std::vector<int> remote_apply_shards;

    // Whether shard `number` (1-based) is left to an apply-only worker.
    bool applied_remotely(int number) const {
        return std::find(remote_apply_shards.begin(), remote_apply_shards.end(), number) !=
               remote_apply_shards.end();
    }
};

// [log]: what the daemon logs and in which form; -v on the command line lowers the level,
// SIGHUP re-reads both. `engine.log_level` is the older spelling of `level`.
struct LogConfig {
    log::Level level = log::Level::Info;
    log::Format format = log::Format::Text;
};

// When `pgbridge status` calls the bridge degraded rather than healthy.
struct StatusConfig {
    int max_lag_seconds = 60;         // seconds behind, per direction
    int max_queued_messages = 10000;  // waiting in a direction's queue (and its retry queue)
    int max_slot_lag_mb = 1024;       // WAL a slot holds that pgbridge has not confirmed
};

// [verify]: when `pgbridge run` compares the sides by itself (docs/verify.md).
struct VerifyConfig {
    std::optional<CronSchedule> schedule;  // off when unset
    bool auto_repair = false;              // repair what the scheduled verify finds
};

// [sync]: what `pgbridge run` does when a side's slot no longer matches the copies made
// through it (created again, lost, or moved by hand: changes in between were never captured;
// docs/initial-sync.md, "When a slot is created again").
struct SyncConfig {
    enum class Recopy {
        Auto,  // repair that side's tables by the conflict rules, then go on
        Ask,   // stream, but report `degraded` with the command until the DBA runs it
    };
    Recopy recopy = Recopy::Auto;
};

// [history]: every change pgbridge captures or applies, kept in pgbridge.history on the side
// it changed for `retention` (docs/history.md); off when unset.
struct HistoryConfig {
    std::optional<std::chrono::seconds> retention;
    bool enabled() const { return retention.has_value(); }
};

// How one side names a synced table and its columns, when it differs from the table's own
// (canonical) names. Columns not listed keep their canonical name.
struct TableSideConfig {
    QualifiedName name;
    std::map<std::string, std::string> columns;  // canonical column -> column on this side
    std::optional<std::string> row_filter;       // `where` for this side, in its own names
};

struct TableConfig {
    // How rows inserted on both sides are kept from taking the same key (docs/setup.md, "Keys
    // written on both sides").
    enum class Keys {
        Checked,   // setup refuses key columns fed by a sequence on both sides, unless partitioned
        Disjoint,  // keys = "disjoint": the application guarantees the sides never pick the same
    };

    QualifiedName name;  // canonical name, also the name on every side without a mapping
    int priority = 1;
    Keys keys = Keys::Checked;
    std::map<std::string, TableSideConfig, std::less<>> sides;
    SourceLocation where;
    // `where`: the rows synced, as an SQL condition on the table (a PostgreSQL 15 row filter
    // of the publication; the initial copy and verify read the same rows). A side may have its
    // own (its column names may differ).
    std::optional<std::string> row_filter;
    // `exclude_columns`: canonical names of columns not synced (capture leaves them out).
    std::set<std::string> excluded_columns;
    // `atomic_transactions`: with apply_workers > 1, every change of the table goes to the
    // first shard, so that a transaction's changes to such tables are applied together.
    bool atomic_transactions = false;
    // `history = false`: none of the table's changes go into pgbridge.history.
    bool history = true;

    QualifiedName name_on(std::string_view side) const;
    std::optional<std::string> row_filter_on(std::string_view side) const;
    std::string column_on(std::string_view side, const std::string& canonical_column) const;
    // Inverse of column_on: the canonical name of a column as the side calls it.
    std::string canonical_column(std::string_view side, const std::string& side_column) const;
};

enum class ConflictStrategy { LastWriteWins, SourcePriority, Manual };

std::string_view to_string(ConflictStrategy strategy) noexcept;
std::optional<ConflictStrategy> parse_conflict_strategy(std::string_view text) noexcept;

// One [conflicts.field_priority] entry: "column" for every table, or "schema.table.column".
struct FieldRule {
    std::optional<QualifiedName> table;
    std::string column;
    std::string winner;  // side name
    SourceLocation where;
};

struct ConflictsConfig {
    ConflictStrategy default_strategy = ConflictStrategy::LastWriteWins;
    // Every side exactly once, most trusted first. Completed from declaration order when the
    // file lists fewer sides (source_priority_as_written keeps what the file said).
    std::vector<std::string> source_priority;
    std::vector<std::string> source_priority_as_written;
    std::vector<FieldRule> field_priority;
};

struct Config {
    std::filesystem::path file;
    std::string bridge_name;
    std::vector<SideConfig> sides;  // exactly two, in the order the file declares them
    RabbitConfig rabbitmq;
    EngineConfig engine;
    LogConfig logging;
    StatusConfig status;
    VerifyConfig verify;
    SyncConfig sync;
    HistoryConfig history;
    // [metrics] listen: where `pgbridge run` serves Prometheus metrics; off when unset.
    std::optional<std::string> metrics_listen;
    // Who may read them and over what, for a port others can reach: HTTP basic auth
    // ([metrics] user and password_file) and HTTPS ([metrics] cert_file and key_file).
    struct MetricsAccess {
        std::string user;  // empty: no authentication
        Secret password;
        std::optional<std::filesystem::path> cert_file;  // both or neither: HTTPS
        std::optional<std::filesystem::path> key_file;
    } metrics_access;
    std::vector<TableConfig> tables;
    ConflictsConfig conflicts;
    // Things that load but that a DBA should fix (world-readable password file, password
    // inside a conninfo, ...).
    std::vector<std::string> warnings;

    const SideConfig& side(std::string_view name) const;  // throws Error(Internal) if unknown
    const SideConfig& other_side(std::string_view name) const;
    // The broker at `side`'s site: what its capture publishes to, and where the changes to be
    // applied on it wait. [rabbitmq], with the side's own nodes and password where it has a
    // broker of its own; every other setting (queue type, priorities, TLS files, signing keys)
    // is [rabbitmq]'s.
    RabbitConfig broker_of(std::string_view side) const;
    // Each distinct broker once (the first side's first): one, or one per site.
    std::vector<RabbitConfig> brokers() const;
    // Whether two sides' brokers are one (the first node's host, port and virtual host).
    bool same_broker(std::string_view side, std::string_view other) const;
    const TableConfig* find_table(const QualifiedName& canonical) const;
};

// Loads and validates a configuration file. Throws Error(ErrorKind::Config) whose message lists
// every problem found as "file:line:column: what was expected"; its context holds file, line
// and column of the first one.
Config load_config(const std::filesystem::path& file);

// The same from text, for tests and for reloading; source_name stands in for the file name.
// Relative password_file paths resolve against base_dir.
Config parse_config(std::string_view text, std::string source_name,
                    const std::filesystem::path& base_dir = ".");

}  // namespace pgbridge
