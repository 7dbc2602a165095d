#include <memory>

#include <libpq-fe.h>

#include <pgbridge/pg/connection.hpp>
#include <pgbridge/pg/conninfo.hpp>

namespace pgbridge::pg {
namespace {

// libpq's conninfo quoting, applied only where a value needs it.
std::string quote_value(std::string_view value) {
    if (!value.empty() && value.find_first_of(" '\\\t\n") == std::string_view::npos) {
        return std::string(value);
    }
    std::string out = "'";
    for (char c : value) {
        if (c == '\'' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    out += '\'';
    return out;
}

// libpq's parse errors quote the text they stopped at, which may be a password: each is told
// in words of its own, without the text.
std::string conninfo_error(std::string_view libpq_message) {
    if (libpq_message.starts_with("missing \"=\"")) {
        return "a word without \"=\" (expected keyword=value pairs; quote a value with spaces "
               "in single quotes)";
    }
    if (libpq_message.starts_with("invalid connection option")) {
        return "an unknown keyword (expected the keywords of libpq's connection parameters)";
    }
    if (libpq_message.starts_with("unterminated quoted string")) {
        return "an unterminated quoted value";
    }
    if (libpq_message.starts_with("out of memory")) {
        return "out of memory";
    }
    return "not a valid keyword=value connection string or postgresql:// URI";
}

}  // namespace

std::optional<ConninfoParts> ConninfoParts::parse(std::string_view conninfo, std::string* error) {
    char* message = nullptr;
    const std::string text(conninfo);
    std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
        PQconninfoParse(text.c_str(), &message), &PQconninfoFree);
    if (!options) {
        *error = message != nullptr ? conninfo_error(message) : "out of memory";
        PQfreemem(message);
        return std::nullopt;
    }
    ConninfoParts parts;
    for (const PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o) {
        if (o->val != nullptr) {
            parts.options.emplace(o->keyword, o->val);
        }
    }
    return parts;
}

std::string ConninfoParts::redacted() const {
    std::string out;
    for (const auto& [key, value] : options) {
        if (!out.empty()) {
            out += ' ';
        }
        out += key + "=" + (key == "password" ? std::string("********") : quote_value(value));
    }
    return out;
}

std::string redact_conninfo(std::string_view conninfo) {
    std::string error;
    auto parts = ConninfoParts::parse(conninfo, &error);
    return parts ? parts->redacted() : std::string("<unparseable conninfo>");
}

}  // namespace pgbridge::pg
