#pragma once

#include <optional>
#include <string_view>

#include <pgbridge/core/change_event.hpp>

namespace pgbridge::source {

// Parses the pgbridge.versions message of the version trigger (sql/01_metadata_schema.sql):
//   {"table": "public.talents", "key": [1], "row": [own, seen],
//    "columns": {"email": [own, seen], ...}}
// nullopt when it is not such a message (a foreign or damaged one is never fatal: the change
// then travels without versions).
std::optional<RowVersions> parse_versions_message(std::string_view content);

}  // namespace pgbridge::source
