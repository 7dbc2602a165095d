#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pgbridge::pg {

// A libpq connection string taken apart with PQconninfoParse, so it can be checked, shown
// without its password, and extended (replication=database, password) without string surgery.
struct ConninfoParts {
    std::map<std::string, std::string> options;  // only the keywords that were set

    // nullopt with *error set when libpq cannot parse the text.
    static std::optional<ConninfoParts> parse(std::string_view conninfo, std::string* error);

    bool has(std::string_view keyword) const { return options.contains(std::string(keyword)); }
    // key='value' pairs in libpq's quoting, password shown as ********.
    std::string redacted() const;
};

// The conninfo for display and logs: every keyword kept, the password replaced.
// Text libpq cannot parse is shown as "<unparseable conninfo>", never verbatim.
std::string redact_conninfo(std::string_view conninfo);

}  // namespace pgbridge::pg
