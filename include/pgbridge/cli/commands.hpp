#pragma once

#include <map>
#include <string>
#include <vector>

namespace pgbridge::cli {

// Flags every command understands (--config, --json, -v; pgbridge(1), GLOBAL OPTIONS).
struct GlobalOptions {
    std::string config_path;
    bool json = false;
    int verbosity = 0;
};

struct SetupCommandOptions {
    std::map<std::string, std::string, std::less<>> admin_conninfo;  // side -> conninfo
    bool dry_run = false;
    bool keep_metadata = false;        // teardown only
    bool partition_sequences = false;  // setup only
};

struct RunCommandOptions {
    bool apply_only = false;  // one apply shard of both directions, nothing else
    std::string shard;        // I/N
};

struct HistoryCommandOptions {
    std::string table;  // as [[tables]] names it
    std::string key;    // a one-column key's value, or a JSON object of the key's columns
    std::string since;  // timestamptz text; empty: from the start
    std::string until;
};

struct RollbackCommandOptions {
    std::string source;  // the side whose changes are undone
    std::string since;   // timestamptz text
    std::string until;   // empty: now
    std::string table;   // empty: every synced table
    bool dry_run = false;
    bool yes = false;
};

struct TailCommandOptions {
    std::string side;
    bool from_start = false;  // the bridge's slot from its confirmed position, not a temporary one
    int count = 0;            // stop after this many transactions (0: never)
};

struct ConflictsCommandOptions {
    std::string action;  // list, show, resolve
    std::string id;      // show, resolve: SIDE:NUMBER
    std::string take;    // resolve: the side whose values stay
    bool pending = false;
    std::string table;  // list: only this table (as named on the side)
    int limit = 100;
};

struct DeadLettersCommandOptions {
    std::string action;            // list, show, replay, discard
    std::vector<std::string> ids;  // show: one; replay, discard: SIDE:NUMBER each
    bool all = false;              // list: handled ones too; replay, discard: every new one
    std::string side;              // only this side's log
    int limit = 100;               // list: per side
    bool payload = false;          // show: the message as it was received
};

struct VerifyCommandOptions {
    std::string table;  // only this synced table (canonical schema.table)
    bool no_fence = false;
    int wait_seconds = 60;  // for the fence
    bool dry_run = false;   // repair only
    int max_keys = 10000;   // differing keys collected per table
};

// Each returns the process exit code; errors propagate as pgbridge::Error.
int check_config_command(const GlobalOptions& global, bool offline);
int setup_command(const GlobalOptions& global, const SetupCommandOptions& options);
int teardown_command(const GlobalOptions& global, const SetupCommandOptions& options);
// Exit 1 when a side cannot be reached (the others are still listed).
int slots_command(const GlobalOptions& global);
int conflicts_command(const GlobalOptions& global, const ConflictsCommandOptions& options);
// pgbridge dead-letters list / show / replay / discard
int dead_letters_command(const GlobalOptions& global, const DeadLettersCommandOptions& options);
// Exit 1 when a side or the broker cannot be reached (what can be read is still shown).
int lag_command(const GlobalOptions& global);
// Exit 0 healthy, 1 degraded, 2 down.
int status_command(const GlobalOptions& global);
// The daemon: until SIGTERM (exit 0) or a failure it cannot retry (exit 1).
int run_command(const GlobalOptions& global, const RunCommandOptions& options);
// Exit 0 identical, 1 differences; errors exit 2 (main).
int verify_command(const GlobalOptions& global, const VerifyCommandOptions& options);
// Exit 0 when every difference was mended, 1 when some were left.
int repair_command(const GlobalOptions& global, const VerifyCommandOptions& options);
int history_command(const GlobalOptions& global, const HistoryCommandOptions& options);
int rollback_command(const GlobalOptions& global, const RollbackCommandOptions& options);
int tail_command(const GlobalOptions& global, const TailCommandOptions& options);
int version_command(const GlobalOptions& global);

}  // namespace pgbridge::cli
