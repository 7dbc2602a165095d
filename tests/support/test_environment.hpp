#pragma once

// What integration tests share: the servers of scripts/testenv, scratch databases that clean
// up after themselves, and running the pgbridge binary as a DBA would.

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <pgbridge/pg/connection.hpp>
#include <pgbridge/source/capture.hpp>
#include <pgbridge/transport/amqp_connection.hpp>

namespace pgbridge::test {

struct TestEnvironment {
    std::string pg_admin[2];  // superuser conninfo (Unix socket) of cluster a and b, no dbname
    std::string pg_host[2];
    std::string pg_port[2];
    std::string amqp_url;
    std::string amqp_password;
    std::string pgbridge_binary;
    std::string sql_dir;

    // Reads the PGBRIDGE_TEST_* variables; fails the test with instructions when they are not
    // set (run through scripts/test, or source the env file of scripts/testenv).
    static const TestEnvironment& get();
};

struct CommandResult {
    int exit_code = -1;
    std::string out;
    std::string err;
};

// In a forked child: stdout and stderr to the given descriptors, then argv[0] (from PATH) with
// its arguments; exits 127 when it cannot be started.
[[noreturn]] void exec_with_output(const std::vector<std::string>& argv, int out_fd, int err_fd);

// Runs argv[0] with the given arguments and environment additions, capturing both streams.
// Kills it and fails the test after timeout.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(60));

// How tests reach the RabbitMQ node of scripts/testenv.
transport::AmqpConnectOptions amqp_options();

// The three-node RabbitMQ cluster of `scripts/testenv cluster-start`, separate from the single
// node of amqp_url. Started on demand: 20-60 s the first time, a few seconds to find it running.
// These run $PGBRIDGE_SOURCE_ROOT/scripts/testenv (else $PGBRIDGE_TESTENV) on
// $PGBRIDGE_TESTENV_DIR, the directory of the env file the tests sourced.
struct ClusterEnvironment {
    std::vector<std::string> urls;   // amqp URLs of nodes 1, 2, 3 (user pgbridge, no password)
    std::vector<std::string> nodes;  // their RabbitMQ node names (for rabbitmqctl -n)
    std::string password;            // of user pgbridge, as for the single node
};

// Starts the cluster (or finds it running, all three nodes clustered) and reads
// PGBRIDGE_TEST_CLUSTER_URLS/_NODES from the env file; fails the test when it will not start.
// A cluster left with a node down (a failed test) is rebuilt, on other ports: call this again
// rather than keeping the URLs of an earlier call across tests.
ClusterEnvironment start_cluster();

// How tests reach node n (1..3) of the cluster; with_failover adds the other two nodes as
// failover_urls (as [rabbitmq] urls does).
transport::AmqpConnectOptions cluster_amqp_options(const ClusterEnvironment& cluster, int n,
                                                   bool with_failover = false);

// Stops cluster node n (1..3) entirely, as a lost machine would be (its Erlang VM, kill -9 if
// it hangs); fails the test unless it is down afterwards.
void stop_cluster_node(int n);
// Starts it again with its data; returns once it runs and is back in the cluster.
void start_cluster_node(int n);

// Cluster node n (1..3) down for a test: stopped when made, started again by end(), or by the
// destructor however the test ends (quietly), so that later tests find the cluster whole.
class ClusterNodeOutage {
  public:
    explicit ClusterNodeOutage(int n);
    ~ClusterNodeOutage();
    ClusterNodeOutage(const ClusterNodeOutage&) = delete;
    ClusterNodeOutage& operator=(const ClusterNodeOutage&) = delete;
    void end();

  private:
    void restart_quietly() noexcept;
    int node_;
    bool down_ = true;
};

// A unique name for this test run: lower-case, usable in database, role and bridge names.
std::string unique_name(std::string_view prefix);

// Polls condition until it holds or the deadline passes; returns whether it held.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds deadline = std::chrono::seconds(30));

// The mapped table of the apply and bridge suites: public.talents on side a is hr.candidates
// on side b, where email is called contact_email.
inline constexpr std::string_view kMappedTalentsToml = R"(
[[tables]]
name = "public.talents"
priority = 8
[tables.sides.b]
name = "hr.candidates"
columns = { email = "contact_email" }
)";

// Two fresh databases, one per cluster (side "a" on cluster a, side "b" on cluster b), a
// runtime role per cluster with a password in a password file, and a config file for a bridge
// between them. The destructor drops slots, origins, databases and roles.
class ScratchBridge {
  public:
    // schema_a / schema_b: SQL run in the fresh databases as superuser (tables to sync).
    // tables_toml: the [[tables]] (and optionally [conflicts]) part of the config.
    ScratchBridge(std::string_view prefix, const std::string& schema_a, const std::string& schema_b,
                  const std::string& tables_toml);
    ~ScratchBridge();
    ScratchBridge(const ScratchBridge&) = delete;
    ScratchBridge& operator=(const ScratchBridge&) = delete;

    const std::string& name() const { return name_; }
    const std::string& config_path() const { return config_path_; }
    // A scratch directory of this bridge (config, password files), removed with it.
    const std::string& dir() const { return dir_; }
    const std::string& role() const { return role_; }
    const std::string& password() const { return password_; }
    std::string side_name(int side) const { return side == 0 ? "a" : "b"; }
    std::string database(int side) const { return name_ + "_" + side_name(side); }
    // Superuser conninfo of the side's database.
    std::string admin_conninfo(int side) const;
    // The conninfo the config uses: the runtime role over TCP.
    std::string runtime_conninfo(int side) const;

    pg::Connection admin(int side) const;
    pg::Connection runtime(int side, bool replication = false) const;

    // pgbridge setup with both sides' admin conninfos; fails the test unless it succeeds.
    void setup() const;
    // Capture options for the side's slot as the runtime role, with short intervals for tests.
    // The same, keeping the side's column versions of local writes as pgbridge run does.
    source::CaptureOptions versioned_capture_options(
        int side, std::shared_ptr<VersionsWatermark> watermark) const;
    source::CaptureOptions capture_options(int side) const;
    Lsn confirmed_flush(int side) const;

    // pgbridge --config <this bridge's file> args...
    CommandResult pgbridge(const std::vector<std::string>& args) const;
    // The --admin-conninfo flags for both sides.
    std::vector<std::string> admin_flags() const;

  private:
    std::string name_;
    std::string role_;
    std::string password_;
    std::string dir_;
    std::string config_path_;
};

}  // namespace pgbridge::test
