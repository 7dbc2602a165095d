#pragma once

#include <map>
#include <string>

namespace pgbridge::cli {

// Flags every command understands (SPEC: --config, --json, -v).
struct GlobalOptions {
    std::string config_path;
    bool json = false;
    int verbosity = 0;
};

struct SetupCommandOptions {
    std::map<std::string, std::string, std::less<>> admin_conninfo;  // side -> conninfo
    bool dry_run = false;
    bool keep_metadata = false;  // teardown only
};

// Each returns the process exit code; errors propagate as pgbridge::Error.
int check_config_command(const GlobalOptions& global);
int setup_command(const GlobalOptions& global, const SetupCommandOptions& options);
int teardown_command(const GlobalOptions& global, const SetupCommandOptions& options);
int version_command(const GlobalOptions& global);

}  // namespace pgbridge::cli
