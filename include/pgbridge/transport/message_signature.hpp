#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pgbridge/config/signing_keys.hpp>
#include <pgbridge/transport/message.hpp>

namespace pgbridge::transport {

// The header that carries a message's signature: "v1 KEYID MAC", MAC the hex HMAC-SHA256, by
// the key KEYID names, of the message's type property and body (docs/message-format.md,
// "Signatures"). Everything the applier acts on is in the body; the other headers only
// describe it, or count the consumer's own retries.
inline constexpr std::string_view kSignatureHeader = "x-pgbridge-signature";

// Throws Error(Broker), a publish failure, when the MAC cannot be computed.
std::string message_signature(const SigningKey& key, std::string_view type, std::string_view body);

enum class SignatureCheck {
    Valid,
    Missing,     // no signature header: a publisher without a key, or not pgbridge
    Malformed,   // a header that is not "v1 KEYID MAC"
    UnknownKey,  // signed by a key this side does not hold
    Mismatch,    // the MAC is not the one of this type and body: forged or altered
    // the MAC of a key it names could not be computed (OpenSSL failed): refused like a
    // forgery, since nothing vouches for the message
    Unverifiable,
};

// Signs a message with the first of `keys` (its type and body as they are now); none: left
// unsigned. Throws like message_signature.
void sign(OutgoingMessage& message, const std::vector<SigningKey>& keys);

// Checks a signature header (absent: nullopt) against every key. Never throws for what the
// message or OpenSSL does: every outcome is the message's.
SignatureCheck check_signature(const std::vector<SigningKey>& keys,
                               const std::optional<std::string>& header, std::string_view type,
                               std::string_view body);

// Throws Error(Setup) when OpenSSL cannot compute HMAC-SHA256 (a known answer, RFC 4231):
// checked once when `run` starts with signing keys, so that a broken libcrypto is a start
// error rather than every message refused.
void check_hmac_sha256();

// What a refused check says, for the dead-letter reason.
std::string_view describe(SignatureCheck check) noexcept;

}  // namespace pgbridge::transport
