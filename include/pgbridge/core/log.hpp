#pragma once

#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <pgbridge/core/lsn.hpp>

namespace pgbridge::log {

enum class Level { Debug = 0, Info = 1, Warning = 2, Error = 3 };

// One line per event on stderr (journald picks it up), in one of two forms ([log] format):
// text, logfmt style:
//   2026-11-25T19:40:01.123456Z info capture: streaming side=looma_crm slot=... lsn=0/16B3748
// json, one object a line for log shippers:
//   {"time":"2026-11-25T19:40:01.123456Z","level":"info","component":"capture",
//    "message":"streaming","fields":{"side":"looma_crm","slot":"...","lsn":"0/16B3748"}}
// Fields name sides, tables, keys' columns and LSNs; never a password or a row value.
enum class Format { Text, Json };
using Field = std::pair<std::string_view, std::string>;

void set_level(Level level);
std::optional<Level> parse_level(std::string_view text);
std::string_view to_string(Level level);
void set_format(Format format);
std::optional<Format> parse_format(std::string_view text);
std::string_view to_string(Format format);
// One line, newline included, as write() prints it. Text that is not UTF-8 is made valid.
std::string format_line(Format format, UnixMicros time, Level level, std::string_view component,
                        std::string_view message, std::initializer_list<Field> fields);
std::string format_line(Format format, UnixMicros time, Level level, std::string_view component,
                        std::string_view message, std::span<const Field> fields);
Level level();
bool enabled(Level level);
void write(Level level, std::string_view component, std::string_view message,
           std::initializer_list<Field> fields = {});
// The same with fields gathered at run time (a line that more than one place adds to).
void write(Level level, std::string_view component, std::string_view message,
           std::span<const Field> fields);

inline void debug(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
    if (enabled(Level::Debug)) {
        write(Level::Debug, c, m, f);
    }
}
inline void info(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
    write(Level::Info, c, m, f);
}
inline void warning(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
    write(Level::Warning, c, m, f);
}
inline void error(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
    write(Level::Error, c, m, f);
}

}  // namespace pgbridge::log
