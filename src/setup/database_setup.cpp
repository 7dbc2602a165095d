#include <algorithm>
#include <array>
#include <map>
#include <set>

#include <fmt/format.h>
#include <libpq-fe.h>

#include <pgbridge/config/conflict_rules.hpp>
#include <pgbridge/config/object_names.hpp>
#include <pgbridge/config/side_connection.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/sqlstate.hpp>
#include <pgbridge/pg/connection.hpp>
#include <pgbridge/pg/conninfo.hpp>
#include <pgbridge/setup/database_setup.hpp>
#include <pgbridge/setup/key_sequences.hpp>
#include <pgbridge/setup/runtime_privileges.hpp>
#include <pgbridge/source/slot_identity.hpp>

#include "embedded_sql.hpp"

namespace pgbridge {
namespace {

using Outcome = SetupStep::Outcome;

constexpr int kMinServerVersion = 150000;
constexpr std::string_view kOldVersionTrigger = "pgbridge_row_versions";
constexpr std::string_view kTruncateTrigger = "pgbridge_truncations";

struct Column {
    std::string name;  // as the side names it
    std::string type;  // format_type() of the column
    bool in_primary_key = false;
};

// One side of the bridge as setup sees it: the connection it works through and the names the
// config gives it.
struct SideSetup {
    const SideConfig* side = nullptr;
    const SideConfig* other = nullptr;
    pg::Connection conn;
    std::string runtime_role;  // user of the side's conninfo; empty when it names none
    bool as_admin = false;     // connected through an admin conninfo
};

std::string join(const std::vector<std::string>& items) {
    return fmt::format("{}", fmt::join(items, ", "));
}

std::vector<SideSetup> connect_sides(const Config& config, const DatabaseSetupOptions& options) {
    std::vector<SideSetup> sides;
    for (const auto& side : config.sides) {
        auto connect = side_connect_options(side, options.timeout_ms, "pgbridge setup");
        const auto admin = options.admin_conninfo.find(side.name);
        if (admin != options.admin_conninfo.end()) {
            connect.conninfo = admin->second;
            connect.password = Secret();  // the admin conninfo brings its own authentication
        }
        std::string error;
        auto parts = pg::ConninfoParts::parse(side.conninfo, &error);
        std::string role = parts && parts->has("user") ? parts->options.at("user") : "";
        sides.push_back(SideSetup{&side, &config.other_side(side.name),
                                  pg::Connection::open(connect), std::move(role),
                                  admin != options.admin_conninfo.end()});
    }
    return sides;
}

std::vector<Column> table_columns(pg::Connection& conn, const QualifiedName& table) {
    auto result = conn.exec(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod),"
        "       coalesce(a.attnum = ANY (i.indkey), false)"
        "  FROM pg_attribute a"
        "  LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary"
        " WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        {table.quoted()});
    std::vector<Column> columns;
    for (int row = 0; row < result.rows(); ++row) {
        columns.push_back(Column{std::string(result.value(row, 0)),
                                 std::string(result.value(row, 1)), result.value(row, 2) == "t"});
    }
    return columns;
}

// Key columns a sequence feeds on both sides (key_sequences.hpp): refused unless the
// sequences are already kept apart, the table says keys = "disjoint", or setup was asked to
// partition them (then they are added to to_partition).
void check_shared_keys(const TableConfig& table, std::vector<SideSetup>& sides, bool partition,
                       SetupReport& report, std::vector<std::string>& problems,
                       std::vector<SharedKey>& to_partition) {
    std::array<std::vector<KeySequence>, 2> found;
    for (std::size_t i = 0; i < 2; ++i) {
        found[i] = key_sequences(sides[i].conn, table.name_on(sides[i].side->name));
    }
    auto side_name = [&](std::size_t i) -> const std::string& { return sides[i].side->name; };
    auto object = [](const KeySequence& s) { return "sequence " + s.sequence.display(); };
    if (table.keys == TableConfig::Keys::Disjoint) {
        for (std::size_t i = 0; i < 2; ++i) {
            for (const auto& s : found[i]) {
                report.add(side_name(i), object(s), Outcome::Skipped,
                           fmt::format("left as it is: keys = \"disjoint\" for table {} (the "
                                       "application keeps the two sides' keys apart)",
                                       table.name.display()));
            }
        }
        return;
    }
    std::map<std::string, std::array<const KeySequence*, 2>> by_column;  // canonical names
    for (std::size_t i = 0; i < 2; ++i) {
        for (const auto& s : found[i]) {
            by_column[table.canonical_column(side_name(i), s.column)][i] = &s;
        }
    }
    for (const auto& [column, seqs] : by_column) {
        const std::string key = fmt::format("{}.{}", table.name.display(), column);
        if (seqs[0] == nullptr || seqs[1] == nullptr) {
            // Only one side generates keys; the other's application picks its own, which
            // setup cannot see.
            const std::size_t i = seqs[0] != nullptr ? 0 : 1;
            report.add(side_name(i), object(*seqs[i]), Outcome::Warning,
                       fmt::format("key {} takes its values from this sequence here but not on "
                                   "{}: inserts there must never use a key it hands out (then "
                                   "set keys = \"disjoint\")",
                                   key, side_name(1 - i)));
            continue;
        }
        if (kept_apart(*seqs[0], *seqs[1])) {
            for (std::size_t i = 0; i < 2; ++i) {
                report.add(side_name(i), object(*seqs[i]), Outcome::Unchanged,
                           fmt::format("{} keys of {} (INCREMENT BY 2, next {}): kept apart from "
                                       "{}'s",
                                       seqs[i]->next % 2 == 0 ? "even" : "odd", key, seqs[i]->next,
                                       side_name(1 - i)));
            }
            continue;
        }
        if (!partition) {
            problems.push_back(fmt::format(
                "table {}: key column '{}' takes its values from a sequence on both sides ({} "
                "on {}, {} on {}), so both hand out the same keys and rows inserted on both "
                "collide; run pgbridge setup --partition-sequences (odd keys on {}, even on "
                "{}), or, if the application keeps the keys apart, set keys = \"disjoint\" in "
                "the table's [[tables]] entry ({}:{})",
                table.name.display(), column, seqs[0]->sequence.display(), side_name(0),
                seqs[1]->sequence.display(), side_name(1), side_name(0), side_name(1),
                table.where.file, table.where.line));
            continue;
        }
        if (seqs[0]->increment < 0 || seqs[1]->increment < 0) {
            problems.push_back(fmt::format(
                "table {}: key column '{}' has a descending sequence; --partition-sequences "
                "only partitions ascending ones: partition them by hand or set keys = "
                "\"disjoint\"",
                table.name.display(), column));
            continue;
        }
        SharedKey shared{table.name, column, {}};
        for (std::size_t i = 0; i < 2; ++i) {
            shared.sides[i] = SharedKey::Side{side_name(i), table.name_on(side_name(i)), *seqs[i]};
        }
        to_partition.push_back(std::move(shared));
    }
}

// Everything that would make setup fail half-way, or the bridge fail later, checked on both
// sides before anything is changed. Returns the key sequences to partition.
std::vector<SharedKey> preflight(const Config& config, std::vector<SideSetup>& sides,
                                 const DatabaseSetupOptions& options, SetupReport& report) {
    std::vector<SharedKey> to_partition;
    std::vector<std::string> problems;
    for (auto& s : sides) {
        const std::string& name = s.side->name;
        if (s.conn.server_version() < kMinServerVersion) {
            problems.push_back(
                fmt::format("side {}: PostgreSQL {} is too old; pgbridge needs 15 "
                            "or newer",
                            name, s.conn.server_version()));
            continue;
        }
        auto settings = s.conn.exec(
            "SELECT current_setting('wal_level'), current_setting('track_commit_timestamp'),"
            "       current_setting('max_replication_slots')::int"
            "         - (SELECT count(*) FROM pg_replication_slots),"
            "       EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
            {names::slot(config.bridge_name, name)});
        if (settings.value(0, 0) != "logical") {
            problems.push_back(
                fmt::format("side {}: wal_level is '{}'; set wal_level = logical "
                            "and restart PostgreSQL",
                            name, settings.value(0, 0)));
        }
        if (settings.value(0, 1) != "on") {
            report.add(name, "track_commit_timestamp", Outcome::Warning,
                       "off: conflict records will lack local commit times; set it to on");
        }
        if (settings.value(0, 3) != "t" && std::stoi(std::string(settings.value(0, 2))) <= 0) {
            problems.push_back(
                fmt::format("side {}: no free replication slot "
                            "(max_replication_slots is used up)",
                            name));
        }
    }

    // Canonical column names of each synced table, as the first side has them: for the
    // field_priority rules, which name columns by hand.
    std::map<QualifiedName, std::set<std::string>> synced_columns;
    for (const auto& table : config.tables) {
        std::map<std::string, std::vector<Column>> columns_by_side;
        for (auto& s : sides) {
            const std::string& side = s.side->name;
            const QualifiedName local = table.name_on(side);
            auto columns = table_columns(s.conn, local);
            if (columns.empty()) {
                problems.push_back(
                    fmt::format("side {}: table {} does not exist", side, local.display()));
                continue;
            }
            if (std::none_of(columns.begin(), columns.end(),
                             [](const Column& c) { return c.in_primary_key; })) {
                problems.push_back(
                    fmt::format("side {}: table {} has no primary key; pgbridge "
                                "needs one to match rows across sides",
                                side, local.display()));
            }
            std::map<std::string, std::string> seen;  // canonical -> local
            for (const auto& c : columns) {
                const std::string canonical = table.canonical_column(side, c.name);
                auto [it, inserted] = seen.emplace(canonical, c.name);
                if (!inserted) {
                    problems.push_back(fmt::format(
                        "side {}: table {} has columns '{}' and '{}' that both stand for '{}' "
                        "through the column mapping",
                        side, local.display(), it->second, c.name, canonical));
                }
            }
            if (auto mapping = table.sides.find(side); mapping != table.sides.end()) {
                for (const auto& [canonical, mapped] : mapping->second.columns) {
                    if (!seen.contains(canonical) || seen.at(canonical) != mapped) {
                        problems.push_back(
                            fmt::format("side {}: table {} has no column '{}' "
                                        "(mapped from '{}')",
                                        side, local.display(), mapped, canonical));
                    }
                }
            }
            for (const auto& canonical : table.excluded_columns) {
                const auto it = seen.find(canonical);
                if (it == seen.end()) {
                    continue;  // a column of the other side only: checked below
                }
                if (std::any_of(columns.begin(), columns.end(), [&](const Column& c) {
                        return c.name == it->second && c.in_primary_key;
                    })) {
                    problems.push_back(fmt::format(
                        "{}:{}: exclude_columns of table {} names column '{}', which is part of "
                        "its primary key on side {}: rows could not be matched without it",
                        table.where.file, table.where.line, table.name.display(), canonical, side));
                }
            }
            columns_by_side.emplace(side, std::move(columns));
        }
        if (columns_by_side.size() != 2) {
            continue;
        }
        // An excluded column may exist on one side only (it is never synced); on neither, it
        // is a typo and the exclusion would do nothing.
        for (const auto& canonical : table.excluded_columns) {
            const bool somewhere = std::any_of(
                columns_by_side.begin(), columns_by_side.end(), [&](const auto& side_columns) {
                    return std::any_of(side_columns.second.begin(), side_columns.second.end(),
                                       [&](const Column& c) {
                                           return table.canonical_column(side_columns.first,
                                                                         c.name) == canonical;
                                       });
                });
            if (!somewhere) {
                problems.push_back(fmt::format(
                    "{}:{}: exclude_columns of table {} names column "
                    "'{}', which neither side has",
                    table.where.file, table.where.line, table.name.display(), canonical));
            }
        }
        for (const auto& c : columns_by_side.at(sides[0].side->name)) {
            synced_columns[table.name].insert(table.canonical_column(sides[0].side->name, c.name));
        }
        // Compare the two sides column by column, in canonical names.
        const auto& a = *sides[0].side;
        const auto& b = *sides[1].side;
        std::map<std::string, const Column*> on_b;
        for (const auto& c : columns_by_side.at(b.name)) {
            on_b.emplace(table.canonical_column(b.name, c.name), &c);
        }
        for (const auto& c : columns_by_side.at(a.name)) {
            const std::string canonical = table.canonical_column(a.name, c.name);
            if (table.excluded_columns.contains(canonical)) {
                on_b.erase(canonical);
                continue;  // not synced: may differ, or exist on one side only
            }
            auto it = on_b.find(canonical);
            if (it == on_b.end()) {
                problems.push_back(
                    fmt::format("table {}: column '{}' exists on {} but not on {} "
                                "(as '{}')",
                                table.name.display(), c.name, a.name, b.name,
                                table.column_on(b.name, canonical)));
                continue;
            }
            const Column& other = *it->second;
            if (c.in_primary_key != other.in_primary_key) {
                problems.push_back(
                    fmt::format("table {}: column '{}' is part of the primary key "
                                "on {} but not on {}",
                                table.name.display(), canonical, c.in_primary_key ? a.name : b.name,
                                c.in_primary_key ? b.name : a.name));
            }
            if (c.type != other.type) {
                report.add("", fmt::format("table {} column {}", table.name.display(), canonical),
                           Outcome::Warning,
                           fmt::format("type {} on {} but {} on {}: values are sent as text and "
                                       "must be valid on both",
                                       c.type, a.name, other.type, b.name));
            }
            on_b.erase(it);
        }
        for (const auto& [canonical, column] : on_b) {
            if (table.excluded_columns.contains(canonical)) {
                continue;
            }
            problems.push_back(
                fmt::format("table {}: column '{}' exists on {} but not on {} "
                            "(as '{}')",
                            table.name.display(), column->name, b.name, a.name,
                            table.column_on(a.name, canonical)));
        }
        check_shared_keys(table, sides, options.partition_sequences, report, problems,
                          to_partition);
    }
    // A rule for a column no synced table has would silently do nothing (a typo, say).
    if (synced_columns.size() == config.tables.size()) {
        for (auto& problem : unknown_field_rule_columns(config, synced_columns)) {
            problems.push_back(std::move(problem));
        }
    }
    if (!problems.empty()) {
        throw Error(ErrorKind::Setup,
                    fmt::format("setup cannot proceed; nothing was changed:\n  {}",
                                fmt::join(problems, "\n  ")));
    }
    return to_partition;
}

class SideSetupRun {
  public:
    SideSetupRun(const Config& config, SideSetup& s, SetupReport& report, bool dry_run)
        : config_(config), s_(s), report_(report), dry_run_(dry_run) {}

    void metadata_schema() {
        auto count_relations = [&] {
            return std::string(s_.conn
                                   .exec("SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                                         "ON n.oid = c.relnamespace WHERE n.nspname = $1",
                                         {std::string(names::kMetadataSchema)})
                                   .value(0, 0));
        };
        const std::string before = count_relations();
        const std::string object = fmt::format("schema {}", names::kMetadataSchema);
        if (dry_run_) {
            // Without running the script, only an absent schema is known to need work.
            record(object, before == "0", "create conflict log and dead-letter tables", "present");
            return;
        }
        s_.conn.exec(embedded::kMetadataSchemaSql);
        const std::string after = count_relations();
        record(object, before != after,
               before == "0" ? "created conflict log and dead-letter tables"
                             : "created missing metadata tables",
               "present");
    }

    // [history] retention where maintain_history() reads it: setup's to set, not the runtime
    // role's (docs/history.md).
    void history_retention() {
        const std::string object = "history retention of bridge " + config_.bridge_name;
        const std::optional<std::string> wanted =
            config_.history.enabled()
                ? std::optional(std::to_string(config_.history.retention->count()) + " seconds")
                : std::nullopt;
        if (dry_run_) {
            // The table may not exist yet in a dry run.
            const bool table = s_.conn
                                   .exec(
                                       "SELECT to_regclass('pgbridge.history_retention') IS "
                                       "NOT NULL")
                                   .value(0, 0) == "t";
            const bool present =
                wanted && table &&
                s_.conn.exec(
                           "SELECT count(*) FROM pgbridge.history_retention WHERE bridge = $1 "
                           "AND retention = $2::interval",
                           {config_.bridge_name, *wanted})
                        .value(0, 0) != "0";
            if (wanted) {
                report_.add(side(), object, present ? Outcome::Unchanged : Outcome::Changed,
                            present ? "present" : "would be recorded: " + *wanted);
            }
            return;
        }
        const pg::Result r =
            wanted ? s_.conn.exec(
                         "INSERT INTO pgbridge.history_retention AS h (bridge, retention)"
                         " VALUES ($1, justify_interval($2::interval)) ON CONFLICT (bridge) DO "
                         "UPDATE SET"
                         " retention = EXCLUDED.retention"
                         " WHERE h.retention IS DISTINCT FROM EXCLUDED.retention",
                         {config_.bridge_name, *wanted})
                   : s_.conn.exec("DELETE FROM pgbridge.history_retention WHERE bridge = $1",
                                  {config_.bridge_name});
        if (r.affected_rows() > 0) {
            report_.add(side(), object, Outcome::Changed,
                        wanted ? "recorded: " + *wanted
                               : "removed ([history] is off; the rows kept stay until another "
                                 "bridge's retention or a DBA drops them)");
        } else if (wanted) {
            report_.add(side(), object, Outcome::Unchanged, "present");
        }
    }

    void runtime_role() {
        const std::string& role = s_.runtime_role;
        if (!s_.as_admin) {
            report_.add(side(), "role", Outcome::Skipped,
                        "setup connects as the runtime role itself; give it its grants with "
                        "sql/02_role.sql or run setup with --admin-conninfo");
            surplus(role.empty() ? s_.conn.current_user() : role);
            return;
        }
        if (role.empty()) {
            report_.add(side(), "role", Outcome::Skipped,
                        "the side's conninfo names no user; grant privileges by hand "
                        "(sql/02_role.sql)");
            return;
        }
        const std::string object = "role " + role;
        if (role == s_.conn.current_user()) {
            report_.add(side(), object, Outcome::Skipped,
                        "setup connects as the runtime role itself");
            surplus(role);
            return;
        }
        auto existing = s_.conn.exec(
            "SELECT rolcanlogin, rolreplication, rolsuper FROM pg_roles WHERE rolname = $1",
            {role});
        if (existing.rows() == 0) {
            std::string detail = "created with LOGIN REPLICATION";
            std::string sql =
                fmt::format("CREATE ROLE {} LOGIN REPLICATION", quote_identifier(role));
            if (!s_.side->password.empty()) {
                // Only the SCRAM verifier computed here reaches the server, never the password.
                sql += " PASSWORD " + quote_literal(scram_verifier(role));
                detail += ", password from password_file";
            } else {
                detail += "; set its password (\\password " + role + ")";
            }
            change(object, detail, sql);
        } else if (existing.value(0, 0) != "t" || existing.value(0, 1) != "t") {
            change(object, "altered to LOGIN REPLICATION",
                   fmt::format("ALTER ROLE {} LOGIN REPLICATION", quote_identifier(role)));
        } else {
            report_.add(side(), object, Outcome::Unchanged, "present");
        }
        if (existing.rows() > 0) {
            surplus(role);
        }
        if (dry_run_ && existing.rows() == 0) {
            report_.add(side(), object + " grants", Outcome::Changed,
                        fmt::format("would grant CONNECT, USAGE, {} on the synced tables, on "
                                    "each table of schema pgbridge what pgbridge needs of it, "
                                    "EXECUTE on the origin functions",
                                    kSyncedTablePrivileges));
            return;
        }
        grant_privileges(role);
    }

    // What the runtime role holds beyond its grants, which no grant or revoke of setup
    // limits: reported, since the DBA gave it and may have a reason.
    void surplus(const std::string& role) {
        auto r = s_.conn.exec(
            "SELECT r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb,"
            "       (SELECT string_agg(g.rolname, ', ' ORDER BY g.rolname) FROM pg_auth_members m"
            "          JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid),"
            "       (SELECT datdba = r.oid FROM pg_database WHERE datname = current_database()),"
            "       (SELECT nspowner = r.oid FROM pg_namespace WHERE nspname = $2)"
            "  FROM pg_roles r WHERE r.rolname = $1",
            {role, std::string(names::kMetadataSchema)});
        if (r.rows() == 0) {
            return;
        }
        std::vector<std::string> more;
        if (r.value(0, 0) == "t") {
            more.emplace_back("a superuser (it passes every privilege check)");
        }
        if (r.value(0, 1) == "t") {
            more.emplace_back("BYPASSRLS");
        }
        if (r.value(0, 2) == "t") {
            more.emplace_back("CREATEROLE");
        }
        if (r.value(0, 3) == "t") {
            more.emplace_back("CREATEDB");
        }
        if (auto groups = r.optional_value(0, 4)) {
            more.push_back("member of " + *groups);
        }
        if (r.value(0, 5) == "t") {
            more.emplace_back("owner of the database");
        }
        if (r.value(0, 6) == "t") {
            more.push_back(fmt::format("owner of schema {} (may rewrite its own history)",
                                       names::kMetadataSchema));
        }
        for (const auto& table : config_.tables) {
            const QualifiedName local = table.name_on(side());
            if (s_.conn
                    .exec("SELECT 1 FROM pg_class c JOIN pg_roles o ON o.oid = c.relowner"
                          " WHERE c.oid = to_regclass($1) AND o.rolname = $2",
                          {local.quoted(), role})
                    .rows() > 0) {
                more.push_back("owner of " + local.display() + " (may alter or drop it)");
            }
        }
        if (more.empty()) {
            return;
        }
        report_.add(side(), "role " + role, Outcome::Warning,
                    fmt::format("has more than pgbridge needs: {}; consider a least-privileged "
                                "role (docs/setup.md), and run setup again once these are "
                                "taken away: it grants only what the role lacks",
                                fmt::join(more, "; ")));
    }

    void replica_identity() {
        for (const auto& table : config_.tables) {
            const QualifiedName local = table.name_on(side());
            // A partitioned table's changes are decoded from its partitions, each with its own
            // replica identity: every partition needs FULL too (one attached later gets it
            // when setup runs again).
            auto result = s_.conn.exec(
                "SELECT c.oid::regclass::text, c.relreplident,"
                "       c.oid <> to_regclass($1)"
                "  FROM pg_class c"
                " WHERE c.oid = to_regclass($1)"
                "    OR c.oid IN (SELECT relid FROM pg_partition_tree(to_regclass($1)))"
                " ORDER BY c.oid <> to_regclass($1), 1",
                {local.quoted()});
            for (int row = 0; row < result.rows(); ++row) {
                const bool partition = result.value(row, 2) == "t";
                const std::string relation =
                    partition ? std::string(result.value(row, 0)) : local.quoted();
                record(
                    fmt::format("replica identity of {}{}",
                                partition ? "partition " + relation + " of " : "", local.display()),
                    result.value(row, 1) != "f", "set to FULL", "FULL",
                    fmt::format("ALTER TABLE {} REPLICA IDENTITY FULL", relation));
            }
        }
    }

    // pgbridge before metadata schema 3 kept local column versions with a row trigger inside
    // the application's transaction; capture keeps them now (docs/apply-design.md). The
    // metadata schema drops the trigger function with every trigger left on other tables.
    void old_version_triggers() {
        for (const auto& table : config_.tables) {
            const QualifiedName local = table.name_on(side());
            if (s_.conn
                    .exec(
                        "SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2",
                        {local.quoted(), std::string(kOldVersionTrigger)})
                    .rows() == 0) {
                continue;
            }
            change("version trigger of an older pgbridge on " + local.display(),
                   "dropped (capture keeps column versions now)",
                   fmt::format("DROP TRIGGER {} ON {}", quote_identifier(kOldVersionTrigger),
                               local.quoted()));
        }
    }

    // Local truncates, recorded in pgbridge.truncations: the other side's changes older than
    // one are not applied after it (docs/apply-design.md, "Truncate").
    void truncate_triggers() {
        for (const auto& table : config_.tables) {
            const QualifiedName local = table.name_on(side());
            record("truncate trigger on " + local.display(),
                   s_.conn.exec("SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND "
                                "tgname = $2",
                                {local.quoted(), std::string(kTruncateTrigger)})
                           .rows() == 0,
                   "created", "present",
                   fmt::format("CREATE TRIGGER {} AFTER TRUNCATE ON {} FOR EACH STATEMENT "
                               "EXECUTE FUNCTION pgbridge.track_truncate()",
                               quote_identifier(kTruncateTrigger), local.quoted()));
        }
    }

    void publication() {
        const std::string name = names::publication(config_.bridge_name);
        std::vector<std::string> wanted;
        std::vector<std::string> shown;
        std::vector<std::string> clauses;  // each table with its row filter
        std::vector<std::string> filters;  // what the publication's comment records of them
        for (const auto& table : config_.tables) {
            const QualifiedName local = table.name_on(side());
            wanted.push_back(local.quoted());
            shown.push_back(local.display());
            const auto filter = table.row_filter_on(side());
            clauses.push_back(local.quoted() + (filter ? " WHERE (" + *filter + ")" : ""));
            if (filter) {
                filters.push_back(local.display() + " WHERE (" + *filter + ")");
            }
        }
        // PostgreSQL keeps a row filter as a parsed expression, which cannot be compared with
        // the text of the config: the publication's comment records the text setup set.
        const std::string filters_comment =
            filters.empty() ? std::string() : "pgbridge row filters: " + join(filters);
        auto current = s_.conn.exec(
            "SELECT coalesce(array_agg(pr.prrelid::regclass::text ORDER BY pr.prrelid), '{}') = "
            "       (SELECT array_agg(to_regclass(t)::text ORDER BY to_regclass(t)::oid)"
            "          FROM unnest($2::text[]) t),"
            "       pubinsert AND pubupdate AND pubdelete AND pubtruncate, pubviaroot,"
            "       CASE WHEN $3 = '' THEN NOT coalesce(bool_or(pr.prqual IS NOT NULL), false)"
            "            ELSE obj_description(p.oid, 'pg_publication') IS NOT DISTINCT FROM $3 END"
            "  FROM pg_publication p LEFT JOIN pg_publication_rel pr ON pr.prpubid = p.oid"
            " WHERE p.pubname = $1"
            " GROUP BY p.oid, pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot",
            {name, text_array(wanted), filters_comment});
        const std::string object = "publication " + name;
        const std::string list = join(clauses);
        const std::string shown_list =
            join(shown) + (filters.empty() ? "" : " (row filters: " + join(filters) + ")");
        const std::string comment =
            fmt::format("; COMMENT ON PUBLICATION {} IS {}", quote_identifier(name),
                        filters.empty() ? std::string("NULL") : quote_literal(filters_comment));
        if (current.rows() == 0) {
            change(object, "created for " + shown_list,
                   // publish_via_partition_root: a partitioned table's changes are published
                   // under its own name (the config's), not under the partition holding the row.
                   fmt::format("CREATE PUBLICATION {} FOR TABLE {} WITH (publish = 'insert, "
                               "update, delete, truncate', publish_via_partition_root = true){}",
                               quote_identifier(name), list, comment));
            return;
        }
        if (current.value(0, 0) != "t" || current.value(0, 3) != "t") {
            change(object, "table list set to " + shown_list,
                   fmt::format("ALTER PUBLICATION {} SET TABLE {}{}", quote_identifier(name), list,
                               comment));
        }
        if (current.value(0, 1) != "t") {
            change(object, "set to publish insert, update, delete, truncate",
                   fmt::format("ALTER PUBLICATION {} SET (publish = 'insert, update, delete, "
                               "truncate')",
                               quote_identifier(name)));
        }
        if (current.value(0, 2) != "t") {
            change(object, "set to publish partitioned tables under their own name",
                   fmt::format("ALTER PUBLICATION {} SET (publish_via_partition_root = true)",
                               quote_identifier(name)));
        }
        if (current.value(0, 0) == "t" && current.value(0, 1) == "t" &&
            current.value(0, 2) == "t" && current.value(0, 3) == "t") {
            report_.add(side(), object, Outcome::Unchanged, "present for " + shown_list);
        }
    }

    // The applier's origin (one per apply shard), and repair's (names::repair_origin).
    void origins() {
        const auto shards = static_cast<std::uint32_t>(config_.engine.apply_workers);
        std::vector<std::string> wanted;
        for (std::uint32_t shard = 0; shard < shards; ++shard) {
            wanted.push_back(
                names::shard_origin(config_.bridge_name, s_.other->name, shard, shards));
        }
        wanted.push_back(names::repair_origin(config_.bridge_name));
        for (const std::string& name : wanted) {
            auto result =
                s_.conn.exec("SELECT 1 FROM pg_replication_origin WHERE roname = $1", {name});
            if (result.rows() > 0) {
                report_.add(side(), "origin " + name, Outcome::Unchanged, "present");
            } else {
                change("origin " + name, "created",
                       fmt::format("SELECT pg_replication_origin_create({})", quote_literal(name)));
            }
        }
    }

    // Outside any transaction: PostgreSQL refuses to create a logical slot in a transaction
    // that has written. A slot created again (after it was dropped, lost, or on a new
    // primary) starts a new generation in pgbridge.slot_state, so that run repairs what the
    // old one never captured (source/slot_identity.hpp).
    void slot() {
        const std::string name = names::slot(config_.bridge_name, side());
        auto result = s_.conn.exec(
            "SELECT plugin, database = current_database(), slot_type"
            "  FROM pg_replication_slots WHERE slot_name = $1",
            {name});
        const std::string object = "slot " + name;
        if (result.rows() == 1 && (result.value(0, 2) != "logical" ||
                                   result.value(0, 0) != "pgoutput" || result.value(0, 1) != "t")) {
            throw Error(ErrorKind::Setup,
                        fmt::format("slot {} exists but is not a pgoutput slot of this "
                                    "database; drop it or rename the bridge",
                                    name))
                .with("side", side());
        }
        source::SlotIdentity id = identity(name);
        bool exists = id.exists;
        const bool lost = exists && id.lost();
        if (lost) {
            change(object, "dropped: it was invalidated (wal_status lost) and can stream no more",
                   fmt::format("SELECT pg_drop_replication_slot({})", quote_literal(name)));
            exists = false;
        }
        if (!exists) {
            const bool again = id.generation.has_value() || lost;
            change(object,
                   again ? "created again (pgoutput): what this side committed after the old "
                           "slot's last position never reached the other side; pgbridge run "
                           "repairs this side's tables by the conflict rules before status is "
                           "healthy again (sync.recopy)"
                         : "created (pgoutput); it holds WAL from now on",
                   fmt::format("SELECT pg_create_logical_replication_slot({}, 'pgoutput')",
                               quote_literal(name)));
            if (!dry_run_) {
                id = identity(name);
                source::record_slot_identity(s_.conn, config_.bridge_name, name, id, again);
            }
            return;
        }
        const bool moved = id.moved_outside();
        const auto done =
            dry_run_ ? source::SlotRecord::Unchanged
                     : source::record_slot_identity(s_.conn, config_.bridge_name, name, id, false);
        if (moved) {
            report_.add(side(), object, Outcome::Warning,
                        "ahead of the last position pgbridge reported: it was created again or "
                        "moved by hand, and what this side committed in between was never "
                        "captured; pgbridge run repairs this side's tables (sync.recopy)");
        } else if (done == source::SlotRecord::Recorded) {
            report_.add(side(), object, Outcome::Changed,
                        "present; its position is recorded from now on (pgbridge.slot_state)");
        } else {
            report_.add(side(), object, Outcome::Unchanged, "present");
        }
    }

    // The slot and its record; in a dry run the metadata schema may not exist yet.
    source::SlotIdentity identity(const std::string& slot) {
        try {
            return source::read_slot_identity(s_.conn, config_.bridge_name, slot);
        } catch (const Error& e) {
            if (!dry_run_ || e.kind() != ErrorKind::Setup) {
                throw;
            }
            source::SlotIdentity id;
            id.exists =
                s_.conn.exec("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", {slot})
                    .rows() == 1;
            return id;
        }
    }

    // A last check from the runtime role's point of view: can it log in for replication?
    void runtime_login(int timeout_ms) {
        if (dry_run_) {
            return;
        }
        auto connect = side_connect_options(*s_.side, timeout_ms, "pgbridge setup check");
        connect.replication = true;
        try {
            auto conn = pg::Connection::open(connect);
            conn.exec("IDENTIFY_SYSTEM");
            report_.add(side(), "replication login", Outcome::Unchanged,
                        "the side's conninfo can open a replication connection");
        } catch (const Error& e) {
            report_.add(
                side(), "replication login", Outcome::Warning,
                "the side's conninfo cannot open a replication connection yet: " + e.message());
        }
    }

  private:
    const std::string& side() const { return s_.side->name; }

    std::string quote_literal(const std::string& text) {
        char* quoted = PQescapeLiteral(s_.conn.native(), text.data(), text.size());
        if (quoted == nullptr) {
            throw Error(ErrorKind::Database, "cannot quote a literal").with("side", side());
        }
        std::string out(quoted);
        PQfreemem(quoted);
        return out;
    }

    std::string scram_verifier(const std::string& role) {
        char* verifier = PQencryptPasswordConn(s_.conn.native(), s_.side->password.reveal().c_str(),
                                               role.c_str(), "scram-sha-256");
        if (verifier == nullptr) {
            throw Error(ErrorKind::Database, "cannot compute the password verifier")
                .with("side", side());
        }
        std::string out(verifier);
        PQfreemem(verifier);
        return out;
    }

    static std::string text_array(const std::vector<std::string>& items) {
        std::string out = "{";
        for (std::size_t i = 0; i < items.size(); ++i) {
            out += i == 0 ? "\"" : ",\"";
            for (char c : items[i]) {
                if (c == '"' || c == '\\') {
                    out += '\\';
                }
                out += c;
            }
            out += '"';
        }
        return out + "}";
    }

    // Runs sql (unless dry run) and records the change.
    void change(const std::string& object, const std::string& detail, const std::string& sql) {
        if (!dry_run_) {
            s_.conn.exec(sql);
        }
        report_.add(side(), object, Outcome::Changed, dry_run_ ? "would be " + detail : detail);
    }

    void record(const std::string& object, bool needs_change, const std::string& changed_detail,
                const std::string& unchanged_detail, const std::string& sql = {}) {
        if (!needs_change) {
            report_.add(side(), object, Outcome::Unchanged, unchanged_detail);
        } else if (!sql.empty()) {
            change(object, changed_detail, sql);
        } else {
            report_.add(side(), object, Outcome::Changed,
                        dry_run_ ? "would " + changed_detail : changed_detail);
        }
    }

    // Grants what the role lacks and takes back what an older setup granted beyond
    // runtime_privileges.hpp, checking each privilege first so the report says exactly what
    // changed. What the role holds beyond it on a synced table is only reported: the DBA may
    // have granted it on purpose.
    void grant_privileges(const std::string& role) {
        const std::string quoted_role = quote_identifier(role);
        std::vector<std::string> granted;
        std::vector<std::string> revoked;
        auto missing = [&](std::string_view check, const std::string& object,
                           const std::vector<std::string>& privileges) {
            std::vector<std::string> result;
            for (const auto& privilege : privileges) {
                auto has = s_.conn.exec(fmt::format("SELECT {}($1, $2, $3)", check),
                                        {role, object, privilege});
                if (has.value(0, 0) != "t") {
                    result.push_back(privilege);
                }
            }
            return result;
        };
        // GRANT ... TO or REVOKE ... FROM the role, and the report's line for it.
        auto alter = [&](std::string_view verb, std::string_view to_or_from,
                         std::vector<std::string>& done, const std::vector<std::string>& privileges,
                         const std::string& on_what, const std::string& display) {
            if (privileges.empty()) {
                return;
            }
            const std::string list = join(privileges);
            if (!dry_run_) {
                s_.conn.exec(
                    fmt::format("{} {} ON {} {} {}", verb, list, on_what, to_or_from, quoted_role));
            }
            done.push_back(list + " on " + display);
        };
        auto grant = [&](const std::vector<std::string>& privileges, const std::string& on_what,
                         const std::string& display) {
            alter("GRANT", "TO", granted, privileges, on_what, display);
        };
        auto revoke = [&](const std::vector<std::string>& privileges, const std::string& on_what,
                          const std::string& display) {
            alter("REVOKE", "FROM", revoked, privileges, on_what, display);
        };

        auto database = std::string(s_.conn.exec("SELECT current_database()").value(0, 0));
        grant(missing("has_database_privilege", database, {"CONNECT"}),
              "DATABASE " + quote_identifier(database), "database " + database);

        std::set<std::string> schemas;
        // In a dry run the metadata schema may not exist yet; its grants follow its creation.
        const bool metadata_exists = s_.conn
                                         .exec("SELECT to_regnamespace($1) IS NOT NULL",
                                               {std::string(names::kMetadataSchema)})
                                         .value(0, 0) == "t";
        if (metadata_exists) {
            schemas.insert(std::string(names::kMetadataSchema));
        }
        for (const auto& table : config_.tables) {
            schemas.insert(table.name_on(side()).schema);
        }
        for (const auto& schema : schemas) {
            grant(missing("has_schema_privilege", schema, {"USAGE"}),
                  "SCHEMA " + quote_identifier(schema), "schema " + schema);
        }
        auto metadata_tables = s_.conn.exec(
            "SELECT c.relname, format('%I.%I', n.nspname, c.relname) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "ORDER BY 1",
            {std::string(names::kMetadataSchema)});
        for (int row = 0; row < metadata_tables.rows(); ++row) {
            const std::string name(metadata_tables.value(row, 0));
            const std::string table(metadata_tables.value(row, 1));
            const auto* entry = metadata_privileges(name);
            if (entry == nullptr) {
                report_.add(side(), "table " + table, Outcome::Warning,
                            "not a table of this pgbridge's metadata schema; its privileges are "
                            "left as they are");
                continue;
            }
            const auto needed = privilege_list(entry->privileges);
            grant(missing("has_table_privilege", table, needed), "TABLE " + table, table);
            revoke(direct_table_privileges(role, table, needed), "TABLE " + table, table);
        }
        const auto synced = privilege_list(kSyncedTablePrivileges);
        for (const auto& table : config_.tables) {
            const QualifiedName local = table.name_on(side());
            grant(missing("has_table_privilege", local.quoted(), synced), "TABLE " + local.quoted(),
                  local.display());
            const auto more = direct_table_privileges(role, local.quoted(), synced);
            if (!more.empty()) {
                report_.add(
                    side(), fmt::format("role {} on {}", role, local.display()), Outcome::Warning,
                    fmt::format("also has {}, which pgbridge does not need{}; left as "
                                "it is: REVOKE {} ON {} FROM {}",
                                join(more),
                                std::find(more.begin(), more.end(), "TRUNCATE") != more.end()
                                    ? " (it applies a source's TRUNCATE as DELETEs)"
                                    : "",
                                join(more), local.quoted(), quoted_role));
            }
        }
        for (auto function : kMetadataFunctions) {
            // In a dry run on a schema not created yet, the function is not there either.
            if (metadata_exists &&
                s_.conn.exec("SELECT to_regprocedure($1) IS NOT NULL", {std::string(function)})
                        .value(0, 0) == "t") {
                grant(missing("has_function_privilege", std::string(function), {"EXECUTE"}),
                      "FUNCTION " + std::string(function), std::string(function));
            }
        }
        for (auto function : kOriginFunctions) {
            grant(missing("has_function_privilege", std::string(function), {"EXECUTE"}),
                  "FUNCTION " + std::string(function), std::string(function));
        }
        // Only where a DBA revoked it from PUBLIC.
        grant(missing("has_function_privilege", std::string(kEmitMessageFunction), {"EXECUTE"}),
              "FUNCTION " + std::string(kEmitMessageFunction), std::string(kEmitMessageFunction));
        for (auto function : kUnusedOriginFunctions) {
            if (granted_directly(true, function, role)) {
                revoke({"EXECUTE"}, "FUNCTION " + std::string(function), std::string(function));
            }
        }
        if (granted_directly(false, kUnusedOriginView, role)) {
            revoke({"SELECT"}, std::string(kUnusedOriginView), std::string(kUnusedOriginView));
        }

        const std::string object = fmt::format("role {} grants", role);
        std::vector<std::string> done;
        const std::string would = dry_run_ ? "would " : "";
        if (!granted.empty()) {
            done.push_back(would + (dry_run_ ? "grant " : "granted ") + join_steps(granted));
        }
        if (!revoked.empty()) {
            done.push_back(would + (dry_run_ ? "revoke" : "revoked") +
                           " what pgbridge does not need: " + join_steps(revoked));
        }
        if (done.empty()) {
            report_.add(side(), object, Outcome::Unchanged, "complete");
        } else {
            report_.add(side(), object, Outcome::Changed, fmt::format("{}", fmt::join(done, "; ")));
        }
    }

    static std::string join_steps(const std::vector<std::string>& steps) {
        return fmt::format("{}", fmt::join(steps, "; "));
    }

    static const TablePrivileges* metadata_privileges(std::string_view table) {
        for (const auto& entry : kMetadataTablePrivileges) {
            if (entry.table == table) {
                return &entry;
            }
        }
        return nullptr;
    }

    static std::vector<std::string> privilege_list(std::string_view list) {
        std::vector<std::string> out;
        while (!list.empty()) {
            const auto comma = list.find(',');
            out.emplace_back(list.substr(0, comma));
            list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 2);
        }
        return out;
    }

    // The table privileges granted to the role itself (not through PUBLIC or a role it is a
    // member of, and not as owner) beyond needed, in the order GRANT lists them.
    std::vector<std::string> direct_table_privileges(const std::string& role,
                                                     const std::string& table,
                                                     const std::vector<std::string>& needed) {
        auto result = s_.conn.exec(
            "SELECT a.privilege_type FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a"
            " WHERE c.oid = $1::regclass AND a.grantee = to_regrole($2)"
            "   AND a.grantee <> c.relowner",
            {table, quote_identifier(role)});
        std::set<std::string> held;
        for (int row = 0; row < result.rows(); ++row) {
            held.emplace(result.value(row, 0));
        }
        std::vector<std::string> more;
        for (auto privilege : kTablePrivilegeNames) {
            const std::string name(privilege);
            if (held.contains(name) &&
                std::find(needed.begin(), needed.end(), name) == needed.end()) {
                more.push_back(name);
            }
        }
        return more;
    }

    // Whether the role holds a privilege on a function (or else a relation) granted to it by
    // name.
    bool granted_directly(bool function, std::string_view object, const std::string& role) {
        return s_.conn
                   .exec(function ? "SELECT EXISTS (SELECT 1 FROM pg_proc o CROSS JOIN LATERAL "
                                    "aclexplode(o.proacl) a WHERE o.oid = $1::regprocedure AND "
                                    "a.grantee = to_regrole($2))"
                                  : "SELECT EXISTS (SELECT 1 FROM pg_class o CROSS JOIN LATERAL "
                                    "aclexplode(o.relacl) a WHERE o.oid = $1::regclass AND "
                                    "a.grantee = to_regrole($2))",
                         {std::string(object), quote_identifier(role)})
                   .value(0, 0) == "t";
    }

    const Config& config_;
    SideSetup& s_;
    SetupReport& report_;
    bool dry_run_;
};

SetupReport run_setup(const Config& config, const DatabaseSetupOptions& options);
SetupReport run_teardown(const Config& config, const DatabaseSetupOptions& options);

// Runs fn; a permission error gets the hint a DBA needs to get past it.
template <typename Fn>
SetupReport with_privilege_hint(std::string_view command, Fn&& fn) {
    try {
        return fn();
    } catch (Error& e) {
        if (e.kind() == ErrorKind::Database &&
            e.context_value("sqlstate") == sqlstate::kInsufficientPrivilege) {
            Error hinted(e.kind(),
                         e.message() + fmt::format("; {} needs a role that owns the synced "
                                                   "tables and may manage replication origins: "
                                                   "pass --admin-conninfo SIDE=CONNINFO "
                                                   "(e.g. of a superuser)",
                                                   command));
            for (const auto& [key, value] : e.context()) {
                hinted.with(key, value);
            }
            throw hinted;
        }
        throw;
    }
}

}  // namespace

SetupReport setup_databases(const Config& config, const DatabaseSetupOptions& options) {
    return with_privilege_hint("setup", [&] { return run_setup(config, options); });
}

SetupReport teardown_databases(const Config& config, const DatabaseSetupOptions& options) {
    return with_privilege_hint("teardown", [&] { return run_teardown(config, options); });
}

namespace {

SetupReport run_setup(const Config& config, const DatabaseSetupOptions& options) {
    SetupReport report;
    report.dry_run = options.dry_run;
    auto sides = connect_sides(config, options);
    const auto to_partition = preflight(config, sides, options, report);
    // Before the slots: a failure here leaves nothing holding WAL.
    partition_key_sequences({&sides[0].conn, &sides[1].conn}, to_partition, options.dry_run,
                            options.timeout_ms, report);
    for (auto& s : sides) {
        SideSetupRun run(config, s, report, options.dry_run);
        s.conn.transaction([&] {
            // Two setups at once would race on "create if missing"; the second waits here.
            s.conn.exec("SELECT pg_advisory_xact_lock(hashtext('pgbridge setup'))");
            run.old_version_triggers();
            run.metadata_schema();
            run.history_retention();
            run.runtime_role();
            run.replica_identity();
            run.truncate_triggers();
            run.publication();
            run.origins();
        });
        run.slot();
        run.runtime_login(options.timeout_ms);
    }
    return report;
}

SetupReport run_teardown(const Config& config, const DatabaseSetupOptions& options) {
    SetupReport report;
    report.dry_run = options.dry_run;
    auto sides = connect_sides(config, options);
    auto record = [&](SideSetup& s, const std::string& object, bool present,
                      const std::string& sql) {
        if (!present) {
            report.add(s.side->name, object, Outcome::Unchanged, "absent");
            return;
        }
        if (!options.dry_run) {
            s.conn.exec(sql);
        }
        report.add(s.side->name, object, Outcome::Changed,
                   options.dry_run ? "would be dropped" : "dropped");
    };

    // Slots first, on every side, so that no WAL stays held if a later step fails.
    for (auto& s : sides) {
        const std::string slot = names::slot(config.bridge_name, s.side->name);
        auto result = s.conn.exec(
            "SELECT active, active_pid FROM pg_replication_slots WHERE slot_name = $1", {slot});
        if (result.rows() > 0 && result.value(0, 0) == "t") {
            throw Error(ErrorKind::Setup,
                        fmt::format("slot {} is in use by process {}; stop pgbridge run first",
                                    slot, result.value(0, 1)))
                .with("side", s.side->name);
        }
        record(s, "slot " + slot, result.rows() > 0,
               fmt::format("SELECT pg_drop_replication_slot('{}')", slot));
    }
    for (auto& s : sides) {
        const std::string origin = names::origin(config.bridge_name, s.other->name);
        const std::string publication = names::publication(config.bridge_name);
        auto state = s.conn.exec(
            "SELECT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1),"
            "       EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $2),"
            "       EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $3),"
            "       EXISTS (SELECT 1 FROM pg_publication WHERE pubname LIKE 'pgbridge\\_%'"
            "                  AND pubname <> $2)",
            {origin, publication, std::string(names::kMetadataSchema)});
        for (const auto& table : config.tables) {
            const QualifiedName local = table.name_on(s.side->name);
            auto trigger = s.conn.exec(
                "SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2",
                {local.quoted(), std::string(kOldVersionTrigger)});
            record(s, "version trigger on " + local.display(), trigger.rows() > 0,
                   fmt::format("DROP TRIGGER {} ON {}", quote_identifier(kOldVersionTrigger),
                               local.quoted()));
            record(s, "truncate trigger on " + local.display(),
                   s.conn.exec("SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND "
                               "tgname = $2",
                               {local.quoted(), std::string(kTruncateTrigger)})
                           .rows() > 0,
                   fmt::format("DROP TRIGGER {} ON {}", quote_identifier(kTruncateTrigger),
                               local.quoted()));
        }
        record(s, "origin " + origin, state.value(0, 0) == "t",
               fmt::format("SELECT pg_replication_origin_drop('{}')", origin));
        // The origins of apply shards, of whatever apply_workers the bridge ran with.
        const pg::Result shard_origins = s.conn.exec(
            "SELECT roname FROM pg_replication_origin WHERE pg_catalog.left(roname, "
            "pg_catalog.length($1) + 2) = $1 || '_s' AND pg_catalog.substr(roname, "
            "pg_catalog.length($1) + 3) ~ '^[0-9]+$' ORDER BY roname",
            {origin});
        for (int i = 0; i < shard_origins.rows(); ++i) {
            const std::string shard_origin(shard_origins.value(i, 0));
            // Validated names (the bridge's, the side's) and "_s" digits: nothing to quote.
            record(s, "origin " + shard_origin, true,
                   fmt::format("SELECT pg_replication_origin_drop('{}')", shard_origin));
        }
        const std::string repair_origin = names::repair_origin(config.bridge_name);
        record(s, "origin " + repair_origin,
               s.conn.exec("SELECT 1 FROM pg_replication_origin WHERE roname = $1", {repair_origin})
                       .rows() > 0,
               fmt::format("SELECT pg_replication_origin_drop('{}')", repair_origin));
        record(s, "publication " + publication, state.value(0, 1) == "t",
               fmt::format("DROP PUBLICATION {}", quote_identifier(publication)));
        const std::string schema_object = fmt::format("schema {}", names::kMetadataSchema);
        if (options.keep_metadata && state.value(0, 2) == "t") {
            report.add(s.side->name, schema_object, Outcome::Skipped,
                       "kept (--keep-metadata): conflict log and dead letters stay");
        } else if (state.value(0, 3) == "t") {
            report.add(s.side->name, schema_object, Outcome::Skipped,
                       "kept: another bridge's publication uses this database");
        } else {
            record(s, schema_object, state.value(0, 2) == "t",
                   fmt::format("DROP SCHEMA {} CASCADE", quote_identifier(names::kMetadataSchema)));
        }
        report.add(s.side->name, "role and replica identity", Outcome::Skipped,
                   "left as they are; drop the role by hand when nothing else uses it");
    }
    return report;
}

}  // namespace

}  // namespace pgbridge
