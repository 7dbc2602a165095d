#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pgbridge/core/secret.hpp>

namespace pgbridge {

// A key that signs and verifies messages ([rabbitmq] signing_key_file, docs/security.md).
struct SigningKey {
    std::string id;  // the first 8 hex digits of the key's SHA-256: named in messages and logs
    Secret key;      // at least kMinSigningKeyBytes random bytes
};

inline constexpr std::size_t kMinSigningKeyBytes = 32;

// A signing key file's keys: one a line, the base64 of at least kMinSigningKeyBytes bytes;
// blank lines are skipped. The first signs, every one verifies (rotation). Nothing, with
// `error` set (never quoting the file), when a line is not such a key or two are the same.
std::optional<std::vector<SigningKey>> parse_signing_keys(std::string_view text,
                                                          std::string* error);

// What check-config and status say about messages: signed with which key, or not signed and
// the broker trusted.
std::string describe_signing(const std::vector<SigningKey>& keys);

}  // namespace pgbridge
