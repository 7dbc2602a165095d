#include <doctest/doctest.h>

#include <pgbridge/config/signing_keys.hpp>
#include <pgbridge/core/base64.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/error_policy.hpp>
#include <pgbridge/transport/message_signature.hpp>

using namespace pgbridge;
using namespace pgbridge::transport;

namespace {

std::vector<SigningKey> keys_of(const std::string& text) {
    std::string error;
    auto keys = parse_signing_keys(text, &error);
    INFO(error);
    REQUIRE(keys);
    return std::move(*keys);
}

std::string parse_error_of(const std::string& text) {
    std::string error;
    CHECK_FALSE(parse_signing_keys(text, &error));
    return error;
}

}  // namespace

TEST_SUITE("unit") {
    TEST_CASE("a signing key file: one base64 key a line, the first signs, ids from SHA-256") {
        const std::string a = base64_encode(std::string(32, 'a'));
        const std::string b = base64_encode(std::string(48, 'b'));
        const auto keys = keys_of("\n" + a + "\r\n  " + b + "  \n\n");
        REQUIRE(keys.size() == 2);
        CHECK(keys[0].key.reveal() == std::string(32, 'a'));
        CHECK(keys[1].key.reveal() == std::string(48, 'b'));
        // printf 'a%.0s' {1..32} | sha256sum: 3ba3f5f4...
        CHECK(keys[0].id == "3ba3f5f4");
        CHECK(keys[0].id != keys[1].id);

        const std::string short_key = base64_encode(std::string(31, 's'));
        CHECK(parse_error_of(a + "\n" + short_key).find("line 2 is not a key") !=
              std::string::npos);
        CHECK(parse_error_of("not base64!").find("line 1") != std::string::npos);
        CHECK(parse_error_of(a + "\n" + a).find("repeats key 3ba3f5f4") != std::string::npos);
        CHECK(parse_error_of("\n \n").find("no key") != std::string::npos);
        // An error never quotes the file.
        CHECK(parse_error_of(short_key).find(short_key) == std::string::npos);
    }

    TEST_CASE("a signature covers the type and the body, and names its key") {
        const auto keys = keys_of(base64_encode(std::string(32, 'k')) + "\n" +
                                  base64_encode(std::string(32, 'o')));
        const std::string header = message_signature(keys[0], "pgbridge.changes", "{\"a\":1}");
        CHECK(header.starts_with("v1 " + keys[0].id + " "));
        CHECK(header.size() == 3 + 8 + 1 + 64);
        CHECK(check_signature(keys, header, "pgbridge.changes", "{\"a\":1}") ==
              SignatureCheck::Valid);
        // The previous key still verifies (rotation).
        CHECK(check_signature(keys, message_signature(keys[1], "t", "b"), "t", "b") ==
              SignatureCheck::Valid);
        CHECK(check_signature(keys, header, "pgbridge.changes", "{\"a\":2}") ==
              SignatureCheck::Mismatch);
        CHECK(check_signature(keys, header, "pgbridge.other", "{\"a\":1}") ==
              SignatureCheck::Mismatch);
        // Type and body cannot trade bytes.
        CHECK(check_signature(keys, message_signature(keys[0], "ab", "c"), "a", "bc") ==
              SignatureCheck::Mismatch);
        CHECK(check_signature(keys, std::nullopt, "t", "b") == SignatureCheck::Missing);
        for (const std::string& bad :
             std::vector<std::string>{"", "v1", "v1 x", "v2 " + keys[0].id + " 00",
                                      "v1 " + keys[0].id + " zz", "v1 " + keys[0].id + " 00"}) {
            CHECK(check_signature(keys, bad, "t", "b") == SignatureCheck::Malformed);
        }
        const auto other = keys_of(base64_encode(std::string(32, 'x')));
        CHECK(check_signature(keys, message_signature(other[0], "t", "b"), "t", "b") ==
              SignatureCheck::UnknownKey);
    }

    TEST_CASE(
        "a MAC that cannot be computed: the message is refused as forged when checked, a "
        "publish failure the capture retries when signed") {
        // No MAC is computed with a key shorter than a signing key file allows: it stands for
        // a libcrypto that fails on one message.
        const SigningKey broken{"0badc0de", Secret(std::string(kMinSigningKeyBytes - 1, 'b'))};
        const std::string naming_broken = "v1 " + broken.id + " " + std::string(64, '0');
        CHECK(check_signature({broken}, naming_broken, "t", "b") == SignatureCheck::Unverifiable);
        CHECK(std::string(describe(SignatureCheck::Unverifiable)).find("refused as forged") !=
              std::string::npos);

        OutgoingMessage message{"", "", {}, "body"};
        message.properties.type = "pgbridge.changes";
        try {
            sign(message, {broken});
            FAIL("signed without a MAC");
        } catch (const Error& e) {
            CHECK(classify_session_failure(e) == FailureAction::Reconnect);
            CHECK(e.context_value("key_id") == broken.id);
        }
        CHECK_FALSE(message.properties.headers.get_string(kSignatureHeader));

        // What run checks at start: OpenSSL gives RFC 4231's answer.
        CHECK_NOTHROW(check_hmac_sha256());
    }
}
