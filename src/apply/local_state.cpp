#include <nlohmann/json.hpp>

#include <pgbridge/apply/local_state.hpp>

namespace pgbridge::apply {

Row row_from_result(const pg::Result& result, int row, int first_column, std::size_t columns) {
    Row out;
    out.reserve(columns);
    for (std::size_t c = 0; c < columns; ++c) {
        const int column = first_column + static_cast<int>(c);
        out.push_back(result.is_null(row, column)
                          ? Value{}
                          : Value{Value::Kind::Text, std::string(result.value(row, column))});
    }
    return out;
}

void versions_from_result(const pg::Result& result, int row, int first_column,
                          StoredRowVersions& stored, CommitTimes& commit_times) {
    const auto text = [&](int offset) { return result.value(row, first_column + offset); };
    stored.found = true;
    stored.columns = parse_column_versions(text(0));
    stored.local_row_writes = std::stoull(std::string(text(1)));
    stored.seen_remote_row_writes = std::stoull(std::string(text(2)));
    stored.local_delete_writes = std::stoull(std::string(text(3)));
    if (!result.is_null(row, first_column + 4)) {
        stored.deleted = parse_stamp(text(4));
    }
    if (!result.is_null(row, first_column + 5)) {
        stored.deleted_applied_remote = Lsn::parse(text(5)).value_or(Lsn());
    }
    if (!result.is_null(row, first_column + 7)) {
        stored.local_xid = std::stoll(std::string(text(7)));
    }
    const auto times = nlohmann::json::parse(text(6));
    for (const auto& [xid, time] : times.items()) {
        commit_times[xid] = time.get<UnixMicros>();
    }
}

}  // namespace pgbridge::apply
