#include <fmt/format.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/verify/postgres_row_source.hpp>

namespace pgbridge::verify {
namespace {

std::string joined(const std::vector<std::string>& parts, std::string_view separator) {
    std::string out;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        out += (i > 0 ? std::string(separator) : "") + parts[i];
    }
    return out;
}

// (a, b) or a: a row comparison over the key, which the primary key's index serves.
std::string tuple(const std::vector<std::string>& parts) {
    return parts.size() == 1 ? parts.front() : "(" + joined(parts, ", ") + ")";
}

Key key_at(const pg::Result& result, int row, std::size_t columns) {
    Key key;
    for (std::size_t c = 0; c < columns; ++c) {
        key.emplace_back(result.value(row, static_cast<int>(c)));
    }
    return key;
}

}  // namespace

RowHash common_row_hash(pg::Connection& a, pg::Connection& b) {
    const std::string probe = "SELECT hashtextextended('pgbridge verify: byte order', 0)::text";
    return a.exec(probe).value(0, 0) == b.exec(probe).value(0, 0) ? RowHash::HashTextExtended
                                                                  : RowHash::Md5;
}

std::string_view to_string(RowHash hash) noexcept {
    return hash == RowHash::Md5 ? "md5" : "hashtextextended";
}

PostgresRowSource::PostgresRowSource(pg::Connection& connection, const ComparedTable& table,
                                     std::size_t side_index, RowHash hash)
    : connection_(connection) {
    const apply::TargetTable& side = table.sides.at(side_index);
    table_ = side.name.quoted();
    if (side.row_filter) {
        row_filter_ = "(" + *side.row_filter + ")";
    }
    std::vector<std::string> text;
    for (const std::size_t k : side.key) {
        key_columns_.push_back(quote_identifier(side.columns[k].name));
        key_types_.push_back(side.columns[k].type);
        text.push_back(key_columns_.back() + "::text");
    }
    key_list_ = joined(key_columns_, ", ");
    key_text_ = joined(text, ", ");
    std::vector<std::string> compared;
    for (const std::size_t p : table.positions.at(side_index)) {
        compared.push_back(quote_identifier(side.columns[p].name));
    }
    const std::string row = "ROW(" + joined(compared, ", ") + ")::text";
    row_hash_ = hash == RowHash::Md5 ? "('x' || left(md5(" + row + "), 16))::bit(64)::int8"
                                     : "hashtextextended(" + row + ", 0)";
}

std::string PostgresRowSource::where(const KeyRange& range, pg::Params& params) const {
    const auto bound = [&](const Key& key) {
        std::vector<std::string> typed;
        for (std::size_t k = 0; k < key.size() && k < key_types_.size(); ++k) {
            params.emplace_back(key[k]);
            typed.push_back(fmt::format("CAST(${} AS {})", params.size(), key_types_[k]));
        }
        return tuple(typed);
    };
    std::vector<std::string> conditions;
    if (!row_filter_.empty()) {
        conditions.push_back(row_filter_);
    }
    if (range.after) {
        conditions.push_back(tuple(key_columns_) + " > " + bound(*range.after));
    }
    if (range.up_to) {
        conditions.push_back(tuple(key_columns_) + " <= " + bound(*range.up_to));
    }
    return conditions.empty() ? "" : " WHERE " + joined(conditions, " AND ");
}

std::vector<Key> PostgresRowSource::boundaries(const KeyRange& range, std::uint64_t step,
                                               std::size_t count) {
    pg::Params params;
    const std::string condition = where(range, params);
    params.emplace_back(std::to_string(step));
    const std::size_t step_param = params.size();
    params.emplace_back(std::to_string(step * count));
    // Numbers the first step*count keys of the range in key order (an index-only scan of
    // the primary key) and keeps every step-th.
    const std::string sql = fmt::format(
        "SELECT {0} FROM (SELECT {1}, row_number() OVER (ORDER BY {1}) AS n FROM {2}{3}"
        " ORDER BY {1} LIMIT ${4}) AS chunk WHERE n % ${5} = 0 ORDER BY n",
        key_text_, key_list_, table_, condition, params.size(), step_param);
    const pg::Result result = connection_.exec(sql, params);
    std::vector<Key> out;
    for (int r = 0; r < result.rows(); ++r) {
        out.push_back(key_at(result, r, key_columns_.size()));
    }
    return out;
}

RangeDigest PostgresRowSource::digest(const KeyRange& range) {
    pg::Params params;
    // The rows' 64-bit hashes summed as numeric: independent of the order rows are read in,
    // and no overflow.
    const std::string sql = fmt::format("SELECT count(*), coalesce(sum({}), 0)::text FROM {}{}",
                                        row_hash_, table_, where(range, params));
    const pg::Result result = connection_.exec(sql, params);
    return RangeDigest{std::stoull(std::string(result.value(0, 0))),
                       std::string(result.value(0, 1))};
}

std::vector<KeyedRowHash> PostgresRowSource::row_hashes(const KeyRange& range) {
    pg::Params params;
    const std::string sql = fmt::format("SELECT {}, {} FROM {}{} ORDER BY {}", key_text_, row_hash_,
                                        table_, where(range, params), key_list_);
    const pg::Result result = connection_.exec(sql, params);
    std::vector<KeyedRowHash> out;
    out.reserve(static_cast<std::size_t>(result.rows()));
    const int hash_column = static_cast<int>(key_columns_.size());
    for (int r = 0; r < result.rows(); ++r) {
        out.push_back(
            {key_at(result, r, key_columns_.size()), std::string(result.value(r, hash_column))});
    }
    return out;
}

}  // namespace pgbridge::verify
