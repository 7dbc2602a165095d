#include <nlohmann/json.hpp>

#include <pgbridge/core/history_record.hpp>

namespace pgbridge {

HistoryInsert history_insert(const std::string& bridge, const std::string& side,
                             const std::vector<HistoryRecord>& records) {
    nlohmann::json rows = nlohmann::json::array();
    const auto document = [](const std::optional<std::string>& text) {
        return text ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
    };
    for (const auto& r : records) {
        rows.push_back({{"o", r.origin == HistoryRecord::Origin::Local ? "local" : "applied"},
                        {"f", r.from_side},
                        {"t", r.changed_at},
                        {"l", r.lsn.to_string()},
                        {"s", r.seq},
                        {"n", r.table},
                        {"k", document(r.key)},
                        {"op", r.operation},
                        {"ov", document(r.old_values)},
                        {"nv", document(r.new_values)},
                        {"d", document(r.decision)}});
    }
    HistoryInsert out;
    out.sql =
        "INSERT INTO pgbridge.history (bridge, side, origin, from_side, changed_at, lsn, seq,"
        " table_name, key, operation, old_values, new_values, decision)"
        " SELECT $1, $2, r.o, r.f, to_timestamp(r.t / 1000000.0), r.l::pg_lsn, r.s, r.n, r.k,"
        " r.op, nullif(r.ov, 'null'), nullif(r.nv, 'null'), nullif(r.d, 'null')"
        " FROM jsonb_to_recordset($3::jsonb) AS r(o text, f text, t int8, l text, s int4,"
        " n text, k jsonb, op text, ov jsonb, nv jsonb, d jsonb)";
    out.params = {bridge, side,
                  rows.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
    return out;
}

std::size_t history_bytes(const HistoryRecord& record) {
    const auto size = [](const std::optional<std::string>& text) {
        return text ? text->size() : 0;
    };
    return 128 + record.from_side.size() + record.table.size() + record.key.size() +
           size(record.old_values) + size(record.new_values) + size(record.decision);
}

}  // namespace pgbridge
