#include <pgbridge/apply/apply_statements.hpp>
#include <pgbridge/core/key_shard.hpp>

namespace pgbridge::apply {
namespace {

std::string param(std::size_t n) {
    return "$" + std::to_string(n);
}

std::string key_condition(const TargetTable& table, std::size_t first_param) {
    std::string out;
    for (std::size_t k = 0; k < table.key.size(); ++k) {
        out += (k > 0 ? " AND " : "") + quote_identifier(table.columns[table.key[k]].name) + " = " +
               param(first_param + k);
    }
    return out;
}

// unnest($first::int4[], $first+1::text[], ...) AS k(ord, k0, k1, ...)
std::string keys_source(const TargetTable& table, std::size_t first_param) {
    std::string args = param(first_param) + "::int4[]";
    std::string names = "ord";
    for (std::size_t k = 0; k < table.key.size(); ++k) {
        args += ", " + param(first_param + 1 + k) + "::text[]";
        names += ", k" + std::to_string(k);
    }
    return "unnest(" + args + ") AS k(" + names + ")";
}

std::string typed_key(const TargetTable& table, std::size_t k) {
    return "CAST(k.k" + std::to_string(k) + " AS " + table.columns[table.key[k]].type + ")";
}

std::string versions_key(const TargetTable& table) {
    std::string out = "jsonb_build_array(";
    for (std::size_t k = 0; k < table.key.size(); ++k) {
        out += (k > 0 ? ", " : "") + typed_key(table, k);
    }
    return out + ")";
}

}  // namespace

std::string insert_statement(const TargetTable& table, const std::vector<std::size_t>& columns) {
    std::string names;
    std::string values;
    for (std::size_t i = 0; i < columns.size(); ++i) {
        names += (i > 0 ? ", " : "") + quote_identifier(table.columns[columns[i]].name);
        values += (i > 0 ? ", " : "") + param(i + 1);
    }
    // The key comes from the source: a GENERATED ALWAYS identity column here takes it too.
    return "INSERT INTO " + table.name.quoted() + " (" + names +
           ") OVERRIDING SYSTEM VALUE VALUES (" + values + ")";
}

std::string update_statement(const TargetTable& table, const std::vector<std::size_t>& columns) {
    std::string sets;
    for (std::size_t i = 0; i < columns.size(); ++i) {
        sets += (i > 0 ? ", " : "") + quote_identifier(table.columns[columns[i]].name) + " = " +
                param(i + 1);
    }
    return "UPDATE " + table.name.quoted() + " SET " + sets + " WHERE " +
           key_condition(table, columns.size() + 1);
}

std::string delete_statement(const TargetTable& table) {
    return "DELETE FROM " + table.name.quoted() + " WHERE " + key_condition(table, 1);
}

std::string truncate_statement(const TargetTable& table, std::uint32_t shard,
                               std::uint32_t shards) {
    // No alias for the table: the row filter may name it (notes.flag, public.notes.flag), as a
    // publication's WHERE can, and an alias would hide that name. Its key columns are named
    // with schema and table inside the subquery, which nothing there can shadow.
    const std::string target = table.name.quoted();
    std::string key = "jsonb_build_array(";
    for (std::size_t k = 0; k < table.key.size(); ++k) {
        key +=
            (k > 0 ? ", " : "") + target + "." + quote_identifier(table.columns[table.key[k]].name);
    }
    key += ")";
    // Only the rows this bridge syncs: a row outside the table's row filter was never the
    // source's to remove.
    std::string synced = table.row_filter ? "(" + *table.row_filter + ") AND " : "";
    if (shards > 1) {
        std::vector<std::string> key_columns;
        for (const std::size_t k : table.key) {
            key_columns.push_back(target + "." + quote_identifier(table.columns[k].name));
        }
        synced += key_shard_sql(key_columns, shards) + " = " + std::to_string(shard) + " AND ";
    }
    return "DELETE FROM " + target + " WHERE " + synced +
           "NOT EXISTS (SELECT 1 FROM pgbridge.row_versions v"
           " CROSS JOIN LATERAL jsonb_each(v.columns) AS e(name, entry)"
           " WHERE v.table_name = $1 AND v.key = " +
           key +
           " AND e.entry ->> 'w' = 'l' AND coalesce((e.entry ->> 't')::int8 >"
           " extract(epoch FROM $2::timestamptz) * 1000000, pg_xact_commit_timestamp((e.entry"
           " ->> 'x')::xid8::xid) > $2::timestamptz))";
}

// A partitioned table's partitions count as the table: a key may refer to one partition, and
// a partitioned referencing table's key is cloned onto each of its partitions.
// (pg_partition_tree lists nothing for a table that is not partitioned.)
const char* const kReadReachingReferences =
    "WITH truncated AS (SELECT r.rel AS relid FROM unnest($1::pg_catalog.regclass[]) AS r(rel)"
    "  UNION SELECT p.relid FROM unnest($1::pg_catalog.regclass[]) AS r(rel)"
    "  CROSS JOIN LATERAL pg_catalog.pg_partition_tree(r.rel) AS p)"
    "SELECT c.conrelid::pg_catalog.regclass::text, c.confrelid::pg_catalog.regclass::text"
    "  FROM pg_catalog.pg_constraint c"
    " WHERE c.contype = 'f' AND c.confdeltype IN ('c', 'n', 'd')"
    "   AND c.confrelid IN (SELECT relid FROM truncated)"
    "   AND c.conrelid NOT IN (SELECT relid FROM truncated)"
    " ORDER BY 1, 2";

const char* const kReadTruncationStatement =
    "SELECT (extract(epoch FROM pg_xact_commit_timestamp(xid::xid)) * 1000000)::int8"
    "  FROM pgbridge.truncations WHERE table_name = $1";

// Each key is looked up on its own (a LATERAL subquery with its own lock), which keeps the
// plan an index lookup per key: joined with the keys as a set, the planner may hash the whole
// table instead, which grows with the table rather than with the batch.
std::string lock_rows_statement(const TargetTable& table) {
    std::string columns;
    for (const auto& c : table.columns) {
        columns += (columns.empty() ? "" : ", ") + quote_identifier(c.name);
    }
    std::string match;
    for (std::size_t k = 0; k < table.key.size(); ++k) {
        match += (k > 0 ? " AND " : "") + quote_identifier(table.columns[table.key[k]].name) +
                 " = " + typed_key(table, k);
    }
    // The row's xmin, and whether a local session wrote it (origin 0; NULL when older than
    // commit timestamps): the applier compares it with what capture recorded for the key.
    return "SELECT k.ord, t.*, t.xmin::text::int8, (pg_catalog.pg_xact_commit_timestamp_origin("
           "t.xmin)).roident FROM " +
           keys_source(table, 1) + " CROSS JOIN LATERAL (SELECT " + columns + ", xmin FROM " +
           table.name.quoted() + " WHERE " + match + " FOR UPDATE) AS t";
}

// The row_versions columns as lock_versions_statement returns them, from alias v, with the
// commit times of the local transactions the row names.
const char* const kVersionsColumns =
    "v.columns::text, v.local_row_writes, v.seen_remote_row_writes,"
    " v.local_delete_writes, v.deleted::text, v.deleted_applied_remote::text,"
    " (SELECT coalesce(jsonb_object_agg(x.xid, coalesce((extract(epoch FROM"
    "   pg_xact_commit_timestamp(x.xid::xid8::xid)) * 1000000)::int8, 0)), '{}')"
    "    FROM (SELECT e.value ->> 'x' FROM jsonb_each(v.columns) AS e WHERE e.value ? 'x'"
    "          UNION SELECT v.deleted ->> 'x' WHERE v.deleted ? 'x') AS x(xid))::text,"
    " v.local_xid";

std::string lock_versions_statement(const TargetTable& table) {
    return std::string("SELECT k.ord, ") + kVersionsColumns + " FROM " + keys_source(table, 2) +
           " CROSS JOIN LATERAL (SELECT * FROM pgbridge.row_versions WHERE table_name = $1"
           " AND key = " +
           versions_key(table) + " FOR UPDATE) AS v";
}

// LIMIT 1 keeps each lookup per key, as in lock_rows_statement.
std::string read_key_states_statement(const TargetTable& table) {
    std::string columns;
    for (const auto& c : table.columns) {
        columns += ", t." + quote_identifier(c.name);
    }
    std::string match;
    for (std::size_t k = 0; k < table.key.size(); ++k) {
        match += (k > 0 ? " AND " : "") + quote_identifier(table.columns[table.key[k]].name) +
                 " = " + typed_key(table, k);
    }
    return "SELECT k.ord, t.ctid IS NOT NULL" + columns + ", v.table_name IS NOT NULL, " +
           kVersionsColumns + " FROM " + keys_source(table, 2) +
           " LEFT JOIN LATERAL (SELECT *, ctid FROM " + table.name.quoted() + " WHERE " + match +
           " LIMIT 1) AS t ON true LEFT JOIN LATERAL (SELECT * FROM pgbridge.row_versions"
           " WHERE table_name = $1 AND key = " +
           versions_key(table) + " LIMIT 1) AS v ON true ORDER BY k.ord";
}

std::string insert_versions_statement(const TargetTable& table) {
    const std::size_t n = table.key.size();
    std::string args;
    std::string names;
    for (std::size_t k = 0; k < n; ++k) {
        args += param(2 + k) + "::text[], ";
        names += "k" + std::to_string(k) + ", ";
    }
    const std::size_t p = 2 + n;
    args += param(p) + "::text[], " + param(p + 1) + "::int8[], " + param(p + 2) + "::int8[], " +
            param(p + 3) + "::int8[], " + param(p + 4) + "::text[], " + param(p + 5) + "::text[]";
    names += "columns, lw, sw, dw, deleted, da";
    return "INSERT INTO pgbridge.row_versions (table_name, key, columns, local_row_writes,"
           " seen_remote_row_writes, local_delete_writes, deleted, deleted_applied_remote)"
           " SELECT $1, " +
           versions_key(table) +
           ", k.columns::jsonb, k.lw, k.sw, k.dw, k.deleted::jsonb, k.da::pg_lsn FROM unnest(" +
           args + ") AS k(" + names + ")";
}

std::string update_versions_statement(const TargetTable& table) {
    const std::size_t n = table.key.size();
    std::string key = "jsonb_build_array(";
    for (std::size_t k = 0; k < n; ++k) {
        key += (k > 0 ? ", " : "") + std::string("CAST(") + param(2 + k) + "::text AS " +
               table.columns[table.key[k]].type + ")";
    }
    key += ")";
    const std::size_t p = 2 + n;
    return "UPDATE pgbridge.row_versions SET columns = " + param(p) +
           "::jsonb, local_row_writes = " + param(p + 1) +
           "::int8, seen_remote_row_writes = " + param(p + 2) +
           "::int8, local_delete_writes = " + param(p + 3) + "::int8, deleted = " + param(p + 4) +
           "::jsonb, deleted_applied_remote = " + param(p + 5) +
           "::pg_lsn WHERE table_name = $1 AND key = " + key;
}

const char* const kRecordProgressStatement =
    "INSERT INTO pgbridge.apply_progress AS p (bridge, source_side, shard, last_end_lsn,"
    " last_commit_time) VALUES ($1, $2, $5::int, $3::pg_lsn, $4::timestamptz)"
    " ON CONFLICT (bridge, source_side, shard) DO UPDATE SET"
    " last_end_lsn = greatest(p.last_end_lsn, EXCLUDED.last_end_lsn),"
    " last_commit_time = greatest(p.last_commit_time, EXCLUDED.last_commit_time),"
    " applied_at = now(), waiting_for = NULL, waiting_since = NULL";

const char* const kRecordWaitingStatement =
    "INSERT INTO pgbridge.apply_progress AS p (bridge, source_side, shard, last_end_lsn,"
    " waiting_for, waiting_since) VALUES ($1, $2, $4::int, '0/0', $3, now())"
    " ON CONFLICT (bridge, source_side, shard) DO UPDATE SET waiting_for = EXCLUDED.waiting_for,"
    " waiting_since = coalesce(p.waiting_since, now())";

}  // namespace pgbridge::apply
