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

}  // namespace

std::optional<ConninfoParts> ConninfoParts::parse(std::string_view conninfo, std::string* error) {
    char* message = nullptr;
    const std::string text(conninfo);
    std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
        PQconninfoParse(text.c_str(), &message), &PQconninfoFree);
    if (!options) {
        *error = message != nullptr ? trimmed_message(message) : "out of memory";
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
