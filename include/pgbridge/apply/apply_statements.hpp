#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <pgbridge/apply/target_table.hpp>

namespace pgbridge::apply {

// The SQL the applier runs against a target table. Identifiers are always quoted; values are
// always parameters ($n), typed by the column they are compared with or written to.

// INSERT INTO t (c...) VALUES ($1...): the listed columns, in that order.
std::string insert_statement(const TargetTable& table, const std::vector<std::size_t>& columns);
// UPDATE t SET c = $1, ... WHERE key = $k...: the listed columns, then the key columns.
std::string update_statement(const TargetTable& table, const std::vector<std::size_t>& columns);
// DELETE FROM t WHERE key = $1...
std::string delete_statement(const TargetTable& table);
// The other side's TRUNCATE of t, as deletes: every row but those this side wrote after the
// truncate committed there (row_versions table name $1, the truncate's commit time $2; NULL:
// every row), and only the rows of the table's row filter. docs/apply-design.md, "Truncate".
// With shards > 1, only the rows of `shard` (0-based): a sharded direction sends a truncate to
// every shard, and each removes its own rows (core/key_shard.hpp).
std::string truncate_statement(const TargetTable& table, std::uint32_t shard = 0,
                               std::uint32_t shards = 1);
// The foreign keys of other tables whose ON DELETE would change them when rows of the tables
// $1 (regclass[]) go: (referencing table, referenced table).
extern const char* const kReadReachingReferences;
// The commit time (µs) of this side's last TRUNCATE of row_versions table name $1, if any.
extern const char* const kReadTruncationStatement;

// Locks and reads the rows of many keys at once. Parameters: $1 int4[] of ordinals, then one
// text[] per key column. Returns (ordinal, every column) for the keys that exist.
std::string lock_rows_statement(const TargetTable& table);
// Locks and reads the row_versions of many keys at once, with the commit times of the local
// transactions they name. Parameters: $1 table name (versions_name), $2 int4[] ordinals, then
// one text[] per key column. Returns (ordinal, columns, local_row_writes,
// seen_remote_row_writes, local_delete_writes, deleted, deleted_applied_remote, commit times
// as a JSON object xid -> microseconds).
std::string lock_versions_statement(const TargetTable& table);
// Reads, without locking anything, the rows and row_versions of many keys at once (verify).
// Parameters as for lock_versions_statement. Returns, for every key in ordinal order:
// ordinal, whether the row exists, every column, whether row_versions has the key, then the
// row_versions columns of lock_versions_statement.
std::string read_key_states_statement(const TargetTable& table);
// Inserts the row_versions of many keys that had none. Parameters: $1 table name, one text[]
// per key column, then text[] columns, int8[] local_row_writes, int8[] seen_remote_row_writes,
// int8[] local_delete_writes, text[] deleted, text[] deleted_applied_remote.
std::string insert_versions_statement(const TargetTable& table);
// Overwrites the row_versions of one key (locked by lock_versions_statement). Parameters as
// for the insert, one value each instead of arrays.
std::string update_versions_statement(const TargetTable& table);

// Moves pgbridge.apply_progress of (bridge $1, source side $2) forward to end LSN $3 and
// commit time $4 (never back: batches of different priorities commit out of order), and
// clears what it was waiting for.
extern const char* const kRecordProgressStatement;

// Records that the apply of (bridge $1, source side $2) waits for $3 on this side (a column
// of the source's table it lacks), since when it first did: status shows it.
extern const char* const kRecordWaitingStatement;

}  // namespace pgbridge::apply
