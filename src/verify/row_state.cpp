#include <pgbridge/apply/apply_statements.hpp>
#include <pgbridge/apply/local_state.hpp>
#include <pgbridge/pg/array_literal.hpp>
#include <pgbridge/verify/row_state.hpp>

namespace pgbridge::verify {
namespace {

// Keys read per statement: bounds the parameters and the result.
constexpr std::size_t kKeysPerRead = 1000;

}  // namespace

pg::Params key_array_params(const std::vector<Key>& keys) {
    std::vector<std::optional<std::string>> ordinals;
    std::vector<std::vector<std::optional<std::string>>> columns(keys.empty() ? 0 : keys[0].size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
        ordinals.push_back(std::to_string(i));
        for (std::size_t k = 0; k < columns.size(); ++k) {
            columns[k].push_back(keys[i].at(k));
        }
    }
    pg::Params params{pg::array_literal(ordinals)};
    for (const auto& c : columns) {
        params.push_back(pg::array_literal(c));
    }
    return params;
}

std::vector<RowState> read_row_states(pg::Connection& connection, const ComparedTable& table,
                                      std::size_t side_index, const std::vector<Key>& keys) {
    const apply::TargetTable& side = table.sides.at(side_index);
    const std::string sql = apply::read_key_states_statement(side);
    const std::size_t width = side.columns.size();
    std::vector<RowState> out;
    out.reserve(keys.size());
    for (std::size_t first = 0; first < keys.size(); first += kKeysPerRead) {
        const std::size_t last = std::min(keys.size(), first + kKeysPerRead);
        pg::Params params{side.versions_name};
        const pg::Params keys_here =
            key_array_params({keys.begin() + static_cast<std::ptrdiff_t>(first),
                              keys.begin() + static_cast<std::ptrdiff_t>(last)});
        params.insert(params.end(), keys_here.begin(), keys_here.end());
        const pg::Result result = connection.exec(sql, params);
        const int versions_flag = 2 + static_cast<int>(width);
        for (int r = 0; r < result.rows(); ++r) {
            RowState state;
            state.exists = result.value(r, 1) == "t";
            if (state.exists) {
                state.row = apply::row_from_result(result, r, 2, width);
            }
            if (result.value(r, versions_flag) == "t") {
                apply::versions_from_result(result, r, versions_flag + 1, state.stored,
                                            state.commit_times);
            }
            for (int c = 1; c < result.columns(); ++c) {
                state.fingerprint +=
                    result.is_null(r, c) ? std::string("\\N") : std::string(result.value(r, c));
                state.fingerprint += '\x1f';
            }
            out.push_back(std::move(state));
        }
    }
    return out;
}

std::vector<std::string> differing_columns(const ComparedTable& table, const RowState& a,
                                           const RowState& b) {
    std::vector<std::string> out;
    if (!a.exists || !b.exists) {
        return out;
    }
    for (std::size_t i = 0; i < table.columns.size(); ++i) {
        const Value& va = a.row.at(table.positions[0][i]);
        const Value& vb = b.row.at(table.positions[1][i]);
        if (va != vb) {
            out.push_back(table.columns[i]);
        }
    }
    return out;
}

bool states_differ(const ComparedTable& table, const RowState& a, const RowState& b) {
    return a.exists != b.exists || !differing_columns(table, a, b).empty();
}

}  // namespace pgbridge::verify
