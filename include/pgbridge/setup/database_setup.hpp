#pragma once

#include <map>
#include <string>

#include <pgbridge/config/config.hpp>
#include <pgbridge/core/setup_report.hpp>

namespace pgbridge {

struct DatabaseSetupOptions {
    // Per side, a conninfo to run setup with instead of the side's own (typically a superuser
    // or the owner of the tables); then setup also creates and grants the side's runtime role.
    std::map<std::string, std::string, std::less<>> admin_conninfo;
    bool dry_run = false;
    bool keep_metadata = false;  // teardown: leave schema pgbridge (conflict log) in place
    // setup: key columns fed by a sequence on both sides get odd keys on the first side of the
    // file and even keys on the second (key_sequences.hpp) instead of being refused.
    bool partition_sequences = false;
    int timeout_ms = 30000;
};

// Makes both databases ready for the bridge, idempotently: metadata schema, runtime role and
// its grants, REPLICA IDENTITY FULL, publication, replication origin, and last the slot.
// Checks everything it can before changing anything: both servers reachable and new enough,
// wal_level = logical, every synced table present with a primary key, the columns of the
// two sides matching through the configured mapping, and no key column that sequences on both
// sides feed with the same values. Throws Error(ErrorKind::Setup) listing every problem found.
SetupReport setup_databases(const Config& config, const DatabaseSetupOptions& options);

// Drops what setup created: the slots of both sides first, so no WAL stays held, then origins,
// publications and (unless keep_metadata, or another bridge still uses it) schema pgbridge.
// Refuses while a slot is in use.
SetupReport teardown_databases(const Config& config, const DatabaseSetupOptions& options);

}  // namespace pgbridge
