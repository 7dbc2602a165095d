#pragma once

#include <string>
#include <string_view>

namespace pgbridge {

// Well-formed UTF-8: no overlong forms, surrogates or code points beyond U+10FFFF.
bool is_valid_utf8(std::string_view bytes) noexcept;

// The bytes as text any PostgreSQL text column and JSON document accepts: each byte that is
// not part of well-formed UTF-8, and each NUL, becomes U+FFFD. For what pgbridge records
// about input it did not write (dead letters), never for row values it applies.
std::string to_valid_text(std::string_view bytes);

}  // namespace pgbridge
