#include <array>
#include <initializer_list>
#include <memory>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <optional>

#include <pgbridge/core/error.hpp>
#include <pgbridge/core/hex.hpp>
#include <pgbridge/transport/message_signature.hpp>

namespace pgbridge::transport {
namespace {

constexpr std::string_view kVersion = "v1";
// Domain separation: a MAC made for a pgbridge message means nothing elsewhere, and type and
// body cannot be shifted into each other (the type never holds a NUL).
constexpr std::string_view kDomain = "pgbridge.message.v1";
constexpr std::size_t kMacBytes = 32;

using MacContext = std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)>;

EVP_MAC* hmac() {
    // Fetched once: a fetch looks the algorithm up in the provider tables.
    static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    return mac;
}

using Mac = std::array<unsigned char, kMacBytes>;

// The HMAC-SHA256 of the parts one after another; nothing when it cannot be computed. Never
// throws: a failure is the caller's per-message outcome.
std::optional<Mac> hmac_sha256(std::string_view key,
                               std::initializer_list<std::string_view> parts) {
    Mac out{};
    EVP_MAC* mac = hmac();
    MacContext ctx(mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr, &EVP_MAC_CTX_free);
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                 OSSL_PARAM_construct_end()};
    if (ctx == nullptr ||
        EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                     params) != 1) {
        return std::nullopt;
    }
    for (const std::string_view part : parts) {
        if (EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(part.data()),
                           part.size()) != 1) {
            return std::nullopt;
        }
    }
    std::size_t length = 0;
    if (EVP_MAC_final(ctx.get(), out.data(), &length, out.size()) != 1 || length != kMacBytes) {
        return std::nullopt;
    }
    return out;
}

std::optional<Mac> compute(const SigningKey& key, std::string_view type, std::string_view body) {
    const std::string& secret = key.key.reveal();
    // Nothing is signed or verified with less than a signing key file allows (a key that did
    // not come from one).
    if (secret.size() < kMinSigningKeyBytes) {
        return std::nullopt;
    }
    constexpr std::string_view separator("\0", 1);
    return hmac_sha256(secret, {kDomain, separator, type, separator, body});
}

}  // namespace

std::string message_signature(const SigningKey& key, std::string_view type, std::string_view body) {
    const auto mac = compute(key, type, body);
    if (!mac) {
        // A publish that failed: the capture publishes it again after a pause, as one the
        // broker refused (hence Broker). A libcrypto that cannot compute HMAC-SHA256 at all
        // stops `run` at start instead (check_hmac_sha256).
        throw Error(ErrorKind::Broker,
                    "could not sign a message: OpenSSL did not compute its HMAC-SHA256; it is "
                    "not published")
            .with("key_id", key.id);
    }
    return std::string(kVersion) + " " + key.id + " " +
           to_hex(std::string_view(reinterpret_cast<const char*>(mac->data()), mac->size()));
}

void sign(OutgoingMessage& message, const std::vector<SigningKey>& keys) {
    if (keys.empty()) {
        return;
    }
    message.properties.headers.set(
        std::string(kSignatureHeader),
        message_signature(keys.front(), message.properties.type.value_or(""), message.body));
}

SignatureCheck check_signature(const std::vector<SigningKey>& keys,
                               const std::optional<std::string>& header, std::string_view type,
                               std::string_view body) {
    if (!header) {
        return SignatureCheck::Missing;
    }
    const std::string_view text = *header;
    const auto first = text.find(' ');
    const auto second = first == std::string_view::npos ? first : text.find(' ', first + 1);
    if (second == std::string_view::npos || text.substr(0, first) != kVersion) {
        return SignatureCheck::Malformed;
    }
    const std::string_view id = text.substr(first + 1, second - first - 1);
    const auto claimed = from_hex(text.substr(second + 1));
    if (!claimed || claimed->size() != kMacBytes) {
        return SignatureCheck::Malformed;
    }
    // Two keys may share an id (32 bits of their hash): each one named is tried.
    SignatureCheck result = SignatureCheck::UnknownKey;
    for (const auto& key : keys) {
        if (key.id != id) {
            continue;
        }
        const auto mac = compute(key, type, body);
        if (!mac) {
            if (result == SignatureCheck::UnknownKey) {
                result = SignatureCheck::Unverifiable;
            }
            continue;
        }
        if (CRYPTO_memcmp(mac->data(), claimed->data(), kMacBytes) == 0) {
            return SignatureCheck::Valid;
        }
        result = SignatureCheck::Mismatch;
    }
    return result;
}

void check_hmac_sha256() {
    // RFC 4231, test case 2.
    constexpr std::string_view expected =
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    const auto mac = hmac_sha256("Jefe", {"what do ya want ", "for nothing?"});
    if (!mac || to_hex(std::string_view(reinterpret_cast<const char*>(mac->data()), mac->size())) !=
                    expected) {
        throw Error(ErrorKind::Setup,
                    "OpenSSL cannot compute HMAC-SHA256, which signing messages "
                    "(rabbitmq.signing_key_file) needs; check the libcrypto pgbridge runs with")
            .with("openssl", OpenSSL_version(OPENSSL_VERSION));
    }
}

std::string_view describe(SignatureCheck check) noexcept {
    switch (check) {
        case SignatureCheck::Valid:
            return "signed by a key of this bridge";
        case SignatureCheck::Missing:
            return "message is not signed, and this bridge has rabbitmq.signing_key_file";
        case SignatureCheck::Malformed:
            return "message signature is not \"v1 KEYID MAC\"";
        case SignatureCheck::UnknownKey:
            return "message is signed by a key rabbitmq.signing_key_file does not hold";
        case SignatureCheck::Mismatch:
            return "message signature does not match its body: forged or altered";
        case SignatureCheck::Unverifiable:
            return "message signature could not be checked (OpenSSL did not compute its "
                   "HMAC-SHA256); refused as forged";
    }
    return "?";
}

}  // namespace pgbridge::transport
