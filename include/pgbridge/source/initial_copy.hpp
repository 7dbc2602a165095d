#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <stop_token>
#include <string>
#include <vector>

#include <pgbridge/config/config.hpp>
#include <pgbridge/pg/connection.hpp>
#include <pgbridge/source/column_filter.hpp>
#include <pgbridge/source/transaction_sink.hpp>

namespace pgbridge::source {

struct InitialCopyOptions {
    std::string bridge;
    std::string side;
    pg::ConnectOptions connect;  // the runtime role on the side
    std::vector<TableConfig> tables;
    std::size_t rows_per_transaction = 1000;
    // [[tables]] exclude_columns, in this side's names: left out as the capture does.
    std::map<QualifiedName, std::set<std::string>> excluded_columns;
};

// Copies the synced tables of one side that were never copied (none recorded in
// pgbridge.sync_state on that side) into the sink, as inserts with an unknown commit time,
// from one snapshot taken together with a temporary slot:
//   - the snapshot sees exactly what committed before the slot's consistent point C;
//   - each copied row travels as a change with commit LSN C, so on the target a live change
//     of the same row (commit LSN > C, from the bridge's own slot, which setup created
//     earlier) is never overwritten by the older copy, and a copy that arrives first is
//     overwritten by the live change;
//   - changes committed between the bridge slot's start and C are in both the stream and the
//     copy, and are recognised as already applied.
// Each table is recorded as copied only once the sink has made all of it durable (the
// broker confirmed it), so a copy cut short is done again on the next start.
// docs/initial-sync.md says more.
// How far a copy has got, for the metrics and the status line; written by the copy's thread.
struct CopyProgress {
    std::atomic<std::uint64_t> rows_copied{0};     // read and handed to the sink, this process
    std::atomic<std::uint64_t> rows_estimated{0};  // pg_class.reltuples of the tables to copy
};

class InitialCopy {
  public:
    InitialCopy(InitialCopyOptions options, TransactionSink& sink);
    const CopyProgress& progress() const { return progress_; }

    // Returns the rows copied (0 when every table was copied before). Returns early, with
    // nothing recorded for the table in hand, when stop is requested.
    std::uint64_t run(std::stop_token stop);

  private:
    InitialCopyOptions options_;
    TransactionSink& sink_;
    CopyProgress progress_;
};

}  // namespace pgbridge::source
