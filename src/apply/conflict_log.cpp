#include <nlohmann/json.hpp>

#include <pgbridge/apply/conflict_log.hpp>
#include <pgbridge/pg/array_literal.hpp>

namespace pgbridge::apply {
namespace {

// resolved_at and resolved_by of a conflict settled when it was recorded; NULL while pending.
const char* const kRecordConflict =
    "INSERT INTO pgbridge.conflicts (bridge, table_name, key, kind, columns, local_side,"
    " remote_side, local_values, remote_values, local_commit_time, remote_commit_time,"
    " remote_lsn, strategy, winner, status, resolved_at, resolved_by, note)"
    " VALUES ($1, $2, $3::jsonb, $4, $5::text[], $6, $7, $8::jsonb, $9::jsonb,"
    " $10::timestamptz, $11::timestamptz, $12::pg_lsn, $13, $14, $15,"
    " CASE WHEN $15 = 'resolved' THEN now() END, CASE WHEN $15 = 'resolved' THEN $16 END, $17)";

// The columns of a ConflictRecord, in its order.
const char* const kRecordColumns =
    "SELECT id, detected_at::text, table_name, key::text, kind, array_to_json(columns)::text,"
    " local_side, remote_side, local_values::text, remote_values::text,"
    " local_commit_time::text, remote_commit_time::text, remote_lsn::text, strategy, winner,"
    " status, resolved_at::text, resolved_by, note FROM pgbridge.conflicts";

std::string text_array(const std::vector<std::string>& elements) {
    return pg::array_literal({elements.begin(), elements.end()});
}

// A row of kRecordColumns.
ConflictRecord record_at(const pg::Result& r, int i) {
    const auto text = [&](int c) { return std::string(r.value(i, c)); };
    const auto optional = [&](int c) { return r.optional_value(i, c); };
    return ConflictRecord{.id = text(0),
                          .detected_at = text(1),
                          .table = text(2),
                          .key = text(3),
                          .kind = text(4),
                          .columns = text(5),
                          .local_side = text(6),
                          .remote_side = text(7),
                          .local_values = optional(8),
                          .remote_values = optional(9),
                          .local_commit_time = optional(10),
                          .remote_commit_time = optional(11),
                          .remote_lsn = optional(12),
                          .strategy = text(13),
                          .winner = optional(14),
                          .status = text(15),
                          .resolved_at = optional(16),
                          .resolved_by = optional(17),
                          .note = optional(18)};
}

std::vector<ConflictRecord> records(const pg::Result& r) {
    std::vector<ConflictRecord> out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) {
        out.push_back(record_at(r, i));
    }
    return out;
}

}  // namespace

ConflictInsert record_conflict_statement(NewConflict c) {
    const bool settled = c.winner.has_value();
    pg::Params params{std::move(c.bridge),
                      std::move(c.table),
                      std::move(c.key),
                      std::move(c.kind),
                      text_array(c.columns),
                      std::move(c.local_side),
                      std::move(c.remote_side),
                      std::move(c.local_values),
                      std::move(c.remote_values),
                      std::move(c.local_commit_time),
                      std::move(c.remote_commit_time),
                      std::move(c.remote_lsn),
                      std::move(c.strategy),
                      std::move(c.winner),
                      settled ? "resolved" : "pending",
                      std::move(c.settled_by),
                      std::move(c.note)};
    return ConflictInsert{kRecordConflict, std::move(params)};
}

void record_conflict(pg::Connection& connection, NewConflict conflict) {
    const ConflictInsert insert = record_conflict_statement(std::move(conflict));
    connection.exec(insert.sql, insert.params);
}

ConflictQuery list_conflicts_query(const ConflictFilter& filter) {
    ConflictQuery q{kRecordColumns, {}};
    std::string where;
    if (filter.pending_only) {
        where += " WHERE status = 'pending'";
    }
    if (!filter.table.empty()) {
        q.params.push_back(filter.table);
        where += (where.empty() ? " WHERE" : " AND") + std::string(" table_name = $") +
                 std::to_string(q.params.size());
    }
    q.params.push_back(std::to_string(filter.limit));
    q.sql += where + " ORDER BY id DESC LIMIT $" + std::to_string(q.params.size()) + "::int";
    return q;
}

std::vector<ConflictRecord> list_conflicts(pg::Connection& connection,
                                           const ConflictFilter& filter) {
    const ConflictQuery q = list_conflicts_query(filter);
    return records(connection.exec(q.sql, q.params));
}

std::optional<ConflictRecord> find_conflict(pg::Connection& connection, const std::string& id) {
    std::vector<ConflictRecord> found =
        records(connection.exec(std::string(kRecordColumns) + " WHERE id = $1", {id}));
    if (found.empty()) {
        return std::nullopt;
    }
    return std::move(found.front());
}

long long mark_resolved(pg::Connection& connection, const ManualResolution& resolution) {
    const pg::Params params{resolution.winner, resolution.table, resolution.key,
                            text_array(resolution.columns)};
    // A record names the columns it is about: one of them resolved resolves the record.
    return connection
        .exec(
            "UPDATE pgbridge.conflicts SET status = 'resolved', winner = $1,"
            " resolved_at = now(), resolved_by = current_user,"
            " note = 'resolved by hand: took ' || $1"
            " WHERE status = 'pending' AND table_name = $2 AND key = $3::jsonb"
            "   AND columns && $4::text[]",
            params)
        .affected_rows();
}

std::uint64_t count_pending_conflicts(pg::Connection& connection) {
    const pg::Result r =
        connection.exec("SELECT count(*) FROM pgbridge.conflicts WHERE status = 'pending'");
    return std::stoull(std::string(r.value(0, 0)));
}

std::vector<std::vector<std::string>> pending_conflict_keys(pg::Connection& connection,
                                                            const std::string& bridge,
                                                            const TargetTable& table) {
    const pg::Result r = connection.exec(
        "SELECT key::text FROM pgbridge.conflicts"
        " WHERE bridge = $1 AND table_name = $2 AND status = 'pending'",
        {bridge, table.name.display()});
    std::vector<std::vector<std::string>> out;
    for (int i = 0; i < r.rows(); ++i) {
        // A key this table's columns do not make (the table's key changed since) explains
        // no difference of today's rows.
        if (auto key = parse_conflict_key(table, r.value(i, 0))) {
            out.push_back(std::move(*key));
        }
    }
    return out;
}

std::optional<std::vector<std::string>> parse_conflict_key(const TargetTable& table,
                                                           std::string_view key) {
    const auto doc = nlohmann::json::parse(key, nullptr, false);
    if (!doc.is_object()) {
        return std::nullopt;
    }
    std::vector<std::string> out;
    for (const std::size_t k : table.key) {
        const auto it = doc.find(table.columns[k].name);
        if (it == doc.end() || !it->is_string()) {
            return std::nullopt;
        }
        out.push_back(it->get<std::string>());
    }
    return out;
}

}  // namespace pgbridge::apply
