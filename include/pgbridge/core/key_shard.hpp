#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgbridge {

// The apply shard of a row, from its primary key (docs/topologies.md, "Sharded apply"): the
// publisher routes each change by it, and a shard's applier finds its own rows of a table in
// SQL by the same rule (key_shard_sql), so both must agree byte for byte:
//
//   the key's values as text (each column's output function, under pgbridge's session
//   settings: pg/connection.cpp), sorted bytewise, joined by U+001F; the first four bytes of
//   their MD5, big-endian, modulo the number of shards.
//
// Sorted rather than in column order: the sides may order or name their key columns
// differently (column mapping); a key's set of values is the same on both.
std::uint32_t key_shard(std::vector<std::string_view> values, std::uint32_t shards);

// The same rule as an SQL expression of type bigint over the given column expressions (for
// instance quoted column names), for shards > 0.
std::string key_shard_sql(const std::vector<std::string>& columns, std::uint32_t shards);

}  // namespace pgbridge
