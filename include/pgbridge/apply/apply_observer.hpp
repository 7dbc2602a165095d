#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <pgbridge/core/lsn.hpp>

namespace pgbridge::apply {

// What one committed batch did, for metrics.
struct AppliedBatch {
    struct TableCounts {
        std::string table;  // as the target names it
        std::uint64_t inserted = 0;
        std::uint64_t updated = 0;
        std::uint64_t deleted = 0;
        std::uint64_t skipped = 0;  // duplicates and superseded changes
    };
    struct Conflict {
        std::string table;
        std::string column;    // empty for a row-level conflict (delete wins)
        std::string strategy;  // field_priority, source_priority, last_write_wins, manual, ...
    };
    std::string source;
    std::string target;
    std::vector<TableCounts> tables;
    std::vector<Conflict> conflicts;
    // Per source transaction: target commit time minus source commit time, in seconds.
    std::vector<double> latencies;
    UnixMicros last_commit_time = 0;  // of the batch's last source transaction
};

// Told about every batch the applier commits (the metrics endpoint listens).
class ApplyObserver {
  public:
    virtual ~ApplyObserver() = default;
    virtual void batch_applied(const AppliedBatch& batch) = 0;
};

}  // namespace pgbridge::apply
