#pragma once

#include <string>
#include <vector>

#include <pgbridge/core/change_event.hpp>

namespace pgbridge::transport {

enum class BatchKind {
    Live,      // captured from a slot
    Backfill,  // initial sync or a table added later: lowest priority
};

// What one RabbitMQ message carries: consecutive whole transactions of one source side.
struct ChangeBatch {
    std::string bridge;
    std::string source_side;
    BatchKind kind = BatchKind::Live;
    std::vector<SourceTransaction> transactions;

    Lsn first_commit_lsn() const;
    Lsn last_end_lsn() const;
    UnixMicros last_commit_time() const;
    std::size_t change_count() const;
    // Schema-qualified names of every table a change touches, in first-seen order.
    std::vector<std::string> table_names() const;
};

std::string_view to_string(BatchKind kind) noexcept;

}  // namespace pgbridge::transport
