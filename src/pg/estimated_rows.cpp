#include <pgbridge/pg/estimated_rows.hpp>

namespace pgbridge::pg {

std::uint64_t estimated_rows(Connection& conn, const std::string& quoted_name) {
    const Result r = conn.exec(
        "SELECT greatest(reltuples, 0)::int8::text FROM pg_catalog.pg_class"
        " WHERE oid = $1::regclass",
        {quoted_name});
    return std::stoull(std::string(r.value(0, 0)));
}

}  // namespace pgbridge::pg
