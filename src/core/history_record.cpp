#include <pgbridge/core/history_record.hpp>
#include <pgbridge/core/json_writer.hpp>

namespace pgbridge {

HistoryInsert history_insert(const std::string& bridge, const std::string& side,
                             const std::vector<HistoryRecord>& records) {
    // Written straight from the documents the records hold (no DOM: this runs for every
    // change kept).
    JsonWriter w;
    const auto document = [&](std::string_view key, const std::optional<std::string>& text) {
        w.key(key);
        if (text) {
            w.raw(*text);
        } else {
            w.null();
        }
    };
    w.open('[');
    for (const auto& r : records) {
        w.open('{');
        w.key("o");
        w.string(r.origin == HistoryRecord::Origin::Local ? "local" : "applied");
        w.key("f");
        w.string(r.from_side);
        w.key("t");
        w.number(r.changed_at);
        w.key("l");
        w.string(r.lsn.to_string());
        w.key("s");
        w.number(r.seq);
        w.key("n");
        w.string(r.table);
        document("k", r.key);
        w.key("op");
        w.string(r.operation);
        document("ov", r.old_values);
        document("nv", r.new_values);
        document("d", r.decision);
        w.close('}');
    }
    w.close(']');
    HistoryInsert out;
    out.sql =
        "INSERT INTO pgbridge.history (bridge, side, origin, from_side, changed_at, lsn, seq,"
        " table_name, key, operation, old_values, new_values, decision)"
        " SELECT $1, $2, r.o, r.f, to_timestamp(r.t / 1000000.0), r.l::pg_lsn, r.s, r.n, r.k,"
        " r.op, nullif(r.ov, 'null'), nullif(r.nv, 'null'), nullif(r.d, 'null')"
        " FROM jsonb_to_recordset($3::jsonb) AS r(o text, f text, t int8, l text, s int4,"
        " n text, k jsonb, op text, ov jsonb, nv jsonb, d jsonb)";
    out.params = {bridge, side, w.take()};
    return out;
}

}  // namespace pgbridge
