#pragma once

#include <optional>
#include <string>
#include <vector>

namespace pgbridge::pg {

// A one-dimensional array in PostgreSQL's text input form ({"a","b\"c",NULL}), to send many
// values as one parameter (unnest($1::text[])). Every element is quoted, so no value is ever
// read as anything but itself.
std::string array_literal(const std::vector<std::optional<std::string>>& elements);

}  // namespace pgbridge::pg
