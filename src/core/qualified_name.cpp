#include <cctype>
#include <vector>

#include <pgbridge/core/qualified_name.hpp>

namespace pgbridge {
namespace {

bool is_plain_identifier_char(char c, bool first) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalpha(u) || c == '_') {
        return true;
    }
    return !first && (std::isdigit(u) || c == '$');
}

// Splits on dots outside double quotes and unquotes each part; nullopt on malformed quoting
// or empty parts.
std::optional<std::vector<std::string>> split_identifiers(std::string_view text) {
    std::vector<std::string> parts;
    std::size_t i = 0;
    while (true) {
        std::string part;
        if (i < text.size() && text[i] == '"') {
            ++i;
            bool closed = false;
            while (i < text.size()) {
                if (text[i] == '"') {
                    if (i + 1 < text.size() && text[i + 1] == '"') {
                        part += '"';
                        i += 2;
                        continue;
                    }
                    ++i;
                    closed = true;
                    break;
                }
                part += text[i++];
            }
            if (!closed || part.empty()) {
                return std::nullopt;
            }
        } else {
            const std::size_t start = i;
            while (i < text.size() && text[i] != '.') {
                if (!is_plain_identifier_char(text[i], i == start)) {
                    return std::nullopt;
                }
                part += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
                ++i;
            }
            if (part.empty()) {
                return std::nullopt;
            }
        }
        parts.push_back(std::move(part));
        if (i == text.size()) {
            return parts;
        }
        if (text[i] != '.') {
            return std::nullopt;
        }
        ++i;
    }
}

}  // namespace

std::optional<QualifiedName> QualifiedName::parse(std::string_view text) {
    auto parts = split_identifiers(text);
    if (!parts || parts->size() != 2) {
        return std::nullopt;
    }
    return QualifiedName{std::move((*parts)[0]), std::move((*parts)[1])};
}

std::string QualifiedName::quoted() const {
    return quote_identifier(schema) + "." + quote_identifier(name);
}

std::string QualifiedName::display() const {
    return display_identifier(schema) + "." + display_identifier(name);
}

std::string quote_identifier(std::string_view identifier) {
    std::string out;
    out.reserve(identifier.size() + 2);
    out += '"';
    for (char c : identifier) {
        if (c == '"') {
            out += '"';
        }
        out += c;
    }
    out += '"';
    return out;
}

std::string display_identifier(std::string_view identifier) {
    bool plain = !identifier.empty();
    for (std::size_t i = 0; i < identifier.size() && plain; ++i) {
        const char c = identifier[i];
        plain = is_plain_identifier_char(c, i == 0) && !std::isupper(static_cast<unsigned char>(c));
    }
    return plain ? std::string(identifier) : quote_identifier(identifier);
}

}  // namespace pgbridge
