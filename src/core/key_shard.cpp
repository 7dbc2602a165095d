#include <algorithm>
#include <array>
#include <openssl/evp.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/core/key_shard.hpp>

namespace pgbridge {
namespace {

// Fetched once: OpenSSL 3 looks the algorithm up again on every EVP_md5() digest otherwise,
// and this runs for every change of a sharded direction.
const EVP_MD* md5() {
    static EVP_MD* const md = EVP_MD_fetch(nullptr, "MD5", nullptr);
    return md;
}

}  // namespace

std::uint32_t key_shard(std::vector<std::string_view> values, std::uint32_t shards) {
    if (shards <= 1) {
        return 0;
    }
    std::sort(values.begin(), values.end());
    std::string joined;
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) {
            joined += '\x1f';
        }
        joined += values[i];
    }
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    if (md5() == nullptr ||
        EVP_Digest(joined.data(), joined.size(), digest.data(), &length, md5(), nullptr) != 1 ||
        length < 4) {
        throw Error(ErrorKind::Internal, "MD5 is not available from OpenSSL");
    }
    const std::uint32_t hash = (std::uint32_t{digest[0]} << 24) | (std::uint32_t{digest[1]} << 16) |
                               (std::uint32_t{digest[2]} << 8) | std::uint32_t{digest[3]};
    return hash % shards;
}

std::string key_shard_sql(const std::vector<std::string>& columns, std::uint32_t shards) {
    // format('%s', c) is the column's output function, as pgoutput sends it (a ::text cast
    // would strip a char(n) key's padding); COLLATE "C" sorts bytewise.
    std::string array;
    for (std::size_t i = 0; i < columns.size(); ++i) {
        array += (i > 0 ? ", " : "") + ("pg_catalog.format('%s', " + columns[i] + ")");
    }
    return "(('x' || pg_catalog.left(pg_catalog.md5((SELECT pg_catalog.string_agg(v, "
           "pg_catalog.chr(31) ORDER BY v COLLATE \"C\") FROM pg_catalog.unnest(ARRAY[" +
           array + "]::text[]) AS v)), 8))::bit(32)::int8 % " + std::to_string(shards) + ")";
}

}  // namespace pgbridge
