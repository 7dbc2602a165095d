#include <algorithm>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>
#include <sys/stat.h>

#include <fmt/format.h>
#include <toml++/toml.h>

#include <pgbridge/config/config.hpp>
#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/pg/conninfo.hpp>

namespace pgbridge {

// ---------------------------------------------------------------------------------------------
// Accessors

QualifiedName TableConfig::name_on(std::string_view side) const {
    auto it = sides.find(side);
    return it == sides.end() ? name : it->second.name;
}

std::optional<std::string> TableConfig::row_filter_on(std::string_view side) const {
    auto it = sides.find(side);
    return it != sides.end() && it->second.row_filter ? it->second.row_filter : row_filter;
}

std::string TableConfig::column_on(std::string_view side, const std::string& canonical) const {
    auto it = sides.find(side);
    if (it == sides.end()) {
        return canonical;
    }
    auto col = it->second.columns.find(canonical);
    return col == it->second.columns.end() ? canonical : col->second;
}

std::string TableConfig::canonical_column(std::string_view side,
                                          const std::string& side_column) const {
    auto it = sides.find(side);
    if (it == sides.end()) {
        return side_column;
    }
    for (const auto& [canonical, mapped] : it->second.columns) {
        if (mapped == side_column) {
            return canonical;
        }
    }
    return side_column;
}

std::string_view to_string(ConflictStrategy strategy) noexcept {
    switch (strategy) {
        case ConflictStrategy::LastWriteWins:
            return "last_write_wins";
        case ConflictStrategy::SourcePriority:
            return "source_priority";
        case ConflictStrategy::Manual:
            return "manual";
    }
    return "unknown";
}

std::optional<ConflictStrategy> parse_conflict_strategy(std::string_view text) noexcept {
    if (text == "last_write_wins") {
        return ConflictStrategy::LastWriteWins;
    }
    if (text == "source_priority") {
        return ConflictStrategy::SourcePriority;
    }
    if (text == "manual") {
        return ConflictStrategy::Manual;
    }
    return std::nullopt;
}

const SideConfig& Config::side(std::string_view name) const {
    for (const auto& s : sides) {
        if (s.name == name) {
            return s;
        }
    }
    throw Error(ErrorKind::Internal, "unknown side").with("side", std::string(name));
}

const SideConfig& Config::other_side(std::string_view name) const {
    for (const auto& s : sides) {
        if (s.name != name) {
            return s;
        }
    }
    throw Error(ErrorKind::Internal, "bridge has no other side").with("side", std::string(name));
}

RabbitConfig Config::broker_of(std::string_view name) const {
    RabbitConfig out = rabbitmq;
    if (const auto& own = side(name).broker) {
        const Secret shared = out.url.password;
        out.url = own->url;
        out.failover_urls = own->failover_urls;
        if (own->password_file || own->url.password_in_url) {
            out.password_file = own->password_file;
        } else {
            // The same user at both sites: [rabbitmq] password_file serves both.
            out.url.password = shared;
            for (auto& node : out.failover_urls) {
                node.password = shared;
            }
        }
    }
    return out;
}

std::string RabbitConfig::identity() const {
    return fmt::format("{}:{}/{}", url.host, url.port, url.vhost);
}

std::vector<RabbitConfig> Config::brokers() const {
    std::vector<RabbitConfig> out;
    for (const auto& s : sides) {
        RabbitConfig broker = broker_of(s.name);
        const bool seen = std::any_of(out.begin(), out.end(), [&](const RabbitConfig& b) {
            return b.identity() == broker.identity();
        });
        if (!seen) {
            out.push_back(std::move(broker));
        }
    }
    return out;
}

bool Config::same_broker(std::string_view side, std::string_view other) const {
    return broker_of(side).identity() == broker_of(other).identity();
}

const TableConfig* Config::find_table(const QualifiedName& canonical) const {
    for (const auto& t : tables) {
        if (t.name == canonical) {
            return &t;
        }
    }
    return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Loading

namespace {

// Collects every problem in the file so the DBA fixes them in one pass, not one per run.
class Diagnostics {
  public:
    explicit Diagnostics(std::string source) : source_(std::move(source)) {}

    SourceLocation at(const toml::source_region& region) const {
        return SourceLocation{source_, static_cast<int>(region.begin.line),
                              static_cast<int>(region.begin.column)};
    }
    void error(const SourceLocation& where, std::string message) {
        errors_.emplace_back(where, std::move(message));
    }
    void error(const toml::source_region& region, std::string message) {
        error(at(region), std::move(message));
    }

    // Throws when anything was reported; errors come sorted by position in the file.
    void throw_if_any() const {
        if (errors_.empty()) {
            return;
        }
        auto sorted = errors_;
        std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
            return std::tie(a.first.line, a.first.column) < std::tie(b.first.line, b.first.column);
        });
        std::string text;
        for (const auto& [where, message] : sorted) {
            if (!text.empty()) {
                text += '\n';
            }
            text += fmt::format("{}:{}:{}: {}", where.file, where.line, where.column, message);
        }
        const auto& first = sorted.front().first;
        throw Error(ErrorKind::Config, text)
            .with("file", first.file)
            .with("line", std::to_string(first.line))
            .with("column", std::to_string(first.column));
    }

  private:
    std::string source_;
    std::vector<std::pair<SourceLocation, std::string>> errors_;
};

// "90m", "12h", "7d" (also "30s"): a whole number and one unit.
std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
    if (text.size() < 2) {
        return std::nullopt;
    }
    std::int64_t number = 0;
    const auto digits = text.substr(0, text.size() - 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
    if (ec != std::errc() || end != digits.data() + digits.size() || number <= 0 ||
        number > 1'000'000) {
        return std::nullopt;
    }
    switch (text.back()) {
        case 's':
            return std::chrono::seconds(number);
        case 'm':
            return std::chrono::minutes(number);
        case 'h':
            return std::chrono::hours(number);
        case 'd':
            return std::chrono::hours(24 * number);
        default:
            return std::nullopt;
    }
}

std::string_view type_name(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::table:
            return "a table";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a float";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::date:
        case toml::node_type::time:
        case toml::node_type::date_time:
            return "a date/time";
        case toml::node_type::none:
            break;
    }
    return "nothing";
}

// Reads one TOML table whose keys are fixed: reports keys it does not know (with the list it
// does), missing required keys and values of the wrong type or range, each at its position.
class TableReader {
  public:
    TableReader(const toml::table& table, std::string section, Diagnostics& diag,
                std::initializer_list<std::string_view> allowed)
        : table_(table), section_(std::move(section)), diag_(diag), allowed_(allowed) {
        for (auto&& [key, value] : table_) {
            if (std::find(allowed_.begin(), allowed_.end(), key.str()) == allowed_.end()) {
                diag_.error(key.source(),
                            fmt::format("unknown key '{}' in {}; expected one of: {}", key.str(),
                                        section_, fmt::join(allowed_, ", ")));
            }
        }
    }

    const toml::table& table() const { return table_; }
    const std::string& section() const { return section_; }

    const toml::node* get(std::string_view key, bool required) {
        const toml::node* node = table_.get(key);
        if (node == nullptr && required) {
            diag_.error(table_.source(), fmt::format("missing key '{}' in {}", key, section_));
        }
        return node;
    }

    std::optional<std::string> string(std::string_view key, bool required) {
        const toml::node* node = get(key, required);
        if (node == nullptr) {
            return std::nullopt;
        }
        if (!node->is_string()) {
            wrong_type(*node, key, "a string");
            return std::nullopt;
        }
        return node->as_string()->get();
    }

    std::optional<int> integer(std::string_view key, bool required, int min, int max) {
        const toml::node* node = get(key, required);
        if (node == nullptr) {
            return std::nullopt;
        }
        if (!node->is_integer()) {
            wrong_type(*node, key, fmt::format("an integer between {} and {}", min, max));
            return std::nullopt;
        }
        const std::int64_t value = node->as_integer()->get();
        if (value < min || value > max) {
            diag_.error(node->source(),
                        fmt::format("{}.{} must be an integer between {} and {}, got {}", section_,
                                    key, min, max, value));
            return std::nullopt;
        }
        return static_cast<int>(value);
    }

    // `name`: how errors call the key, e.g. "verify.auto_repair".
    std::optional<bool> boolean(std::string_view key, std::string_view name) {
        const toml::node* node = get(key, false);
        if (node == nullptr) {
            return std::nullopt;
        }
        if (!node->is_boolean()) {
            diag_.error(node->source(), fmt::format("{} must be true or false", name));
            return std::nullopt;
        }
        return node->as_boolean()->get();
    }

    const toml::table* subtable(std::string_view key, bool required) {
        const toml::node* node = get(key, required);
        if (node == nullptr) {
            return nullptr;
        }
        if (!node->is_table()) {
            wrong_type(*node, key, "a table");
            return nullptr;
        }
        return node->as_table();
    }

    const toml::array* array(std::string_view key, bool required) {
        const toml::node* node = get(key, required);
        if (node == nullptr) {
            return nullptr;
        }
        if (!node->is_array()) {
            wrong_type(*node, key, "an array");
            return nullptr;
        }
        return node->as_array();
    }

    const toml::source_region& source_of(std::string_view key) const {
        const toml::node* node = table_.get(key);
        return node != nullptr ? node->source() : table_.source();
    }

  private:
    void wrong_type(const toml::node& node, std::string_view key, std::string_view expected) {
        diag_.error(node.source(), fmt::format("{}.{} must be {}, got {}", section_, key, expected,
                                               type_name(node)));
    }

    const toml::table& table_;
    std::string section_;
    Diagnostics& diag_;
    std::vector<std::string_view> allowed_;
};

// Bridge and side names become parts of slot and origin names, which PostgreSQL restricts to
// lower-case letters, digits and underscores.
bool is_valid_object_name(std::string_view name) {
    if (name.empty() || !(name[0] >= 'a' && name[0] <= 'z')) {
        return false;
    }
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    });
}

// Longer than any password (cloud IAM tokens are a few KB).
constexpr std::size_t kMaxPasswordLine = 64 * 1024;
constexpr std::size_t kMaxSigningKeyFile = 64 * 1024;
// Shards of a direction: each holds a target connection, a broker connection and an origin.
constexpr int kMaxApplyWorkers = 32;

// The one rule for a file that holds a secret (a password, a signing key): only its owner may
// read or write it (mode 0600 or 0400, owned by the user pgbridge runs as). A file others can
// read is refused, not warned about: a warning in a log nobody reads leaves the secret open.
std::optional<std::string> exposed_secret_file(const std::filesystem::path& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
        return std::nullopt;  // reading it failed already, with its own error
    }
    if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        return fmt::format(
            "can be read or written by group or others (mode {:04o}): pgbridge "
            "refuses it; chmod 0600 it, owned by the user pgbridge runs as",
            info.st_mode & 07777);
    }
    return std::nullopt;
}

// Reads at most `limit` + 1 bytes, so that a path like /dev/zero is not read forever (more
// than `limit` means too long), up to the first newline when `first_line`. Room for all of it
// at once: a buffer that grows leaves copies of a secret in freed memory.
std::string read_bounded(std::istream& in, std::size_t limit, bool first_line) {
    std::string out;
    out.reserve(limit + 1);
    for (char c = 0; out.size() <= limit && in.get(c) && !(first_line && c == '\n');) {
        out += c;
    }
    return out;
}

std::optional<Secret> read_password_file(const std::filesystem::path& path,
                                         const toml::source_region& where, Diagnostics& diag) {
    std::ifstream in(path);
    if (!in) {
        diag.error(where, fmt::format("password_file '{}' cannot be read: expected a readable "
                                      "file holding the password on its first line",
                                      path.string()));
        return std::nullopt;
    }
    std::string line = read_bounded(in, kMaxPasswordLine, /*first_line=*/true);
    if (line.size() > kMaxPasswordLine) {
        diag.error(where, fmt::format("password_file '{}' has a first line longer than {} bytes: "
                                      "expected the password on its first line",
                                      path.string(), kMaxPasswordLine));
        return std::nullopt;
    }
    while (!line.empty() && line.back() == '\r') {
        line.pop_back();
    }
    if (line.empty()) {
        diag.error(where, fmt::format("password_file '{}' is empty: expected the password on its "
                                      "first line",
                                      path.string()));
        return std::nullopt;
    }
    Secret secret(std::move(line));
    if (const auto problem = exposed_secret_file(path)) {
        diag.error(where, fmt::format("password_file '{}' {}", path.string(), *problem));
        return std::nullopt;
    }
    return secret;
}

std::filesystem::path resolve_path(const std::string& text, const std::filesystem::path& base) {
    std::filesystem::path p(text);
    return p.is_absolute() ? p : base / p;
}

class ConfigParser {
  public:
    ConfigParser(std::string source_name, std::filesystem::path base_dir)
        : diag_(source_name), base_dir_(std::move(base_dir)) {
        config_.file = std::move(source_name);
    }

    Config parse(std::string_view text) {
        toml::table root;
        try {
            root = toml::parse(text, config_.file.string());
        } catch (const toml::parse_error& e) {
            diag_.error(e.source(), fmt::format("invalid TOML: {}", e.description()));
            diag_.throw_if_any();
        }
        TableReader reader(root, "the top level", diag_,
                           {"bridge", "sides", "rabbitmq", "engine", "tables", "conflicts",
                            "status", "metrics", "verify", "sync", "log", "history"});
        read_bridge(reader);
        read_sides(reader);
        read_rabbitmq(reader);
        read_engine(reader);
        read_log(reader);
        read_status(reader);
        read_metrics(reader);
        read_verify(reader);
        read_sync(reader);
        read_history(reader);
        read_tables(reader);
        read_conflicts(reader);
        diag_.throw_if_any();
        return std::move(config_);
    }

  private:
    void read_bridge(TableReader& root) {
        const toml::table* bridge = root.subtable("bridge", true);
        if (bridge == nullptr) {
            return;
        }
        TableReader reader(*bridge, "[bridge]", diag_, {"name"});
        if (auto name = reader.string("name", true)) {
            if (!is_valid_object_name(*name)) {
                diag_.error(reader.source_of("name"),
                            fmt::format("bridge.name must start with a lower-case letter and hold "
                                        "only a-z, 0-9 and _ (it becomes part of slot names), "
                                        "got '{}'",
                                        *name));
            } else {
                config_.bridge_name = *name;
            }
        }
    }

    void read_sides(TableReader& root) {
        const toml::table* sides = root.subtable("sides", true);
        if (sides == nullptr) {
            return;
        }
        std::vector<std::pair<toml::source_position, SideConfig>> found;
        for (auto&& [key, value] : *sides) {
            const std::string name(key.str());
            if (!is_valid_object_name(name)) {
                diag_.error(key.source(),
                            fmt::format("side name must start with a lower-case letter and hold "
                                        "only a-z, 0-9 and _ (it becomes part of slot names), "
                                        "got '{}'",
                                        name));
                continue;
            }
            if (!value.is_table()) {
                diag_.error(value.source(), fmt::format("sides.{} must be a table with a "
                                                        "conninfo, got {}",
                                                        name, type_name(value)));
                continue;
            }
            SideConfig side;
            side.name = name;
            side.where = diag_.at(key.source());
            const std::string origin = names::origin(config_.bridge_name, name);
            if (origin.size() > names::kMaxIdentifierLength) {
                diag_.error(key.source(),
                            fmt::format("bridge and side names are too long: "
                                        "origin name {} has {} characters, "
                                        "PostgreSQL allows {}",
                                        origin, origin.size(), names::kMaxIdentifierLength));
            }
            TableReader reader(*value.as_table(), "[sides." + name + "]", diag_,
                               {"conninfo", "password_file", "rabbitmq_url", "rabbitmq_urls",
                                "rabbitmq_password_file"});
            if (auto conninfo = reader.string("conninfo", true)) {
                check_conninfo(*conninfo, name, reader.source_of("conninfo"));
                side.conninfo = std::move(*conninfo);
            }
            if (auto file = reader.string("password_file", false)) {
                side.password_file = resolve_path(*file, base_dir_);
                if (auto secret = read_password_file(*side.password_file,
                                                     reader.source_of("password_file"), diag_)) {
                    side.password = std::move(*secret);
                }
            }
            read_site_broker(reader, side);
            found.emplace_back(key.source().begin, std::move(side));
        }
        // toml++ keeps keys sorted; the DBA's order is the order of declaration.
        std::stable_sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
            return std::tie(a.first.line, a.first.column) < std::tie(b.first.line, b.first.column);
        });
        if (found.size() > 2) {
            diag_.error(found[2].second.where,
                        fmt::format("side '{}' is one too many: a bridge joins exactly two "
                                    "databases",
                                    found[2].second.name));
        } else if (found.size() < 2 && found.size() == sides->size()) {
            diag_.error(root.source_of("sides"),
                        fmt::format("[sides] must declare exactly two sides (the two databases "
                                    "of the bridge), got {}",
                                    found.size()));
        }
        for (auto& [pos, side] : found) {
            config_.sides.push_back(std::move(side));
        }
    }

    void check_conninfo(const std::string& conninfo, const std::string& side,
                        const toml::source_region& where) {
        std::string error;
        auto parts = pg::ConninfoParts::parse(conninfo, &error);
        if (!parts) {
            diag_.error(where, fmt::format("sides.{}.conninfo is not a valid libpq connection "
                                           "string: {}",
                                           side, error));
            return;
        }
        if (parts->has("replication")) {
            diag_.error(where, fmt::format("sides.{}.conninfo must not set 'replication'; "
                                           "pgbridge opens replication connections itself",
                                           side));
        }
        if (parts->has("password")) {
            config_.warnings.push_back(
                fmt::format("sides.{}.conninfo holds a password; move it to password_file", side));
        }
    }

    void read_rabbitmq(TableReader& root) {
        const toml::table* rabbit = root.subtable("rabbitmq", true);
        if (rabbit == nullptr) {
            return;
        }
        TableReader reader(*rabbit, "[rabbitmq]", diag_,
                           {"url", "urls", "password_file", "max_priority", "max_message_bytes",
                            "ca_file", "cert_file", "key_file", "verify_peer", "signing_key_file",
                            "queue_type", "priority_bands"});
        auto& r = config_.rabbitmq;
        // Not needed when each side has a broker of its own.
        const bool every_side_has_one =
            !config_.sides.empty() &&
            std::all_of(config_.sides.begin(), config_.sides.end(),
                        [](const SideConfig& side) { return side.broker.has_value(); });
        const bool has_url =
            read_broker_urls(reader, "rabbitmq", "", r.url, r.failover_urls, !every_side_has_one);
        read_broker_password(reader, "password_file", "rabbitmq.url", r.password_file, r.url,
                             r.failover_urls);
        if (!has_url && every_side_has_one) {
            // For what reads [rabbitmq] alone; its password_file stays the sides' default.
            const Secret shared = r.url.password;
            r.url = config_.sides.front().broker->url;
            r.url.password = shared;
            r.url.password_in_url = false;
        }
        // RabbitMQ accepts x-max-priority up to 255 but recommends small values: every level
        // costs an internal queue.
        if (auto max = reader.integer("max_priority", false, 1, 255)) {
            config_.rabbitmq.max_priority = *max;
        }
        // At least 64 KiB, so that one row fits a chunk; at most RabbitMQ's own ceiling for
        // max_message_size (512 MiB; its default is 128 MiB).
        if (auto bytes = reader.integer("max_message_bytes", false, 64 * 1024, 512 * 1024 * 1024)) {
            config_.rabbitmq.max_message_bytes = static_cast<std::size_t>(*bytes);
        }
        read_queue_type(reader);
        read_tls_files(reader);
        if (auto file = reader.string("signing_key_file", false)) {
            config_.rabbitmq.signing_key_file = resolve_path(*file, base_dir_);
            read_signing_keys(*config_.rabbitmq.signing_key_file,
                              reader.source_of("signing_key_file"));
        }
    }

    // `url` (one node) or `urls` (every node of a cluster, tried in that order). The nodes of
    // one cluster share its users and virtual hosts, and one password_file serves them all:
    // nodes that differ in scheme, user or virtual host are a mistake, refused here.
    // `prefix`: how the keys are spelled in `section` ("" in [rabbitmq], "rabbitmq_" in a
    // side). False when neither is there.
    bool read_broker_urls(TableReader& reader, std::string_view section, std::string_view prefix,
                          AmqpUrl& url, std::vector<AmqpUrl>& failover_urls, bool required) {
        const std::string url_key = std::string(prefix) + "url";
        const std::string urls_key = std::string(prefix) + "urls";
        const bool one = reader.get(url_key, false) != nullptr;
        const toml::array* many = reader.array(urls_key, false);
        if (one && many != nullptr) {
            diag_.error(reader.source_of(urls_key),
                        fmt::format("[{}] has both {} and {}: keep one ({} for a cluster)", section,
                                    url_key, urls_key, urls_key));
            return true;
        }
        if (!one && many == nullptr) {
            if (required) {
                diag_.error(reader.source_of(url_key),
                            fmt::format("[{}] needs {} (one node) or {} (every node of a cluster)",
                                        section, url_key, urls_key));
            }
            return false;
        }
        auto parse = [&](const toml::node& node, std::string_view key) -> std::optional<AmqpUrl> {
            std::string expected;
            if (const auto* text = node.as_string()) {
                if (auto parsed = AmqpUrl::parse(text->get(), &expected)) {
                    return parsed;
                }
            } else {
                expected = "a string";
            }
            diag_.error(node.source(), fmt::format("{}.{}: expected {}", section, key, expected));
            return std::nullopt;
        };
        if (one) {
            if (auto parsed = parse(*reader.get(url_key, true), url_key)) {
                url = std::move(*parsed);
            }
            return true;
        }
        if (many->empty()) {
            diag_.error(
                many->source(),
                fmt::format("{}.{} is empty: list every node of the cluster", section, urls_key));
            return true;
        }
        std::vector<AmqpUrl> nodes;
        for (const auto& node : *many) {
            if (auto parsed = parse(node, urls_key)) {
                if (!nodes.empty() &&
                    (parsed->tls != nodes.front().tls || parsed->user != nodes.front().user ||
                     parsed->vhost != nodes.front().vhost)) {
                    diag_.error(node.source(),
                                fmt::format("{}.{}: every node must have the scheme, user and "
                                            "virtual host of the first (they are one cluster)",
                                            section, urls_key));
                }
                nodes.push_back(std::move(*parsed));
            }
        }
        if (nodes.size() != many->size()) {
            return true;
        }
        url = std::move(nodes.front());
        failover_urls.assign(std::make_move_iterator(nodes.begin() + 1),
                             std::make_move_iterator(nodes.end()));
        return true;
    }

    // A password file's secret given to every node of a broker.
    void read_broker_password(TableReader& reader, std::string_view key, std::string_view name,
                              std::optional<std::filesystem::path>& file, AmqpUrl& url,
                              std::vector<AmqpUrl>& failover_urls) {
        if (auto path = reader.string(key, false)) {
            file = resolve_path(*path, base_dir_);
            if (auto secret = read_password_file(*file, reader.source_of(key), diag_)) {
                url.password = std::move(*secret);
                for (auto& node : failover_urls) {
                    node.password = url.password;
                }
            }
        } else if (url.password_in_url ||
                   std::any_of(failover_urls.begin(), failover_urls.end(),
                               [](const AmqpUrl& u) { return u.password_in_url; })) {
            config_.warnings.push_back(
                fmt::format("{} holds a password; move it to {}", name, key));
        }
    }

    // [sides.NAME] rabbitmq_url(s): the broker at this side's site.
    void read_site_broker(TableReader& reader, SideConfig& side) {
        SiteBroker broker;
        const std::string section = "sides." + side.name;
        if (!read_broker_urls(reader, section, "rabbitmq_", broker.url, broker.failover_urls,
                              false)) {
            if (reader.get("rabbitmq_password_file", false) != nullptr) {
                diag_.error(reader.source_of("rabbitmq_password_file"),
                            fmt::format("{}.rabbitmq_password_file is for the side's own broker: "
                                        "set rabbitmq_url or rabbitmq_urls too",
                                        section));
            }
            return;
        }
        read_broker_password(reader, "rabbitmq_password_file", section + "'s broker URL",
                             broker.password_file, broker.url, broker.failover_urls);
        side.broker = std::move(broker);
    }

    void read_queue_type(TableReader& reader) {
        auto& r = config_.rabbitmq;
        if (auto type = reader.string("queue_type", false)) {
            if (*type == "quorum") {
                r.queue_type = RabbitConfig::QueueType::Quorum;
            } else if (*type != "classic") {
                diag_.error(reader.source_of("queue_type"),
                            fmt::format("rabbitmq.queue_type must be \"classic\" or \"quorum\", "
                                        "got \"{}\"",
                                        *type));
            }
        }
        const toml::array* bands = reader.array("priority_bands", false);
        if (bands == nullptr) {
            if (r.queue_type == RabbitConfig::QueueType::Quorum) {
                r.priority_bands = {std::min(5, r.max_priority)};
            }
            return;
        }
        if (r.queue_type != RabbitConfig::QueueType::Quorum) {
            diag_.error(bands->source(),
                        "rabbitmq.priority_bands is for queue_type = \"quorum\" (classic queues "
                        "keep every priority)");
            return;
        }
        for (const auto& node : *bands) {
            const auto* bound = node.as_integer();
            const int previous =
                r.priority_bands.empty() ? r.max_priority + 1 : r.priority_bands.back();
            if (bound == nullptr || bound->get() < 1 || bound->get() >= previous) {
                diag_.error(node.source(),
                            fmt::format("rabbitmq.priority_bands: expected the lowest priority of "
                                        "each band above the lowest, highest first, each between "
                                        "1 and {} (max_priority)",
                                        r.max_priority));
                return;
            }
            r.priority_bands.push_back(static_cast<int>(bound->get()));
        }
        if (r.priority_bands.size() > 8) {
            diag_.error(bands->source(), "rabbitmq.priority_bands: at most 8 bands (a queue each)");
        }
    }

    void read_signing_keys(const std::filesystem::path& path, const toml::source_region& where) {
        std::ifstream in(path);
        Secret text(read_bounded(in, kMaxSigningKeyFile, /*first_line=*/false));
        std::string error;
        if (!in && !in.eof()) {
            error = "cannot be read: expected a readable file of keys, one a line";
        } else if (text.reveal().size() > kMaxSigningKeyFile) {
            error = fmt::format("is longer than {} bytes: expected a few keys, one a line",
                                kMaxSigningKeyFile);
        } else if (const auto problem = exposed_secret_file(path)) {
            error = *problem;
        } else if (auto keys = parse_signing_keys(text.reveal(), &error)) {
            config_.rabbitmq.signing_keys = std::move(*keys);
            return;
        }
        diag_.error(where, fmt::format("rabbitmq.signing_key_file '{}' {}", path.string(), error));
    }

    void read_tls_files(TableReader& reader) {
        auto& r = config_.rabbitmq;
        for (auto [key, target] :
             {std::pair{"ca_file", &r.ca_file}, std::pair{"cert_file", &r.cert_file},
              std::pair{"key_file", &r.key_file}}) {
            if (auto file = reader.string(key, false)) {
                *target = pem_file(reader, "rabbitmq", key, *file);
            }
        }
        r.verify_peer =
            reader.boolean("verify_peer", "rabbitmq.verify_peer").value_or(r.verify_peer);
        if (r.cert_file.has_value() != r.key_file.has_value()) {
            diag_.error(
                reader.source_of(r.cert_file ? "cert_file" : "key_file"),
                "rabbitmq.cert_file and rabbitmq.key_file go together: set both or neither");
        }
        if ((r.ca_file || r.cert_file) && !r.url.tls) {
            diag_.error(reader.source_of("url"),
                        "TLS files are set but rabbitmq.url is not amqps://");
        }
        for (const auto& side : config_.sides) {
            if ((r.ca_file || r.cert_file) && side.broker && !side.broker->url.tls) {
                diag_.error(reader.source_of(r.ca_file ? "ca_file" : "cert_file"),
                            fmt::format("TLS files are set but the broker of side {} is not "
                                        "amqps://",
                                        side.name));
            }
        }
    }

    void read_engine(TableReader& root) {
        const toml::table* engine = root.subtable("engine", false);
        if (engine == nullptr) {
            return;
        }
        TableReader reader(*engine, "[engine]", diag_,
                           {"batch_size", "max_retries", "retry_delay_ms", "timeout_ms",
                            "log_level", "apply_workers", "remote_apply_shards"});
        auto& e = config_.engine;
        read_log_level(reader, "log_level", "engine.log_level");
        e.batch_size = reader.integer("batch_size", false, 1, 100000).value_or(e.batch_size);
        e.max_retries = reader.integer("max_retries", false, 0, 1000).value_or(e.max_retries);
        e.retry_delay_ms =
            reader.integer("retry_delay_ms", false, 0, 3600000).value_or(e.retry_delay_ms);
        e.timeout_ms = reader.integer("timeout_ms", false, 100, 3600000).value_or(e.timeout_ms);
        e.apply_workers =
            reader.integer("apply_workers", false, 1, kMaxApplyWorkers).value_or(e.apply_workers);
        if (e.apply_workers > 1) {
            for (const auto& side : config_.sides) {
                const std::string origin = names::shard_origin(
                    config_.bridge_name, side.name, static_cast<std::uint32_t>(e.apply_workers - 1),
                    static_cast<std::uint32_t>(e.apply_workers));
                if (origin.size() > names::kMaxIdentifierLength) {
                    diag_.error(reader.source_of("apply_workers"),
                                fmt::format("bridge and side names are too long for {} apply "
                                            "workers: origin name {} has {} characters, "
                                            "PostgreSQL allows {}",
                                            e.apply_workers, origin, origin.size(),
                                            names::kMaxIdentifierLength));
                }
            }
        }
        read_remote_apply_shards(reader);
    }

    void read_remote_apply_shards(TableReader& reader) {
        const toml::array* shards = reader.array("remote_apply_shards", false);
        if (shards == nullptr) {
            return;
        }
        auto& e = config_.engine;
        for (const toml::node& node : *shards) {
            const auto shard = node.value<std::int64_t>();
            if (!node.is_integer() || !shard || *shard < 1 || *shard > e.apply_workers) {
                diag_.error(node.source(),
                            fmt::format("engine.remote_apply_shards lists shards by number, 1 to "
                                        "apply_workers ({})",
                                        e.apply_workers));
                continue;
            }
            if (std::find(e.remote_apply_shards.begin(), e.remote_apply_shards.end(), *shard) !=
                e.remote_apply_shards.end()) {
                diag_.error(node.source(),
                            fmt::format("engine.remote_apply_shards lists shard {} twice", *shard));
                continue;
            }
            e.remote_apply_shards.push_back(static_cast<int>(*shard));
        }
        std::sort(e.remote_apply_shards.begin(), e.remote_apply_shards.end());
    }

    // engine.log_level and log.level: one level, two spellings.
    void read_log_level(TableReader& reader, std::string_view key, std::string_view name) {
        if (const auto level = reader.string(key, false)) {
            if (const auto parsed = log::parse_level(*level)) {
                config_.logging.level = *parsed;
            } else {
                diag_.error(reader.source_of(key),
                            fmt::format("{} must be debug, info, warning or error", name));
            }
        }
    }

    void read_log(TableReader& root) {
        const toml::table* section = root.subtable("log", false);
        if (section == nullptr) {
            return;
        }
        TableReader reader(*section, "[log]", diag_, {"format", "level"});
        const toml::node* engine = root.get("engine", false);
        if (reader.get("level", false) != nullptr && engine != nullptr && engine->is_table() &&
            engine->as_table()->contains("log_level")) {
            diag_.error(reader.source_of("level"),
                        "log.level and engine.log_level say the same thing: keep log.level");
        } else {
            read_log_level(reader, "level", "log.level");
        }
        if (const auto format = reader.string("format", false)) {
            if (const auto parsed = log::parse_format(*format)) {
                config_.logging.format = *parsed;
            } else {
                diag_.error(reader.source_of("format"), "log.format must be text or json");
            }
        }
    }

    void read_metrics(TableReader& root) {
        const toml::table* metrics = root.subtable("metrics", false);
        if (metrics == nullptr) {
            return;
        }
        TableReader reader(*metrics, "[metrics]", diag_,
                           {"listen", "user", "password_file", "cert_file", "key_file"});
        read_metrics_access(reader);
        const auto listen = reader.string("listen", false);
        if (!listen) {
            // Settings that would protect nothing: the DBA meant to serve metrics.
            for (const char* key : {"user", "cert_file"}) {
                if (reader.get(key, false) != nullptr) {
                    diag_.error(reader.source_of(key),
                                fmt::format("metrics.{} is set but metrics.listen is not: "
                                            "nothing is served",
                                            key));
                }
            }
            return;
        }
        const auto colon = listen->rfind(':');
        const std::string port = colon == std::string::npos ? "" : listen->substr(colon + 1);
        if (colon == std::string::npos || colon == 0 || port.empty() ||
            port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
            std::stoi(port) < 1 || std::stoi(port) > 65535) {
            diag_.error(reader.source_of("listen"),
                        "metrics.listen must be HOST:PORT, like \"127.0.0.1:9187\"");
            return;
        }
        config_.metrics_listen = *listen;
    }

    void read_metrics_access(TableReader& reader) {
        auto& access = config_.metrics_access;
        const auto user = reader.string("user", false);
        const auto file = reader.string("password_file", false);
        if (user.has_value() != file.has_value()) {
            diag_.error(reader.source_of(user ? "user" : "password_file"),
                        "metrics.user and metrics.password_file go together (HTTP basic auth)");
        } else if (user) {
            if (user->empty() || user->find(':') != std::string::npos) {
                diag_.error(reader.source_of("user"),
                            "metrics.user must be a non-empty name without ':'");
            }
            access.user = *user;
            if (auto secret = read_password_file(resolve_path(*file, base_dir_),
                                                 reader.source_of("password_file"), diag_)) {
                access.password = std::move(*secret);
            }
        }
        const auto cert = reader.string("cert_file", false);
        const auto key = reader.string("key_file", false);
        if (cert.has_value() != key.has_value()) {
            diag_.error(reader.source_of(cert ? "cert_file" : "key_file"),
                        "metrics.cert_file and metrics.key_file go together (HTTPS)");
            return;
        }
        if (!cert) {
            return;
        }
        access.cert_file = pem_file(reader, "metrics", "cert_file", *cert);
        access.key_file = pem_file(reader, "metrics", "key_file", *key);
    }

    // A PEM file of TLS settings, checked readable; a private key (`key_file`) is a secret
    // file like a password.
    std::filesystem::path pem_file(TableReader& reader, std::string_view section,
                                   std::string_view key, const std::string& text) {
        std::filesystem::path path = resolve_path(text, base_dir_);
        const std::string name = fmt::format("{}.{} '{}'", section, key, path.string());
        if (!std::ifstream(path)) {
            diag_.error(reader.source_of(key),
                        fmt::format("{} cannot be read: expected a PEM file", name));
        } else if (const auto problem =
                       key == "key_file" ? exposed_secret_file(path) : std::nullopt) {
            diag_.error(reader.source_of(key), fmt::format("{} {}", name, *problem));
        }
        return path;
    }

    void read_verify(TableReader& root) {
        const toml::table* verify = root.subtable("verify", false);
        if (verify == nullptr) {
            return;
        }
        TableReader reader(*verify, "[verify]", diag_, {"schedule", "auto_repair"});
        if (const auto schedule = reader.string("schedule", false)) {
            std::string error;
            config_.verify.schedule = CronSchedule::parse(*schedule, &error);
            if (!config_.verify.schedule) {
                diag_.error(reader.source_of("schedule"), "verify.schedule: " + error);
            }
        }
        config_.verify.auto_repair = reader.boolean("auto_repair", "verify.auto_repair")
                                         .value_or(config_.verify.auto_repair);
        if (config_.verify.auto_repair && !reader.get("schedule", false)) {
            diag_.error(reader.source_of("auto_repair"),
                        "verify.auto_repair needs verify.schedule: repair runs after a "
                        "scheduled verify");
        }
    }

    void read_sync(TableReader& root) {
        const toml::table* sync = root.subtable("sync", false);
        if (sync == nullptr) {
            return;
        }
        TableReader reader(*sync, "[sync]", diag_, {"recopy"});
        if (auto recopy = reader.string("recopy", false)) {
            if (*recopy == "auto") {
                config_.sync.recopy = SyncConfig::Recopy::Auto;
            } else if (*recopy == "ask") {
                config_.sync.recopy = SyncConfig::Recopy::Ask;
            } else {
                diag_.error(
                    reader.source_of("recopy"),
                    fmt::format("sync.recopy must be \"auto\" or \"ask\", got '{}'", *recopy));
            }
        }
    }

    void read_history(TableReader& root) {
        const toml::table* history = root.subtable("history", false);
        if (history == nullptr) {
            return;
        }
        TableReader reader(*history, "[history]", diag_, {"retention"});
        const auto text = reader.string("retention", true);
        if (!text) {
            return;
        }
        const auto retention = parse_duration(*text);
        if (!retention || *retention < std::chrono::minutes(1) ||
            *retention > std::chrono::hours(24 * 3660)) {
            diag_.error(reader.source_of("retention"),
                        fmt::format("history.retention must be a duration of at least a minute, "
                                    "a number and a unit: \"90m\", \"12h\", \"7d\"; got '{}'",
                                    *text));
            return;
        }
        config_.history.retention = *retention;
    }

    void read_status(TableReader& root) {
        const toml::table* status = root.subtable("status", false);
        if (status == nullptr) {
            return;
        }
        TableReader reader(*status, "[status]", diag_,
                           {"max_lag_seconds", "max_queued_messages", "max_slot_lag_mb"});
        auto& s = config_.status;
        s.max_lag_seconds =
            reader.integer("max_lag_seconds", false, 1, 86400 * 7).value_or(s.max_lag_seconds);
        s.max_queued_messages = reader.integer("max_queued_messages", false, 1, 1000000000)
                                    .value_or(s.max_queued_messages);
        s.max_slot_lag_mb =
            reader.integer("max_slot_lag_mb", false, 1, 100000000).value_or(s.max_slot_lag_mb);
    }

    bool is_side(std::string_view name) const {
        return std::any_of(config_.sides.begin(), config_.sides.end(),
                           [&](const SideConfig& s) { return s.name == name; });
    }

    std::string side_list() const {
        std::vector<std::string> names;
        for (const auto& s : config_.sides) {
            names.push_back(s.name);
        }
        return fmt::format("{}", fmt::join(names, ", "));
    }

    std::optional<QualifiedName> table_name(const std::string& text,
                                            const toml::source_region& where,
                                            std::string_view what) {
        auto name = QualifiedName::parse(text);
        if (!name) {
            diag_.error(where, fmt::format("{} must be a schema-qualified table name like "
                                           "\"public.talents\", got '{}'",
                                           what, text));
        }
        return name;
    }

    void read_tables(TableReader& root) {
        const toml::array* tables = root.array("tables", true);
        if (tables == nullptr) {
            return;
        }
        if (tables->empty()) {
            diag_.error(tables->source(), "tables must list at least one [[tables]] entry");
        }
        for (std::size_t i = 0; i < tables->size(); ++i) {
            const toml::node& node = *tables->get(i);
            if (!node.is_table()) {
                diag_.error(node.source(),
                            fmt::format("tables[{}] must be a table, got {}", i, type_name(node)));
                continue;
            }
            read_table(*node.as_table(), i);
        }
    }

    void read_table(const toml::table& table, std::size_t index) {
        TableReader reader(table, fmt::format("[[tables]] #{}", index + 1), diag_,
                           {"name", "priority", "keys", "sides", "where", "exclude_columns",
                            "atomic_transactions", "history"});
        TableConfig result;
        result.where = diag_.at(table.source());
        auto text = reader.string("name", true);
        if (!text) {
            return;
        }
        auto name = table_name(*text, reader.source_of("name"), "tables.name");
        if (!name) {
            return;
        }
        result.name = *name;
        if (config_.find_table(result.name) != nullptr) {
            diag_.error(reader.source_of("name"),
                        fmt::format("table {} is listed twice in [[tables]]; expected each "
                                    "table once",
                                    result.name.display()));
            return;
        }
        const int max_priority = config_.rabbitmq.max_priority;
        result.priority =
            reader.integer("priority", false, 0, max_priority).value_or(result.priority);
        result.row_filter = row_filter(reader, "tables.where");
        if (const toml::array* excluded = reader.array("exclude_columns", false)) {
            for (const auto& node : *excluded) {
                if (!node.is_string() || node.as_string()->get().empty()) {
                    diag_.error(node.source(),
                                fmt::format("tables.exclude_columns must list column names (as "
                                            "named under [[tables]]), got {}",
                                            type_name(node)));
                    continue;
                }
                result.excluded_columns.insert(node.as_string()->get());
            }
        }
        result.atomic_transactions =
            reader.boolean("atomic_transactions", "tables.atomic_transactions").value_or(false);
        result.history = reader.boolean("history", "tables.history").value_or(true);
        if (const auto keys = reader.string("keys", false)) {
            // Only the one promise setup cannot check; sequences already partitioned odd/even
            // need no word here, setup recognises them.
            if (*keys == "disjoint") {
                result.keys = TableConfig::Keys::Disjoint;
            } else {
                diag_.error(reader.source_of("keys"),
                            fmt::format("tables.keys must be \"disjoint\" (the application keeps "
                                        "the keys of the two sides apart), got '{}'",
                                        *keys));
            }
        }
        if (const toml::table* sides = reader.subtable("sides", false)) {
            for (auto&& [key, value] : *sides) {
                read_table_side(result, std::string(key.str()), key.source(), value);
            }
        }
        config_.tables.push_back(std::move(result));
    }

    // A `where` condition: put into the publication's DDL as written, so one statement only.
    std::optional<std::string> row_filter(TableReader& reader, const std::string& key) {
        auto text = reader.string("where", false);
        if (!text) {
            return std::nullopt;
        }
        if (text->find_first_not_of(" \t\n") == std::string::npos ||
            text->find(';') != std::string::npos) {
            diag_.error(reader.source_of("where"),
                        fmt::format("{} must be one SQL condition on the table's columns (no ';'), "
                                    "got '{}'",
                                    key, *text));
            return std::nullopt;
        }
        return text;
    }

    void read_table_side(TableConfig& table, const std::string& side,
                         const toml::source_region& key_source, const toml::node& value) {
        if (!is_side(side)) {
            diag_.error(key_source, fmt::format("[tables.sides.{}] of table {} names an unknown "
                                                "side; expected one of: {}",
                                                side, table.name.display(), side_list()));
            return;
        }
        if (!value.is_table()) {
            diag_.error(value.source(), fmt::format("tables.sides.{} must be a table, got {}", side,
                                                    type_name(value)));
            return;
        }
        TableReader reader(*value.as_table(), fmt::format("[tables.sides.{}]", side), diag_,
                           {"name", "columns", "where"});
        TableSideConfig mapping;
        mapping.name = table.name;
        mapping.row_filter = row_filter(reader, fmt::format("tables.sides.{}.where", side));
        if (auto text = reader.string("name", false)) {
            auto name = table_name(*text, reader.source_of("name"),
                                   fmt::format("tables.sides.{}.name", side));
            if (!name) {
                return;
            }
            mapping.name = *name;
        }
        for (const auto& other : config_.tables) {
            if (other.name_on(side) == mapping.name) {
                diag_.error(reader.source_of("name"),
                            fmt::format("table {} maps to {} on side {}, which table {} already "
                                        "uses; expected one synced table per side table",
                                        table.name.display(), mapping.name.display(), side,
                                        other.name.display()));
                return;
            }
        }
        if (const toml::table* columns = reader.subtable("columns", false)) {
            std::map<std::string, std::string> used;  // side column -> canonical
            for (auto&& [key, column] : *columns) {
                const std::string canonical(key.str());
                if (!column.is_string() || column.as_string()->get().empty()) {
                    diag_.error(column.source(),
                                fmt::format("tables.sides.{}.columns.{} must be a non-empty "
                                            "column name on side {}, got {}",
                                            side, canonical, side, type_name(column)));
                    continue;
                }
                const std::string target = column.as_string()->get();
                auto [it, inserted] = used.emplace(target, canonical);
                if (!inserted) {
                    diag_.error(column.source(),
                                fmt::format("columns '{}' and '{}' both map to column '{}' on "
                                            "side {}; expected distinct columns",
                                            it->second, canonical, target, side));
                    continue;
                }
                mapping.columns.emplace(canonical, target);
            }
        }
        table.sides.emplace(side, std::move(mapping));
    }

    void read_conflicts(TableReader& root) {
        const toml::table* conflicts = root.subtable("conflicts", false);
        auto& c = config_.conflicts;
        if (conflicts != nullptr) {
            TableReader reader(*conflicts, "[conflicts]", diag_,
                               {"default_strategy", "source_priority", "field_priority"});
            if (auto text = reader.string("default_strategy", false)) {
                if (auto strategy = parse_conflict_strategy(*text)) {
                    c.default_strategy = *strategy;
                } else {
                    diag_.error(reader.source_of("default_strategy"),
                                fmt::format("conflicts.default_strategy must be one of "
                                            "last_write_wins, source_priority, manual; got '{}'",
                                            *text));
                }
            }
            if (const toml::array* order = reader.array("source_priority", false)) {
                read_source_priority(*order);
            }
            if (const toml::table* fields = reader.subtable("field_priority", false)) {
                for (auto&& [key, value] : *fields) {
                    read_field_rule(std::string(key.str()), key.source(), value);
                }
                // toml++ keeps keys sorted; show rules in the order the DBA wrote them.
                std::stable_sort(c.field_priority.begin(), c.field_priority.end(),
                                 [](const FieldRule& a, const FieldRule& b) {
                                     return std::tie(a.where.line, a.where.column) <
                                            std::tie(b.where.line, b.where.column);
                                 });
            }
        }
        c.source_priority = c.source_priority_as_written;
        for (const auto& side : config_.sides) {
            if (std::find(c.source_priority.begin(), c.source_priority.end(), side.name) ==
                c.source_priority.end()) {
                c.source_priority.push_back(side.name);
            }
        }
    }

    void read_source_priority(const toml::array& order) {
        for (const toml::node& item : order) {
            if (!item.is_string()) {
                diag_.error(item.source(), fmt::format("conflicts.source_priority must list "
                                                       "side names, got {}",
                                                       type_name(item)));
                continue;
            }
            const std::string side = item.as_string()->get();
            auto& listed = config_.conflicts.source_priority_as_written;
            if (!is_side(side)) {
                diag_.error(item.source(), fmt::format("conflicts.source_priority names "
                                                       "unknown side '{}'; expected one of: {}",
                                                       side, side_list()));
            } else if (std::find(listed.begin(), listed.end(), side) != listed.end()) {
                diag_.error(item.source(), fmt::format("conflicts.source_priority lists side "
                                                       "'{}' twice",
                                                       side));
            } else {
                listed.push_back(side);
            }
        }
    }

    void read_field_rule(const std::string& key, const toml::source_region& key_source,
                         const toml::node& value) {
        FieldRule rule;
        rule.where = diag_.at(key_source);
        const std::size_t last_dot = key.rfind('.');
        if (last_dot == std::string::npos) {
            rule.column = key;
        } else {
            auto table = QualifiedName::parse(std::string_view(key).substr(0, last_dot));
            rule.column = key.substr(last_dot + 1);
            if (!table || rule.column.empty()) {
                diag_.error(key_source, fmt::format("conflicts.field_priority key '{}' must be a "
                                                    "column name or schema.table.column",
                                                    key));
                return;
            }
            if (config_.find_table(*table) == nullptr) {
                diag_.error(key_source, fmt::format("conflicts.field_priority key '{}' names "
                                                    "table {}, which is not in [[tables]]",
                                                    key, table->display()));
                return;
            }
            rule.table = std::move(*table);
        }
        if (!value.is_string() || !is_side(value.as_string()->get())) {
            diag_.error(value.source(), fmt::format("conflicts.field_priority.{} must name the "
                                                    "side that wins, one of: {}",
                                                    key, side_list()));
            return;
        }
        rule.winner = value.as_string()->get();
        config_.conflicts.field_priority.push_back(std::move(rule));
    }

    Diagnostics diag_;
    std::filesystem::path base_dir_;
    Config config_;
};

}  // namespace

Config parse_config(std::string_view text, std::string source_name,
                    const std::filesystem::path& base_dir) {
    return ConfigParser(std::move(source_name), base_dir).parse(text);
}

Config load_config(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        throw Error(ErrorKind::Config, "cannot read the configuration file (use --config PATH)")
            .with("file", file.string());
    }
    std::ostringstream text;
    text << in.rdbuf();
    return parse_config(text.str(), file.string(), file.parent_path());
}

}  // namespace pgbridge
