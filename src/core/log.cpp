#include <atomic>
#include <cstdio>
#include <mutex>

#include <pgbridge/core/log.hpp>
#include <pgbridge/core/lsn.hpp>

namespace pgbridge::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::mutex g_mutex;

// logfmt: quote values with spaces, quotes or '=' so a line stays machine-splittable.
void append_value(std::string& line, std::string_view value) {
    const bool quote = value.empty() || value.find_first_of(" \"=\t\n") != std::string_view::npos;
    if (!quote) {
        line += value;
        return;
    }
    line += '"';
    for (char c : value) {
        if (c == '"' || c == '\\') {
            line += '\\';
        }
        line += c == '\n' ? ' ' : c;
    }
    line += '"';
}

}  // namespace

std::string_view to_string(Level level) {
    switch (level) {
        case Level::Debug:
            return "debug";
        case Level::Info:
            return "info";
        case Level::Warning:
            return "warning";
        case Level::Error:
            return "error";
    }
    return "info";
}

std::optional<Level> parse_level(std::string_view text) {
    for (const Level l : {Level::Debug, Level::Info, Level::Warning, Level::Error}) {
        if (text == to_string(l)) {
            return l;
        }
    }
    return std::nullopt;
}

void set_level(Level level) {
    g_level = static_cast<int>(level);
}
Level level() {
    return static_cast<Level>(g_level.load());
}
bool enabled(Level level) {
    return static_cast<int>(level) >= g_level.load();
}

void write(Level level, std::string_view component, std::string_view message,
           std::initializer_list<Field> fields) {
    if (!enabled(level)) {
        return;
    }
    std::string line = format_timestamp(now_unix_micros());
    line += ' ';
    line += to_string(level);
    line += ' ';
    line += component;
    line += ": ";
    line += message;
    for (const auto& [key, value] : fields) {
        line += ' ';
        line += key;
        line += '=';
        append_value(line, value);
    }
    line += '\n';
    std::lock_guard lock(g_mutex);
    std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace pgbridge::log
