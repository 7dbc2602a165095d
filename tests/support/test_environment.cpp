#include "test_environment.hpp"

#include <atomic>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <poll.h>
#include <random>
#include <regex>
#include <signal.h>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/transport/amqp_connection.hpp>
#include <pgbridge/transport/topology.hpp>

namespace pgbridge::test {
namespace {

std::string env_or_fail(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') {
        FAIL(
            fmt::format("{} is not set: run the tests with scripts/test, or start the servers "
                        "with scripts/testenv start and source the env file it prints",
                        name));
    }
    return value;
}

}  // namespace

const TestEnvironment& TestEnvironment::get() {
    static const TestEnvironment env = [] {
        TestEnvironment e;
        e.pg_admin[0] = env_or_fail("PGBRIDGE_TEST_PG_A");
        e.pg_admin[1] = env_or_fail("PGBRIDGE_TEST_PG_B");
        e.pg_host[0] = env_or_fail("PGBRIDGE_TEST_PG_A_HOST");
        e.pg_host[1] = env_or_fail("PGBRIDGE_TEST_PG_B_HOST");
        e.pg_port[0] = env_or_fail("PGBRIDGE_TEST_PG_A_PORT");
        e.pg_port[1] = env_or_fail("PGBRIDGE_TEST_PG_B_PORT");
        e.amqp_url = env_or_fail("PGBRIDGE_TEST_AMQP_URL");
        e.amqp_password = env_or_fail("PGBRIDGE_TEST_AMQP_PASSWORD");
        e.pgbridge_binary = env_or_fail("PGBRIDGE_BINARY");
        e.sql_dir = env_or_fail("PGBRIDGE_SQL_DIR");
        return e;
    }();
    return env;
}

void exec_with_output(const std::vector<std::string>& argv, int out_fd, int err_fd) {
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv) {
        args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
}

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
    REQUIRE(!argv.empty());
    int out_pipe[2];
    int err_pipe[2];
    REQUIRE(::pipe2(out_pipe, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(err_pipe, O_CLOEXEC) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        exec_with_output(argv, out_pipe[1], err_pipe[1]);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);

    CommandResult result;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open_streams = 2;
    bool timed_out = false;
    while (open_streams > 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        if (::poll(fds, 2, static_cast<int>(left.count())) < 0) {
            break;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP)) == 0) {
                continue;
            }
            char buffer[4096];
            const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
            if (n <= 0) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_streams;
            } else {
                (i == 0 ? result.out : result.err).append(buffer, static_cast<std::size_t>(n));
            }
        }
    }
    if (timed_out) {
        ::kill(pid, SIGKILL);
    }
    for (auto& fd : fds) {
        if (fd.fd >= 0) {
            ::close(fd.fd);
        }
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (timed_out) {
        FAIL(fmt::format("{} did not finish within {} ms", argv[0], timeout.count()));
    }
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
}

namespace {

// This tree's scripts/testenv (it has the cluster commands), else the one of the env file.
std::string cluster_testenv_script() {
    if (const char* root = std::getenv("PGBRIDGE_SOURCE_ROOT"); root != nullptr && *root != '\0') {
        const auto path = std::filesystem::path(root) / "scripts" / "testenv";
        if (std::filesystem::exists(path)) {
            return path.string();
        }
    }
    return env_or_fail("PGBRIDGE_TESTENV");
}

// The export NAME='value' lines of an env file written by scripts/testenv.
std::map<std::string, std::string> read_env_file(const std::string& path) {
    std::ifstream in(path);
    REQUIRE_MESSAGE(in, "cannot read the env file " << path);
    static const std::regex line_pattern(R"(^export ([A-Z0-9_]+)='([^']*)'$)");
    std::map<std::string, std::string> values;
    std::string line;
    while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_match(line, m, line_pattern)) {
            values[m[1].str()] = m[2].str();
        }
    }
    return values;
}

std::vector<std::string> split_words(const std::string& text) {
    std::vector<std::string> words;
    std::istringstream in(text);
    for (std::string word; in >> word;) {
        words.push_back(word);
    }
    return words;
}

void check_node_number(int n) {
    REQUIRE_MESSAGE((n >= 1 && n <= 3), "cluster node numbers are 1, 2 and 3, not " << n);
}

}  // namespace

ClusterEnvironment start_cluster() {
    auto started =
        run_command({cluster_testenv_script(), "cluster-start"}, std::chrono::minutes(8));
    INFO("scripts/testenv cluster-start: " << started.err);
    REQUIRE(started.exit_code == 0);
    // It prints the path of the env file last.
    const auto lines = split_words(started.out);
    REQUIRE(!lines.empty());
    const auto values = read_env_file(lines.back());
    ClusterEnvironment cluster;
    for (const char* name : {"PGBRIDGE_TEST_CLUSTER_URLS", "PGBRIDGE_TEST_CLUSTER_NODES"}) {
        REQUIRE_MESSAGE(values.contains(name), lines.back() << " does not set " << name);
    }
    cluster.urls = split_words(values.at("PGBRIDGE_TEST_CLUSTER_URLS"));
    cluster.nodes = split_words(values.at("PGBRIDGE_TEST_CLUSTER_NODES"));
    REQUIRE(cluster.urls.size() == 3);
    REQUIRE(cluster.nodes.size() == 3);
    const auto password = values.find("PGBRIDGE_TEST_AMQP_PASSWORD");
    cluster.password =
        password != values.end() ? password->second : env_or_fail("PGBRIDGE_TEST_AMQP_PASSWORD");
    return cluster;
}

transport::AmqpConnectOptions cluster_amqp_options(const ClusterEnvironment& cluster, int n,
                                                   bool with_failover) {
    check_node_number(n);
    REQUIRE(cluster.urls.size() == 3);
    auto parse = [&](const std::string& text) {
        std::string error;
        auto url = AmqpUrl::parse(text, &error);
        REQUIRE_MESSAGE(url, text << ": " << error);
        url->password = Secret(cluster.password);
        return *url;
    };
    transport::AmqpConnectOptions options;
    options.url = parse(cluster.urls[static_cast<std::size_t>(n - 1)]);
    if (with_failover) {
        for (int other = 1; other <= 3; ++other) {
            if (other != n) {
                options.failover_urls.push_back(
                    parse(cluster.urls[static_cast<std::size_t>(other - 1)]));
            }
        }
    }
    options.timeout_ms = 10000;
    options.connection_name = "pgbridge tests";
    return options;
}

void stop_cluster_node(int n) {
    check_node_number(n);
    auto stopped = run_command({cluster_testenv_script(), "cluster-node-stop", std::to_string(n)},
                               std::chrono::minutes(3));
    INFO("scripts/testenv cluster-node-stop " << n << ": " << stopped.err);
    REQUIRE(stopped.exit_code == 0);
}

void start_cluster_node(int n) {
    check_node_number(n);
    auto started = run_command({cluster_testenv_script(), "cluster-node-start", std::to_string(n)},
                               std::chrono::minutes(5));
    INFO("scripts/testenv cluster-node-start " << n << ": " << started.err);
    REQUIRE(started.exit_code == 0);
}

ClusterNodeOutage::ClusterNodeOutage(int n) : node_(n) {
    try {
        stop_cluster_node(n);
    } catch (...) {
        restart_quietly();  // a stop that failed half-way may have left it down
        throw;
    }
}

ClusterNodeOutage::~ClusterNodeOutage() {
    if (down_) {
        restart_quietly();
    }
}

void ClusterNodeOutage::end() {
    down_ = false;
    start_cluster_node(node_);
}

void ClusterNodeOutage::restart_quietly() noexcept {
    try {
        start_cluster_node(node_);
    } catch (...) {
    }
}

std::string unique_name(std::string_view prefix) {
    static std::atomic<int> counter{0};
    static const std::string run = [] {
        std::random_device device;
        return fmt::format("{:05x}", device() & 0xFFFFF);
    }();
    return fmt::format("{}_{}_{}", prefix, run, counter++);
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
        if (condition()) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return condition();
}

namespace {

pg::Connection connect(const std::string& conninfo, const std::string& password = {},
                       bool replication = false) {
    pg::ConnectOptions options;
    options.conninfo = conninfo;
    options.password = Secret(password);
    options.replication = replication;
    options.application_name = "pgbridge tests";
    options.side = "test";
    return pg::Connection::open(options);
}

}  // namespace

ScratchBridge::ScratchBridge(std::string_view prefix, const std::string& schema_a,
                             const std::string& schema_b, const std::string& tables_toml)
    : name_(unique_name(prefix)), role_("pgb_" + name_), password_("pw-" + name_) {
    const auto& env = TestEnvironment::get();
    dir_ = (std::filesystem::temp_directory_path() / ("pgbridge-test-" + name_)).string();
    std::filesystem::create_directories(dir_);
    for (int side = 0; side < 2; ++side) {
        auto server = connect(env.pg_admin[side]);
        server.exec(fmt::format("CREATE DATABASE \"{}\"", database(side)));
        auto db = admin(side);
        db.exec(side == 0 ? schema_a : schema_b);
        const std::string file = fmt::format("{}/{}.pass", dir_, side_name(side));
        std::ofstream(file) << password_ << '\n';
        std::filesystem::permissions(
            file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    }
    {
        const std::string file = dir_ + "/rabbit.pass";
        std::ofstream(file) << env.amqp_password << '\n';
        std::filesystem::permissions(
            file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    }
    config_path_ = dir_ + "/pgbridge.toml";
    std::ofstream config(config_path_);
    config << fmt::format(R"([bridge]
name = "{}"

[sides.a]
conninfo = "{}"
password_file = "a.pass"

[sides.b]
conninfo = "{}"
password_file = "b.pass"

[rabbitmq]
url = "{}"
password_file = "rabbit.pass"

[engine]
timeout_ms = 10000

{}
)",
                          name_, runtime_conninfo(0), runtime_conninfo(1), env.amqp_url,
                          tables_toml);
}

ScratchBridge::~ScratchBridge() {
    const auto& env = TestEnvironment::get();
    for (int side = 0; side < 2; ++side) {
        try {
            auto server = connect(env.pg_admin[side]);
            // Slots and origins outlive a dropped database; drop them first.
            server.exec(
                fmt::format("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                            "WHERE slot_name LIKE 'pgbridge\\_{0}\\_%' AND active_pid IS NOT NULL",
                            name_));
            eventually([&] {
                return server
                           .exec(fmt::format("SELECT count(*) FROM pg_replication_slots WHERE "
                                             "slot_name LIKE 'pgbridge\\_{}\\_%' AND active",
                                             name_))
                           .value(0, 0) == "0";
            });
            server.exec(
                fmt::format("SELECT pg_drop_replication_slot(slot_name) FROM "
                            "pg_replication_slots WHERE slot_name LIKE 'pgbridge\\_{}\\_%'",
                            name_));
            server.exec(
                fmt::format("SELECT pg_replication_origin_drop(roname) FROM "
                            "pg_replication_origin WHERE roname LIKE 'pgbridge\\_{}\\_%'",
                            name_));
            server.exec(fmt::format("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", database(side)));
            server.exec(fmt::format("DROP ROLE IF EXISTS \"{}\"", role_));
        } catch (const std::exception& e) {
            MESSAGE("cleanup of ", name_, " failed: ", e.what());
        }
    }
    try {
        transport::AmqpConnection broker(amqp_options());
        SetupReport ignored_report;
        transport::delete_topology(broker, transport::Topology{name_, {"a", "b"}, 10, false, {}},
                                   ignored_report, false);
    } catch (const std::exception& e) {
        MESSAGE("cleanup of the RabbitMQ objects of ", name_, " failed: ", e.what());
    }
    // PGBRIDGE_KEEP_SCRATCH=1 keeps the daemon logs and config of every scratch bridge, to look
    // at after a failure.
    const char* keep = std::getenv("PGBRIDGE_KEEP_SCRATCH");
    if (keep != nullptr && std::string_view(keep) == "1") {
        MESSAGE("kept ", dir_);
        return;
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

std::string ScratchBridge::admin_conninfo(int side) const {
    return TestEnvironment::get().pg_admin[side] + " dbname=" + database(side);
}

std::string ScratchBridge::runtime_conninfo(int side) const {
    const auto& env = TestEnvironment::get();
    return fmt::format("host={} port={} dbname={} user={}", env.pg_host[side], env.pg_port[side],
                       database(side), role_);
}

pg::Connection ScratchBridge::admin(int side) const {
    return connect(admin_conninfo(side));
}

pg::Connection ScratchBridge::runtime(int side, bool replication) const {
    return connect(runtime_conninfo(side), password_, replication);
}

CommandResult ScratchBridge::pgbridge(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{TestEnvironment::get().pgbridge_binary, "--config", config_path_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv);
}

transport::AmqpConnectOptions amqp_options() {
    const auto& env = TestEnvironment::get();
    std::string error;
    auto url = AmqpUrl::parse(env.amqp_url, &error);
    REQUIRE(url);
    url->password = Secret(env.amqp_password);
    transport::AmqpConnectOptions options;
    options.url = *url;
    options.timeout_ms = 10000;
    options.connection_name = "pgbridge tests";
    return options;
}

void ScratchBridge::setup() const {
    std::vector<std::string> args{"setup"};
    for (auto& flag : admin_flags()) {
        args.push_back(std::move(flag));
    }
    auto result = pgbridge(args);
    INFO(result.out << result.err);
    REQUIRE(result.exit_code == 0);
}

source::CaptureOptions ScratchBridge::capture_options(int side) const {
    source::CaptureOptions o;
    o.side = side_name(side);
    o.connect.conninfo = runtime_conninfo(side);
    o.connect.password = Secret(password_);
    o.connect.side = side_name(side);
    o.slot = "pgbridge_" + name_ + "_" + side_name(side);
    o.publication = "pgbridge_" + name_;
    o.status_interval = std::chrono::milliseconds(100);
    o.reconnect_min = std::chrono::milliseconds(50);
    o.reconnect_max = std::chrono::milliseconds(1000);
    return o;
}

source::CaptureOptions ScratchBridge::versioned_capture_options(
    int side, std::shared_ptr<VersionsWatermark> watermark) const {
    source::CaptureOptions o = capture_options(side);
    o.versions =
        source::VersionKeeperOptions{name_, side_name(side), o.connect, std::move(watermark), {}};
    return o;
}

Lsn ScratchBridge::confirmed_flush(int side) const {
    auto conn = admin(side);
    auto r = conn.exec("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1",
                       {"pgbridge_" + name_ + "_" + side_name(side)});
    REQUIRE(r.rows() == 1);
    return Lsn::parse(r.value(0, 0)).value();
}

std::vector<std::string> ScratchBridge::admin_flags() const {
    return {"--admin-conninfo", "a=" + admin_conninfo(0), "--admin-conninfo",
            "b=" + admin_conninfo(1)};
}

}  // namespace pgbridge::test
