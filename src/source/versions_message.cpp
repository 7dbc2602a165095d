#include <nlohmann/json.hpp>

#include <pgbridge/source/versions_message.hpp>

namespace pgbridge::source {
namespace {

std::optional<VersionVector> vector_of(const nlohmann::json& pair) {
    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number_unsigned() ||
        !pair[1].is_number_unsigned()) {
        return std::nullopt;
    }
    return VersionVector{pair[0].get<std::uint64_t>(), pair[1].get<std::uint64_t>()};
}

}  // namespace

std::optional<RowVersions> parse_versions_message(std::string_view content) {
    const auto json = nlohmann::json::parse(content, nullptr, /*allow_exceptions=*/false);
    if (!json.is_object() || !json.contains("row") || !json.contains("columns") ||
        !json["columns"].is_object()) {
        return std::nullopt;
    }
    auto row = vector_of(json["row"]);
    if (!row) {
        return std::nullopt;
    }
    RowVersions versions;
    versions.row = *row;
    for (const auto& [column, pair] : json["columns"].items()) {
        auto v = vector_of(pair);
        if (!v) {
            return std::nullopt;
        }
        versions.columns.emplace(column, *v);
    }
    return versions;
}

}  // namespace pgbridge::source
