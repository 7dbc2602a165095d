#include <pgbridge/pg/array_literal.hpp>

namespace pgbridge::pg {

std::string array_literal(const std::vector<std::optional<std::string>>& elements) {
    std::string out = "{";
    for (std::size_t i = 0; i < elements.size(); ++i) {
        if (i > 0) {
            out += ',';
        }
        if (!elements[i]) {
            out += "NULL";
            continue;
        }
        out += '"';
        for (const char c : *elements[i]) {
            if (c == '"' || c == '\\') {
                out += '\\';
            }
            out += c;
        }
        out += '"';
    }
    out += '}';
    return out;
}

}  // namespace pgbridge::pg
