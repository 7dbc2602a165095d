#include <atomic>
#include <cstdio>
#include <mutex>

#include <pgbridge/core/json_writer.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/core/lsn.hpp>
#include <pgbridge/core/utf8.hpp>

namespace pgbridge::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::atomic<int> g_format{static_cast<int>(Format::Text)};
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

std::string_view to_string(Format format) {
    return format == Format::Json ? "json" : "text";
}

std::optional<Format> parse_format(std::string_view text) {
    for (const Format f : {Format::Text, Format::Json}) {
        if (text == to_string(f)) {
            return f;
        }
    }
    return std::nullopt;
}

void set_format(Format format) {
    g_format = static_cast<int>(format);
}

std::string format_line(Format format, UnixMicros time, Level level, std::string_view component,
                        std::string_view message, std::initializer_list<Field> fields) {
    return format_line(format, time, level, component, message,
                       std::span<const Field>(fields.begin(), fields.size()));
}

std::string format_line(Format format, UnixMicros time, Level level, std::string_view component,
                        std::string_view message, std::span<const Field> fields) {
    if (format == Format::Json) {
        JsonWriter json;
        json.open('{');
        json.key("time");
        json.string(format_timestamp(time));
        json.key("level");
        json.string(to_string(level));
        json.key("component");
        json.string(to_valid_text(component));
        json.key("message");
        json.string(to_valid_text(message));
        json.key("fields");
        json.open('{');
        for (const auto& [key, value] : fields) {
            json.key(to_valid_text(key));
            json.string(to_valid_text(value));
        }
        json.close('}');
        json.close('}');
        return json.take() + '\n';
    }
    std::string line = format_timestamp(time);
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
    return line;
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
    write(level, component, message, std::span<const Field>(fields.begin(), fields.size()));
}

void write(Level level, std::string_view component, std::string_view message,
           std::span<const Field> fields) {
    if (!enabled(level)) {
        return;
    }
    const std::string line = format_line(static_cast<Format>(g_format.load()), now_unix_micros(),
                                         level, component, message, fields);
    std::lock_guard lock(g_mutex);
    std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace pgbridge::log
