#include <algorithm>
#include <map>

#include <pgbridge/verify/both_sides.hpp>
#include <pgbridge/verify/range_differ.hpp>

namespace pgbridge::verify {
namespace {

// Deeper than any table needs (16^12 rows); only reached when the sides keep changing under
// the comparison, and then the range is compared row by row.
constexpr int kMaxDepth = 12;
// Top-level chunks whose digests are taken per round trip of boundaries.
constexpr std::size_t kTopLevelWindow = 16;

// The ranges between consecutive cut points, from range.after; the last one reaches
// range.up_to when with_tail, and ends at the last cut point otherwise.
std::vector<KeyRange> pieces(const KeyRange& range, const std::vector<Key>& cuts, bool with_tail) {
    std::vector<KeyRange> out;
    std::optional<Key> after = range.after;
    for (const Key& cut : cuts) {
        out.push_back(KeyRange{after, cut});
        after = cut;
    }
    if (with_tail) {
        out.push_back(KeyRange{after, range.up_to});
    }
    return out;
}

class Differ {
  public:
    Differ(RowSource& a, RowSource& b, const DifferOptions& options)
        : a_(a), b_(b), options_(options) {}

    DifferResult run() {
        std::optional<Key> after;
        for (;;) {
            const KeyRange rest{after, std::nullopt};
            const auto cuts = a_.boundaries(rest, options_.chunk_rows, kTopLevelWindow);
            const bool last_window = cuts.size() < kTopLevelWindow;
            compare(pieces(rest, cuts, last_window), 0);
            if (options_.progress) {
                options_.progress(result_.rows_a);
            }
            if (last_window || result_.truncated) {
                break;
            }
            after = cuts.back();
        }
        return std::move(result_);
    }

  private:
    void compare(const std::vector<KeyRange>& ranges, int depth) {
        const auto [digests_a, digests_b] = on_both_sides([&](std::size_t i) {
            RowSource& side = source(i);
            std::vector<RangeDigest> out;
            out.reserve(ranges.size());
            for (const auto& r : ranges) {
                out.push_back(side.digest(r));
            }
            return out;
        });
        for (std::size_t i = 0; i < ranges.size(); ++i) {
            const RangeDigest& da = digests_a[i];
            const RangeDigest& db = digests_b[i];
            ++result_.ranges;
            if (depth == 0) {
                result_.rows_a += da.rows;
                result_.rows_b += db.rows;
            }
            if (da == db || result_.truncated) {
                continue;
            }
            ++result_.mismatched_ranges;
            descend(ranges[i], da, db, depth);
        }
    }

    void descend(const KeyRange& range, const RangeDigest& da, const RangeDigest& db, int depth) {
        const std::uint64_t rows = std::max(da.rows, db.rows);
        if (rows > options_.leaf_rows && depth < kMaxDepth) {
            RowSource& walker = da.rows >= db.rows ? a_ : b_;
            const std::uint64_t step = (rows + options_.fan_out - 1) / options_.fan_out;
            const auto cuts = walker.boundaries(range, step, options_.fan_out - 1);
            if (!cuts.empty()) {
                compare(pieces(range, cuts, true), depth + 1);
                return;
            }
        }
        compare_rows(range);
    }

    void compare_rows(const KeyRange& range) {
        const auto [rows_a, rows_b] =
            on_both_sides([&](std::size_t i) { return source(i).row_hashes(range); });
        std::map<Key, const std::string*> hashes_b;
        for (const auto& r : rows_b) {
            hashes_b.emplace(r.key, &r.hash);
        }
        for (const auto& r : rows_a) {
            const auto it = hashes_b.find(r.key);
            if (it == hashes_b.end() || *it->second != r.hash) {
                add(r.key);
            }
            if (it != hashes_b.end()) {
                hashes_b.erase(it);
            }
        }
        for (const auto& [key, hash] : hashes_b) {
            add(key);
        }
    }

    RowSource& source(std::size_t i) { return i == 0 ? a_ : b_; }

    void add(const Key& key) {
        if (result_.keys.size() >= options_.max_keys) {
            result_.truncated = true;
            return;
        }
        result_.keys.insert(key);
    }

    RowSource& a_;
    RowSource& b_;
    const DifferOptions& options_;
    DifferResult result_;
};

}  // namespace

DifferResult find_differing_keys(RowSource& a, RowSource& b, const DifferOptions& options) {
    return Differ(a, b, options).run();
}

}  // namespace pgbridge::verify
