#pragma once

// The input format of the targets that feed a replication stream (transaction_assembler,
// capture_to_message): one option byte, then payloads, each a big-endian uint16 length and that
// many bytes (the last one may be short).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include <pgbridge/core/error.hpp>
#include <pgbridge/pgoutput/decoder.hpp>

namespace pgbridge::fuzz {

// Option bit 0: give the assembler primary keys, as capture does from the catalog.
inline constexpr std::uint8_t kWithPrimaryKeys = 1;
// Option bit 1: after a protocol error go on with reset() (capture starts a new session).
inline constexpr std::uint8_t kResetAfterError = 2;

inline std::vector<std::string_view> split_payloads(std::string_view input) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i + 2 <= input.size()) {
        const std::size_t length =
            (static_cast<std::size_t>(static_cast<unsigned char>(input[i])) << 8) |
            static_cast<unsigned char>(input[i + 1]);
        i += 2;
        const std::size_t n = std::min(length, input.size() - i);
        out.push_back(input.substr(i, n));
        i += n;
    }
    return out;
}

// The first column of each relation the stream describes, as its primary key.
inline std::unordered_map<std::uint32_t, std::vector<std::string>> primary_keys_of(
    const std::vector<std::string_view>& payloads) {
    std::unordered_map<std::uint32_t, std::vector<std::string>> keys;
    for (const auto payload : payloads) {
        try {
            const auto m = pgoutput::decode_message(payload, false);
            if (const auto* r = std::get_if<pgoutput::RelationMessage>(&m);
                r != nullptr && !r->table.columns.empty()) {
                keys[r->table.relation_oid] = {r->table.columns.front().name};
            }
        } catch (const Error&) {
        }
    }
    return keys;
}

}  // namespace pgbridge::fuzz
