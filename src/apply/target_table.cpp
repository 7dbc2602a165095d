#include <algorithm>

#include <pgbridge/apply/target_table.hpp>
#include <pgbridge/core/error.hpp>

namespace pgbridge::apply {

std::size_t TargetTable::find(const std::string& column) const {
    for (std::size_t i = 0; i < columns.size(); ++i) {
        if (columns[i].name == column) {
            return i;
        }
    }
    return std::string::npos;
}

TargetTable load_target_table(pg::Connection& connection, const TableConfig& table,
                              const std::string& side) {
    TargetTable out;
    out.side = side;
    out.canonical = table.name;
    out.name = table.name_on(side);
    out.row_filter = table.row_filter_on(side);
    const pg::Result rel = connection.exec(
        "SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname)"
        "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
        {out.name.schema, out.name.name});
    if (rel.rows() == 0) {
        throw Error(ErrorKind::Setup, "synced table does not exist on this side")
            .with("side", side)
            .with("table", out.name.display());
    }
    const std::string oid(rel.value(0, 0));
    out.versions_name = std::string(rel.value(0, 1));
    const pg::Result cols = connection.exec(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod),"
        "       coalesce((SELECT k.ord FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)"
        "                  WHERE k.attnum = a.attnum), 0)"
        "  FROM pg_attribute a"
        "  LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary"
        " WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped"
        "   AND a.attgenerated = ''"
        " ORDER BY a.attnum",
        {oid});
    std::vector<std::pair<int, std::size_t>> key_positions;
    for (int r = 0; r < cols.rows(); ++r) {
        TargetColumn c;
        c.name = std::string(cols.value(r, 0));
        c.canonical = table.canonical_column(side, c.name);
        c.type = std::string(cols.value(r, 1));
        const int position = std::stoi(std::string(cols.value(r, 2)));
        c.primary_key = position > 0;
        if (c.primary_key) {
            key_positions.emplace_back(position, out.columns.size());
        }
        out.canonical_names.push_back(c.canonical);
        out.names.push_back(c.name);
        out.columns.push_back(std::move(c));
    }
    std::sort(key_positions.begin(), key_positions.end());
    for (const auto& [position, index] : key_positions) {
        out.key.push_back(index);
    }
    if (out.key.empty()) {
        throw Error(ErrorKind::Setup, "synced table has no primary key on this side")
            .with("side", side)
            .with("table", out.name.display());
    }
    return out;
}

}  // namespace pgbridge::apply
