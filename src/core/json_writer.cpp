#include <pgbridge/core/json_writer.hpp>

namespace pgbridge {

void JsonWriter::quoted(std::string_view text) {
    out_ += '"';
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"':
                out_ += "\\\"";
                break;
            case '\\':
                out_ += "\\\\";
                break;
            case '\b':
                out_ += "\\b";
                break;
            case '\f':
                out_ += "\\f";
                break;
            case '\n':
                out_ += "\\n";
                break;
            case '\r':
                out_ += "\\r";
                break;
            case '\t':
                out_ += "\\t";
                break;
            default:
                if (c < 0x20) {
                    fmt::format_to(std::back_inserter(out_), "\\u{:04x}", c);
                } else {
                    out_ += ch;
                }
        }
    }
    out_ += '"';
}

}  // namespace pgbridge
