// The pgbridge command line: parses arguments and hands each subcommand to its module.

#include <iostream>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <libpq-fe.h>
#include <nlohmann/json.hpp>

#include <pgbridge/cli/commands.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/transport/amqp_connection.hpp>

#include "pgbridge_version.hpp"

namespace pgbridge::cli {

int version_command(const GlobalOptions& global) {
    const int libpq = PQlibVersion();
    const std::string libpq_version = fmt::format("{}.{}", libpq / 10000, libpq % 10000);
    if (global.json) {
        std::cout << nlohmann::json{{"pgbridge", PGBRIDGE_VERSION},
                                    {"libpq", libpq_version},
                                    {"rabbitmq_c", transport::rabbitmq_c_version()}}
                         .dump()
                  << '\n';
    } else {
        std::cout << fmt::format("pgbridge {} (libpq {}, rabbitmq-c {})\n", PGBRIDGE_VERSION,
                                 libpq_version, transport::rabbitmq_c_version());
    }
    return 0;
}

namespace {

void parse_admin_conninfo(const std::vector<std::string>& items, SetupCommandOptions& options) {
    for (const auto& item : items) {
        const auto eq = item.find('=');
        if (eq == std::string::npos || eq == 0) {
            throw Error(ErrorKind::Usage,
                        fmt::format("--admin-conninfo expects SIDE=CONNINFO, got '{}'",
                                    item.substr(0, item.find(' '))));
        }
        options.admin_conninfo[item.substr(0, eq)] = item.substr(eq + 1);
    }
}

// --config, --json and -v on one parser, in a group of their own in its --help.
void add_global_flags(CLI::App& parser, GlobalOptions& global) {
    constexpr const char* kGroup = "Global options (before or after the command)";
    parser.add_option("--config", global.config_path, "configuration file")
        ->type_name("PATH")
        ->capture_default_str()
        ->group(kGroup);
    parser.add_flag("--json", global.json, "machine-readable output")->group(kGroup);
    // Counted across parsers: `pgbridge -v lag -v` is two steps.
    parser
        .add_flag_function(
            "-v,--verbose",
            [&global](std::int64_t count) { global.verbosity += static_cast<int>(count); },
            "more log output (repeat for more)")
        ->group(kGroup);
}

// CLI11 lists only a command's own options in its --help, and fallthrough alone would leave
// the global flags out of `pgbridge lag --help`: every command gets them too, bound to the
// same GlobalOptions, so `pgbridge lag --json` and `pgbridge --json lag` mean the same.
void add_global_flags_to_commands(CLI::App& parent, GlobalOptions& global) {
    for (CLI::App* command : parent.get_subcommands([](CLI::App*) { return true; })) {
        add_global_flags(*command, global);
        add_global_flags_to_commands(*command, global);
    }
}

// Every command may hold the passwords of both databases and the broker in memory: no core
// file is written, and no other process of the same user may read the process's memory
// (ptrace, /proc/PID/mem). Root still can; docs/security.md.
void protect_secrets_in_memory() {
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    const rlimit none{0, 0};
    ::setrlimit(RLIMIT_CORE, &none);
}

}  // namespace
}  // namespace pgbridge::cli

int main(int argc, char** argv) {
    using namespace pgbridge;
    using namespace pgbridge::cli;
    protect_secrets_in_memory();

    CLI::App app{
        "pgbridge: two-way PostgreSQL sync through RabbitMQ, built on logical "
        "replication"};
    app.require_subcommand(0, 1);
    // Global flags are accepted after the command too: `pgbridge slots --json`.
    app.fallthrough();
    GlobalOptions global;
    global.config_path = std::string(kDefaultConfigPath);
    bool show_version = false;
    add_global_flags(app, global);
    app.add_flag("--version", show_version, "print versions of pgbridge, libpq and rabbitmq-c");

    auto* check_config =
        app.add_subcommand("check-config", "validate the configuration and print the rules");
    bool check_offline = false;
    check_config->add_flag("--offline", check_offline,
                           "do not check field_priority columns against the databases");

    SetupCommandOptions setup_options;
    std::vector<std::string> admin_conninfo;
    auto* setup = app.add_subcommand(
        "setup", "create metadata schema, role grants, publications, origins and slots");
    setup->add_option("--admin-conninfo", admin_conninfo,
                      "SIDE=CONNINFO to run setup as another role (e.g. a superuser); "
                      "then the side's own role is created and granted too");
    setup->add_flag("--dry-run", setup_options.dry_run, "report what would change, change nothing");
    setup->add_flag("--partition-sequences", setup_options.partition_sequences,
                    "key columns a sequence feeds on both sides: odd keys on the first side of "
                    "the file, even on the second (INCREMENT BY 2, restarted above every key in "
                    "use); without it setup refuses such tables unless keys = \"disjoint\"");

    bool yes = false;
    auto* teardown = app.add_subcommand("teardown", "drop what setup created, slots first");
    teardown->add_flag("--yes", yes, "confirm: drops slots, origins, publications and metadata");
    teardown->add_option("--admin-conninfo", admin_conninfo, "SIDE=CONNINFO as for setup");
    teardown->add_flag("--keep-metadata", setup_options.keep_metadata,
                       "keep schema pgbridge (conflict log and dead letters)");
    teardown->add_flag("--dry-run", setup_options.dry_run,
                       "report what would be dropped, drop nothing (needs no --yes)");

    TailCommandOptions tail_options;
    auto* run = app.add_subcommand("run", "the daemon: both directions of the bridge");
    RunCommandOptions run_options;
    auto* apply_only = run->add_flag(
        "--apply-only", run_options.apply_only,
        "one apply worker of a sharded bridge: shard --shard of both directions, nothing else "
        "(the shard must be listed in [engine] remote_apply_shards)");
    run->add_option("--shard", run_options.shard, "I/N: shard I of [engine] apply_workers = N")
        ->needs(apply_only);
    apply_only->needs(run->get_option("--shard"));
    auto* slots = app.add_subcommand(
        "slots", "every replication slot holding WAL on both sides, pgbridge's first");
    auto* lag =
        app.add_subcommand("lag", "per direction: WAL not captured, queued, seconds behind");
    auto* status =
        app.add_subcommand("status", "health summary; exit 0 healthy, 1 degraded, 2 down");
    auto* conflicts = app.add_subcommand("conflicts", "the conflict log and manual resolution");
    conflicts->require_subcommand(1);
    conflicts->fallthrough();
    ConflictsCommandOptions conflicts_options;
    auto* conflicts_list =
        conflicts->add_subcommand("list", "conflicts of both sides, newest first");
    conflicts_list->add_flag("--pending", conflicts_options.pending, "only pending ones");
    conflicts_list->add_option("--table", conflicts_options.table,
                               "only this table (schema.table as the side names it)");
    conflicts_list->add_option("--limit", conflicts_options.limit, "per side")
        ->capture_default_str();
    auto* conflicts_show = conflicts->add_subcommand("show", "one conflict with both values");
    conflicts_show->add_option("ID", conflicts_options.id, "SIDE:NUMBER")->required();
    auto* conflicts_resolve = conflicts->add_subcommand(
        "resolve", "settle a pending conflict: write the chosen side's values on both sides");
    conflicts_resolve->add_option("ID", conflicts_options.id, "SIDE:NUMBER")->required();
    conflicts_resolve->add_option("--take", conflicts_options.take, "the side whose values stay")
        ->required();
    HistoryCommandOptions history_options;
    auto* history = app.add_subcommand(
        "history", "one row's changes on both sides, oldest first (needs [history])");
    history->add_option("--table", history_options.table, "the table, as [[tables]] names it")
        ->required();
    history
        ->add_option("--key", history_options.key,
                     "its primary key: the value, or a JSON object of the key's columns")
        ->required();
    history->add_option("--since", history_options.since,
                        "only changes at or after (ISO 8601 or PostgreSQL timestamptz text)");
    history->add_option("--until", history_options.until, "only changes before");
    RollbackCommandOptions rollback_options;
    auto* rollback = app.add_subcommand(
        "rollback",
        "put back what SIDE's changes of a window overwrote, on both sides (needs [history])");
    rollback->add_option("--source", rollback_options.source, "the side whose changes go")
        ->required();
    rollback
        ->add_option("--since", rollback_options.since,
                     "the window's start (ISO 8601 or PostgreSQL timestamptz text)")
        ->required();
    rollback->add_option("--until", rollback_options.until, "its end (default: now)");
    rollback->add_option("--table", rollback_options.table, "only this table");
    rollback->add_flag("--dry-run", rollback_options.dry_run,
                       "say what it would do, write nothing");
    rollback->add_flag("--yes", rollback_options.yes, "write (rollback changes both sides)");
    auto* dead_letters = app.add_subcommand(
        "dead-letters", "the dead-letter log: list, show, replay once fixed, or discard");
    dead_letters->require_subcommand(1);
    dead_letters->fallthrough();
    DeadLettersCommandOptions dead_options;
    auto* dead_list =
        dead_letters->add_subcommand("list", "new dead letters of both sides, newest first");
    auto* dead_show = dead_letters->add_subcommand("show", "one dead letter, all it records");
    dead_show->add_option("ID", dead_options.ids, "SIDE:NUMBER")->required()->expected(1);
    dead_show->add_flag("--payload", dead_options.payload,
                        "also the message as it was received (holds row values)");
    auto* dead_replay = dead_letters->add_subcommand(
        "replay", "send dead letters again through the bridge, applied by the conflict rules");
    auto* dead_discard =
        dead_letters->add_subcommand("discard", "set dead letters aside, applied nowhere");
    dead_list->add_flag("--all", dead_options.all, "replayed and discarded ones too");
    dead_list->add_option("--limit", dead_options.limit, "per side")->capture_default_str();
    for (auto* action : {dead_list, dead_replay, dead_discard}) {
        action->add_option("--side", dead_options.side, "only this side's log");
    }
    for (auto* action : {dead_replay, dead_discard}) {
        action->add_option("--id", dead_options.ids, "SIDE:NUMBER, as list shows it (repeatable)");
        action->add_flag("--all", dead_options.all, "every new dead letter");
    }
    auto* tail = app.add_subcommand(
        "tail", "print decoded changes of one side as they stream, acknowledging nothing");
    tail->add_option("--side", tail_options.side, "side to follow")->required();
    tail->add_flag("--from-start", tail_options.from_start,
                   "read the bridge's slot from its confirmed position (what is not yet "
                   "acknowledged) instead of a temporary slot from now on");
    tail->add_option("--count", tail_options.count, "stop after this many transactions");

    VerifyCommandOptions verify_options;
    auto* verify = app.add_subcommand(
        "verify", "compare every synced table on both sides (exit 0 identical, 1 not)");
    auto* repair = app.add_subcommand(
        "repair", "verify, then write the winning version of each differing key on the other side");
    for (auto* command : {verify, repair}) {
        command->add_option("--table", verify_options.table,
                            "only this synced table (schema.table, as the config names it)");
        command->add_flag("--no-fence", verify_options.no_fence,
                          "compare the sides as they are now, without waiting for the bridge "
                          "to carry a fence (changes in flight show as differences)");
        command->add_option("--wait", verify_options.wait_seconds, "seconds to wait for the fence")
            ->check(CLI::PositiveNumber);
        command
            ->add_option("--max-keys", verify_options.max_keys,
                         "differing keys collected per table (about 3 KB each); beyond it "
                         "the report says it is truncated")
            ->check(CLI::PositiveNumber);
    }
    repair->add_flag("--dry-run", verify_options.dry_run, "show what would be written");
    add_global_flags_to_commands(app, global);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : 2;
    }

    try {
        if (show_version) {
            return version_command(global);
        }
        if (*check_config) {
            return check_config_command(global, check_offline);
        }
        if (*setup) {
            parse_admin_conninfo(admin_conninfo, setup_options);
            return setup_command(global, setup_options);
        }
        if (*teardown) {
            if (!yes && !setup_options.dry_run) {
                throw Error(ErrorKind::Usage,
                            "teardown drops replication slots, origins, publications and the "
                            "conflict log; run it again with --yes to confirm (--dry-run "
                            "lists what it would drop)");
            }
            parse_admin_conninfo(admin_conninfo, setup_options);
            return teardown_command(global, setup_options);
        }
        if (*rollback) {
            return rollback_command(global, rollback_options);
        }
        if (*history) {
            return history_command(global, history_options);
        }
        if (*tail) {
            return tail_command(global, tail_options);
        }
        if (*slots) {
            return slots_command(global);
        }
        if (*run) {
            return run_command(global, run_options);
        }
        if (*lag) {
            return lag_command(global);
        }
        if (*status) {
            return status_command(global);
        }
        if (*verify) {
            return verify_command(global, verify_options);
        }
        if (*repair) {
            return repair_command(global, verify_options);
        }
        if (*dead_letters) {
            for (auto* action : {dead_list, dead_show, dead_replay, dead_discard}) {
                if (*action) {
                    dead_options.action = action->get_name();
                }
            }
            return dead_letters_command(global, dead_options);
        }
        if (*conflicts) {
            for (auto* action : {conflicts_list, conflicts_show, conflicts_resolve}) {
                if (*action) {
                    conflicts_options.action = action->get_name();
                }
            }
            return conflicts_command(global, conflicts_options);
        }
        std::cout << app.help();
        return 2;
    } catch (const Error& e) {
        // A configuration file's errors already start with FILE:LINE:COL each: the context
        // would repeat the first one's, after the last.
        const bool located = e.kind() == ErrorKind::Config && !e.context_value("line").empty();
        std::cerr << fmt::format("pgbridge: {} error: {}\n", to_string(e.kind()),
                                 located ? e.message() : std::string(e.what()));
        // verify and repair use 1 for "differences": a failure to compare is 2.
        return *verify || *repair ? 2 : exit_code_for(e.kind());
    } catch (const std::exception& e) {
        std::cerr << fmt::format("pgbridge: internal error: {}\n", e.what());
        return *verify || *repair ? 2 : 1;
    }
}
