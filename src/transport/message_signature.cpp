#include <array>
#include <memory>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

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

std::array<unsigned char, kMacBytes> compute(const SigningKey& key, std::string_view type,
                                             std::string_view body) {
    std::array<unsigned char, kMacBytes> out{};
    EVP_MAC* mac = hmac();
    MacContext ctx(mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr, &EVP_MAC_CTX_free);
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                 OSSL_PARAM_construct_end()};
    const std::string& secret = key.key.reveal();
    std::size_t length = 0;
    const char separator = '\0';
    const bool ok =
        ctx != nullptr &&
        EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(secret.data()),
                     secret.size(), params) == 1 &&
        EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(kDomain.data()),
                       kDomain.size()) == 1 &&
        EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(&separator), 1) == 1 &&
        EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(type.data()),
                       type.size()) == 1 &&
        EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(&separator), 1) == 1 &&
        EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(body.data()),
                       body.size()) == 1 &&
        EVP_MAC_final(ctx.get(), out.data(), &length, out.size()) == 1 && length == kMacBytes;
    if (!ok) {
        throw Error(ErrorKind::Internal, "OpenSSL could not compute an HMAC-SHA256")
            .with("key_id", key.id);
    }
    return out;
}

}  // namespace

std::string message_signature(const SigningKey& key, std::string_view type, std::string_view body) {
    const auto mac = compute(key, type, body);
    return std::string(kVersion) + " " + key.id + " " +
           to_hex(std::string_view(reinterpret_cast<const char*>(mac.data()), mac.size()));
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
        if (CRYPTO_memcmp(mac.data(), claimed->data(), kMacBytes) == 0) {
            return SignatureCheck::Valid;
        }
        result = SignatureCheck::Mismatch;
    }
    return result;
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
    }
    return "?";
}

}  // namespace pgbridge::transport
