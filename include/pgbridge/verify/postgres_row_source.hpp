#pragma once

#include <pgbridge/pg/connection.hpp>
#include <pgbridge/verify/compared_table.hpp>
#include <pgbridge/verify/row_source.hpp>

namespace pgbridge::verify {

// How a row is hashed on the server. hashtextextended (64 bits, native) is three times
// cheaper than md5 but its value depends on the server's byte order: verify uses it only when
// both servers give the same hash for the same text, md5 otherwise.
enum class RowHash { Md5, HashTextExtended };

// Which of the two the two servers can share.
RowHash common_row_hash(pg::Connection& a, pg::Connection& b);
std::string_view to_string(RowHash hash) noexcept;

// One side of a compared table on its server (docs/verify.md gives the queries). Every query
// is one short autocommit statement over a primary-key range: it reads through the index,
// takes no lock a writer waits for, and holds no snapshot between chunks. A row's hash is
// taken of the row constructor of the compared columns in canonical order, as text: the same
// on both sides for the same values, whatever each side calls its columns.
class PostgresRowSource final : public RowSource {
  public:
    // side_index: 0 or 1, which of table.sides this connection reaches.
    PostgresRowSource(pg::Connection& connection, const ComparedTable& table,
                      std::size_t side_index, RowHash hash);

    std::vector<Key> boundaries(const KeyRange& range, std::uint64_t step,
                                std::size_t count) override;
    RangeDigest digest(const KeyRange& range) override;
    std::vector<KeyedRowHash> row_hashes(const KeyRange& range) override;

  private:
    // "WHERE ..." for the range (empty when unbounded), with its parameters appended.
    std::string where(const KeyRange& range, pg::Params& params) const;

    pg::Connection& connection_;
    std::string table_;                     // quoted name on this side
    std::string row_filter_;                // ([[tables]] where), or empty
    std::string key_list_;                  // "k1", "k2" quoted, in key order
    std::string key_text_;                  // "k1"::text, ... for output
    std::vector<std::string> key_columns_;  // quoted
    std::vector<std::string> key_types_;
    std::string row_hash_;  // an int8 per row
};

}  // namespace pgbridge::verify
