#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pgbridge::verify {

// A primary key as text values, in key column order.
using Key = std::vector<std::string>;

// The keys k with after < k <= up_to in the side's key order; an unset end is open.
struct KeyRange {
    std::optional<Key> after;
    std::optional<Key> up_to;

    bool operator==(const KeyRange&) const = default;
};

// What one side holds in a key range: how many rows, and an order-independent checksum of
// them (the sum of a hash of each row's compared columns). Equal digests mean, with the
// certainty of a 64-bit hash per row, equal rows.
struct RangeDigest {
    std::uint64_t rows = 0;
    std::string checksum;

    bool operator==(const RangeDigest&) const = default;
};

struct KeyedRowHash {
    Key key;
    std::string hash;
};

// One side of one synced table, as verify reads it: rows by primary-key range, hashed on the
// server, so that only digests and, for small ranges, keys cross the network. Two
// implementations: PostgresRowSource, and an in-memory one in the unit tests.
class RowSource {
  public:
    virtual ~RowSource() = default;

    // The keys at positions step, 2*step, ... (at most `count` of them) of the range, in key
    // order: where to cut it into chunks of `step` rows.
    virtual std::vector<Key> boundaries(const KeyRange& range, std::uint64_t step,
                                        std::size_t count) = 0;
    virtual RangeDigest digest(const KeyRange& range) = 0;
    // Every row of the range (meant for small ranges), with its hash.
    virtual std::vector<KeyedRowHash> row_hashes(const KeyRange& range) = 0;
};

}  // namespace pgbridge::verify
