#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pgbridge {

// Standard base64 (RFC 4648, with padding): message values that are not UTF-8 text, and
// signing keys.
std::string base64_encode(std::string_view bytes);
// Nothing when the text is not padded base64.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace pgbridge
