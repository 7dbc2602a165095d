#include <algorithm>
#include <openssl/sha.h>

#include <fmt/format.h>

#include <pgbridge/config/signing_keys.hpp>
#include <pgbridge/core/base64.hpp>
#include <pgbridge/core/hex.hpp>

namespace pgbridge {
namespace {

std::string key_id(std::string_view bytes) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
    return to_hex(std::string_view(reinterpret_cast<const char*>(digest), 4));
}

}  // namespace

std::optional<std::vector<SigningKey>> parse_signing_keys(std::string_view text,
                                                          std::string* error) {
    std::vector<SigningKey> keys;
    std::size_t number = 0;
    while (!text.empty()) {
        const auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
        ++number;
        while (!line.empty() &&
               (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
            line.remove_suffix(1);
        }
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
            line.remove_prefix(1);
        }
        if (line.empty()) {
            continue;
        }
        auto bytes = base64_decode(line);
        if (!bytes || bytes->size() < kMinSigningKeyBytes) {
            *error = fmt::format(
                "line {} is not a key: expected the base64 of at least {} random bytes "
                "(openssl rand -base64 {})",
                number, kMinSigningKeyBytes, kMinSigningKeyBytes);
            return std::nullopt;
        }
        SigningKey key{key_id(*bytes), Secret(std::move(*bytes))};
        if (std::any_of(keys.begin(), keys.end(),
                        [&](const SigningKey& k) { return k.key.reveal() == key.key.reveal(); })) {
            *error = fmt::format("line {} repeats key {}", number, key.id);
            return std::nullopt;
        }
        keys.push_back(std::move(key));
    }
    if (keys.empty()) {
        *error = "it holds no key: expected one key a line, the first one signing";
        return std::nullopt;
    }
    return keys;
}

std::string describe_signing(const std::vector<SigningKey>& keys) {
    if (keys.empty()) {
        return "messages not signed: whatever can publish to the bridge's exchange is trusted "
               "(rabbitmq.signing_key_file, docs/security.md)";
    }
    std::string verifying;
    for (const auto& k : keys) {
        verifying += (verifying.empty() ? "" : ", ") + k.id;
    }
    return fmt::format("messages signed with key {}; verified with {}", keys.front().id, verifying);
}

}  // namespace pgbridge
