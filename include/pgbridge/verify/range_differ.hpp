#pragma once

#include <cstdint>
#include <functional>
#include <set>

#include <pgbridge/verify/row_source.hpp>

namespace pgbridge::verify {

struct DifferOptions {
    std::uint64_t chunk_rows = 10000;  // rows per range at the top level
    std::size_t fan_out = 16;          // sub-ranges a mismatching range is cut into
    // A range this small is compared row by row: fetching 2,500 key hashes costs about what
    // digesting 16 sub-ranges does, and far less when differences are dense.
    std::uint64_t leaf_rows = 2500;
    // Stop collecting candidates beyond this many (about 3 KB of memory each once read).
    std::size_t max_keys = 10000;
    // Told the rows of side A compared so far, after each round of top-level chunks.
    std::function<void(std::uint64_t rows)> progress;
};

struct DifferResult {
    std::uint64_t rows_a = 0;  // rows of each side, from the top-level digests
    std::uint64_t rows_b = 0;
    std::uint64_t ranges = 0;             // ranges whose digests were compared, at every level
    std::uint64_t mismatched_ranges = 0;  // of those, the ones that differed
    // Keys whose row is on one side only or hashes differently: candidates, to be read and
    // compared column by column (a row still in flight shows up here too).
    std::set<Key> keys;
    bool truncated = false;  // max_keys reached: more keys differ than were collected
};

// Finds the keys in which two sides differ by comparing range digests, the way
// pt-table-checksum and data-diff do: the key space is cut into chunks of about chunk_rows
// rows (at side A's keys); a chunk whose digests differ is cut again at the keys of the side
// that has more rows in it, until a range has at most leaf_rows rows, whose keys and row
// hashes are then compared. Digests of a range are taken on both sides at once (a thread
// per side), so each source must be usable from a thread other than the caller's.
//
// Sides that order keys differently (different collations of a text key) still give correct
// candidates: a key the two sides put in different ranges shows as missing in both, and the
// column-by-column read that follows looks it up by equality.
DifferResult find_differing_keys(RowSource& a, RowSource& b, const DifferOptions& options);

}  // namespace pgbridge::verify
