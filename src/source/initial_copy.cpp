#include <chrono>
#include <optional>
#include <unistd.h>

#include <fmt/format.h>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/core/wait_for_stop.hpp>
#include <pgbridge/pg/estimated_rows.hpp>
#include <pgbridge/source/initial_copy.hpp>
#include <pgbridge/source/replication_connection.hpp>

namespace pgbridge::source {
namespace {

// The table as the source's catalog describes it, as pgoutput would.
std::shared_ptr<const TableInfo> describe(pg::Connection& conn, const QualifiedName& name) {
    const auto rel = conn.exec(
        "SELECT c.oid, c.relreplident FROM pg_class c"
        "  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
        {name.schema, name.name});
    if (rel.rows() != 1) {
        throw Error(ErrorKind::Setup, "synced table does not exist").with("table", name.display());
    }
    auto info = std::make_shared<TableInfo>();
    info->relation_oid = static_cast<std::uint32_t>(std::stoul(std::string(rel.value(0, 0))));
    info->schema = name.schema;
    info->name = name.name;
    info->replica_identity = rel.value(0, 1).empty() ? 'd' : rel.value(0, 1)[0];
    const auto cols = conn.exec(
        "SELECT a.attname, a.atttypid, a.atttypmod,"
        "       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary"
        "                 AND a.attnum = ANY (i.indkey))"
        "  FROM pg_attribute a WHERE a.attrelid = $1::oid AND a.attnum > 0"
        "   AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
        {std::string(rel.value(0, 0))});
    for (int r = 0; r < cols.rows(); ++r) {
        ColumnInfo c;
        c.name = std::string(cols.value(r, 0));
        c.type_oid = static_cast<std::uint32_t>(std::stoul(std::string(cols.value(r, 1))));
        c.type_modifier = std::stoi(std::string(cols.value(r, 2)));
        c.primary_key = cols.value(r, 3) == "t";
        c.key = info->replica_identity == 'f' || c.primary_key;
        info->columns.push_back(std::move(c));
    }
    return info;
}

// Writes pgbridge.copy_progress from a session of its own (the copy reads in a read-only
// snapshot). Progress is for people: a write that fails is logged and the copy goes on.
class ProgressWriter {
  public:
    ProgressWriter(const pg::ConnectOptions& connect, std::string bridge, std::string side)
        : connect_(connect), bridge_(std::move(bridge)), side_(std::move(side)) {}

    void start(const std::string& table, std::uint64_t estimated) {
        estimated_ = estimated;
        rows_ = 0;
        write(table,
              "INSERT INTO pgbridge.copy_progress"
              "       (bridge, table_name, rows_copied, rows_estimated, started_at, updated_at)"
              " VALUES ($1, $2, $3, $4, now(), now())"
              " ON CONFLICT (bridge, table_name) DO UPDATE"
              " SET rows_copied = EXCLUDED.rows_copied, rows_estimated = EXCLUDED.rows_estimated,"
              "     started_at = now(), updated_at = now()");
    }

    // Every few seconds at most, and always with `force` (the table is read).
    void advance(const std::string& table, std::uint64_t rows, bool force) {
        rows_ = rows;
        if (!force && std::chrono::steady_clock::now() < next_) {
            return;
        }
        write(table,
              "UPDATE pgbridge.copy_progress SET rows_copied = $3, rows_estimated = $4,"
              "       updated_at = now() WHERE bridge = $1 AND table_name = $2");
    }

    void finish(pg::Connection& conn, const std::string& table) {
        conn.exec("DELETE FROM pgbridge.copy_progress WHERE bridge = $1 AND table_name = $2",
                  {bridge_, table});
    }

  private:
    void write(const std::string& table, const char* sql) {
        next_ = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        try {
            if (!conn_) {
                conn_ = pg::Connection::open(connect_);
            }
            conn_->exec(sql, {bridge_, table, std::to_string(rows_), std::to_string(estimated_)});
        } catch (const Error& e) {
            conn_.reset();
            log::debug("copy", "could not record the copy's progress",
                       {{"side", side_}, {"table", table}, {"error", e.what()}});
        }
    }

    pg::ConnectOptions connect_;
    std::string bridge_;
    std::string side_;
    std::optional<pg::Connection> conn_;
    std::uint64_t rows_ = 0;
    std::uint64_t estimated_ = 0;
    std::chrono::steady_clock::time_point next_;
};

}  // namespace

InitialCopy::InitialCopy(InitialCopyOptions options, TransactionSink& sink)
    : options_(std::move(options)), sink_(sink) {}

std::uint64_t InitialCopy::run(std::stop_token stop) {
    const std::string& side = options_.side;
    pg::Connection conn = pg::Connection::open(options_.connect);
    const auto done = conn.exec("SELECT table_name FROM pgbridge.sync_state WHERE bridge = $1",
                                {options_.bridge});
    std::vector<const TableConfig*> to_copy;
    for (const auto& table : options_.tables) {
        const QualifiedName name = table.name_on(side);
        bool copied = false;
        for (int r = 0; r < done.rows(); ++r) {
            copied = copied || done.value(r, 0) == name.display();
        }
        if (!copied) {
            to_copy.push_back(&table);
        }
    }
    if (to_copy.empty()) {
        return 0;
    }

    pg::ConnectOptions replication = options_.connect;
    replication.replication = true;
    ReplicationConnection walsender(replication);
    const auto snapshot = walsender.create_temporary_slot_with_snapshot(
        fmt::format("pgbridge_{}_{}_copy_{}", options_.bridge, side, ::getpid()));
    log::info("copy", "initial copy from a snapshot",
              {{"side", side},
               {"tables", std::to_string(to_copy.size())},
               {"consistent_lsn", snapshot.consistent_point.to_string()}});

    conn.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    // SET TRANSACTION SNAPSHOT takes no parameters; the name comes from the server and is
    // made of hex digits and dashes, which the check below holds it to.
    if (snapshot.name.find_first_not_of("0123456789ABCDEFabcdef-") != std::string::npos) {
        throw Error(ErrorKind::Protocol, "unexpected snapshot name from the server")
            .with("side", side);
    }
    conn.exec("SET TRANSACTION SNAPSHOT '" + snapshot.name + "'");
    std::vector<std::uint64_t> estimated;  // rows, by table of to_copy
    std::uint64_t estimated_total = 0;
    for (const TableConfig* config : to_copy) {
        estimated.push_back(pg::estimated_rows(conn, config->name_on(side).quoted()));
        estimated_total += estimated.back();
    }
    progress_.rows_estimated = estimated_total;
    std::uint64_t total = 0;
    ColumnFilter excluded(options_.excluded_columns);
    // Every copied transaction commits "at" the consistent point; distinct end positions after
    // it keep the messages apart (ids, durability) without moving anything on the server.
    std::uint64_t sequence = 0;
    std::vector<std::pair<QualifiedName, std::uint64_t>> copied;
    ProgressWriter progress(options_.connect, options_.bridge, side);
    for (std::size_t i = 0; i < to_copy.size(); ++i) {
        const TableConfig* config = to_copy[i];
        const QualifiedName name = config->name_on(side);
        progress.start(name.display(), estimated[i]);
        const auto table = describe(conn, name);
        std::string list;
        for (const auto& c : table->columns) {
            list += (list.empty() ? "" : ", ") + quote_identifier(c.name);
        }
        // The rows the publication's row filter lets through, and only those.
        const auto filter = config->row_filter_on(side);
        conn.exec("DECLARE pgbridge_copy NO SCROLL CURSOR FOR SELECT " + list + " FROM " +
                  name.quoted() + (filter ? " WHERE (" + *filter + ")" : ""));
        std::uint64_t rows = 0;
        for (;;) {
            if (stop.stop_requested()) {
                return total;
            }
            const pg::Result chunk = conn.exec(
                fmt::format("FETCH {} FROM pgbridge_copy", options_.rows_per_transaction));
            if (chunk.rows() == 0) {
                break;
            }
            SourceTransaction txn;
            txn.source_side = side;
            txn.commit_lsn = snapshot.consistent_point;
            txn.end_lsn = Lsn(snapshot.consistent_point.value + ++sequence);
            txn.commit_time = 0;  // unknown: meets the other side's rows as an equal
            for (int r = 0; r < chunk.rows(); ++r) {
                ChangeEvent change;
                change.op = ChangeOp::Insert;
                change.table = table;
                Row row;
                for (int c = 0; c < chunk.columns(); ++c) {
                    row.push_back(chunk.is_null(r, c)
                                      ? Value{}
                                      : Value{Value::Kind::Text, std::string(chunk.value(r, c))});
                }
                change.new_row = std::move(row);
                txn.changes.push_back(std::move(change));
            }
            rows += static_cast<std::uint64_t>(chunk.rows());
            progress_.rows_copied += static_cast<std::uint64_t>(chunk.rows());
            progress.advance(name.display(), rows, false);
            excluded.apply(txn);
            sink_.deliver(std::move(txn));
        }
        conn.exec("CLOSE pgbridge_copy");
        progress.advance(name.display(), rows, true);
        total += rows;
        copied.emplace_back(name, rows);
        log::info("copy", "table read",
                  {{"side", side}, {"table", name.display()}, {"rows", std::to_string(rows)}});
    }
    conn.exec("COMMIT");

    // Recorded only once the broker has confirmed every message of the copy.
    sink_.flush();
    const Lsn last(snapshot.consistent_point.value + sequence);
    while (sequence > 0 && sink_.durable_lsn() < last) {
        if (stop.stop_requested()) {
            return total;
        }
        sink_.settle(std::chrono::milliseconds(500));
        if (sink_.durable_lsn() < last) {
            // A sink that cannot settle (the broker away) is not asked again in a spin.
            wait_for_stop(stop, std::chrono::milliseconds(50));
        }
    }
    for (const auto& [name, rows] : copied) {
        conn.exec(
            "INSERT INTO pgbridge.sync_state"
            "       (bridge, table_name, snapshot_lsn, rows_copied, slot_generation)"
            " VALUES ($1, $2, $3::pg_lsn, $4, (SELECT generation FROM pgbridge.slot_state"
            "                                   WHERE bridge = $1 AND slot_name = $5))"
            " ON CONFLICT (bridge, table_name) DO UPDATE"
            " SET snapshot_lsn = EXCLUDED.snapshot_lsn, rows_copied = EXCLUDED.rows_copied,"
            "     slot_generation = EXCLUDED.slot_generation, copied_at = now()",
            {options_.bridge, name.display(), snapshot.consistent_point.to_string(),
             std::to_string(rows), names::slot(options_.bridge, side)});
        progress.finish(conn, name.display());
    }
    log::info("copy", "initial copy confirmed by the broker",
              {{"side", side}, {"rows", std::to_string(total)}});
    return total;
}

}  // namespace pgbridge::source
