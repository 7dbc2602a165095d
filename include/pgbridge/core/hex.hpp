#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pgbridge {

// Bytes as lower-case hex digits, and back (nullopt for anything but pairs of hex digits):
// how bytea travels as a text parameter (decode($1, 'hex'), encode(col, 'hex')).
std::string to_hex(std::string_view bytes);
// The value of one hex digit (either case), or -1.
int hex_digit_value(char c) noexcept;
std::optional<std::string> from_hex(std::string_view digits);

}  // namespace pgbridge
