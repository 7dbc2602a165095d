// The bridge under test: two scratch databases with the example schema (a mapped table
// among them), `pgbridge run` as a process, a random write workload for each side, and a
// row-by-row comparison of both sides. Shared by the bridge and verify suites.
#pragma once

#include <arpa/inet.h>
#include <atomic>
#include <csignal>
#include <fstream>
#include <map>
#include <mutex>
#include <netinet/in.h>
#include <random>
#include <set>
#include <sstream>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/config/object_names.hpp>
#include <pgbridge/core/error_policy.hpp>
#include <pgbridge/transport/amqp_connection.hpp>
#include <pgbridge/transport/topology.hpp>

#include "daemon_process.hpp"
#include "free_port.hpp"
#include "test_environment.hpp"

namespace pgbridge::test {

inline const std::string kSchemaA = R"(
CREATE TABLE public.talents (id bigint PRIMARY KEY, name text, email text, phone text,
                             status text, score int);
CREATE TABLE public.notes (id bigint PRIMARY KEY, body text, flag boolean);
CREATE TABLE public.ledger (id text PRIMARY KEY, written_on text NOT NULL);
CREATE TABLE public.extra (id int PRIMARY KEY, v text);  -- synced only once added (a test)
)";
inline const std::string kSchemaB = R"(
CREATE SCHEMA hr;
CREATE TABLE hr.candidates (id bigint PRIMARY KEY, name text, contact_email text, phone text,
                            status text, score int);
CREATE TABLE public.notes (id bigint PRIMARY KEY, body text, flag boolean);
CREATE TABLE public.ledger (id text PRIMARY KEY, written_on text NOT NULL);
CREATE TABLE public.extra (id int PRIMARY KEY, v text);
)";

inline std::string tables_toml(const std::string& conflicts) {
    return std::string(kMappedTalentsToml) + R"(

[[tables]]
name = "public.notes"
priority = 3

[[tables]]
name = "public.ledger"
priority = 1
)" + conflicts;
}

struct TableView {
    std::string a_name;
    std::string b_name;
    std::vector<std::string> a_columns;  // first is the key
    std::vector<std::string> b_columns;
};

inline const std::vector<TableView> kTables{
    {"public.talents",
     "hr.candidates",
     {"id", "name", "email", "phone", "status", "score"},
     {"id", "name", "contact_email", "phone", "status", "score"}},
    {"public.notes", "public.notes", {"id", "body", "flag"}, {"id", "body", "flag"}},
    {"public.ledger", "public.ledger", {"id", "written_on"}, {"id", "written_on"}},
};

using Rows = std::map<std::string, std::vector<std::optional<std::string>>>;

inline constexpr long kHotKeys = 5;

inline Rows all_rows(pg::Connection& conn, const std::string& table,
                     const std::vector<std::string>& columns) {
    std::string list;
    for (const auto& c : columns) {
        list += (list.empty() ? "" : ", ") + c + "::text";
    }
    const auto r = conn.exec("SELECT " + list + " FROM " + table);
    Rows out;
    for (int i = 0; i < r.rows(); ++i) {
        std::vector<std::optional<std::string>> row;
        for (int c = 1; c < r.columns(); ++c) {
            row.push_back(r.optional_value(i, c));
        }
        out[std::string(r.value(i, 0))] = std::move(row);
    }
    return out;
}

// Random writes on one side at a steady rate: updates of random columns, inserts of keys that
// both sides may pick at the same moment, deletes, and ledger rows that must reach the other
// side. A deleted key is never inserted again (docs/apply-design.md, known gaps).
class Workload {
  public:
    Workload(const ScratchBridge& scratch, int side, int rate_per_second, unsigned seed,
             std::atomic<long>& next_key)
        : scratch_(scratch),
          side_(side),
          next_key_(next_key),
          conn_(scratch.admin(side)),
          random_(seed),
          rate_(rate_per_second) {
        thread_ = std::thread([this] { loop(); });
    }
    ~Workload() { stop(); }

    void stop() {
        stopping_ = true;
        if (thread_.joinable()) {
            thread_.join();
        }
    }
    std::set<std::string> ledger() const {
        std::lock_guard lock(mutex_);
        return ledger_;
    }
    long transactions() const { return transactions_; }
    std::string failure() const {
        std::lock_guard lock(mutex_);
        return failure_;
    }

  private:
    std::string talents() const { return side_ == 0 ? "public.talents" : "hr.candidates"; }
    std::string email() const { return side_ == 0 ? "email" : "contact_email"; }

    // Half the time one of the hot keys (never deleted), so that both sides often write the
    // same row at the same moment.
    long existing_key() {
        if (random_() % 2 == 0) {
            return std::uniform_int_distribution<long>(1, kHotKeys)(random_);
        }
        const long top = std::max(1L, next_key_.load());
        return std::uniform_int_distribution<long>(1, top)(random_);
    }
    std::string text(const char* what) {
        return fmt::format("{}-{}-{}", what, side_ == 0 ? "a" : "b",
                           std::uniform_int_distribution<int>(0, 9999)(random_));
    }

    void one_transaction() {
        const int dice = std::uniform_int_distribution<int>(0, 99)(random_);
        if (dice < 45) {
            // Update one to three random columns of a random row.
            const std::vector<std::string> columns{"name", email(), "phone", "status", "score"};
            std::string sets;
            pg::Params params;
            for (const auto& c : columns) {
                if (std::uniform_int_distribution<int>(0, 2)(random_) == 0 || sets.empty()) {
                    params.push_back(c == "score" ? std::to_string(random_() % 100)
                                                  : text(c.c_str()));
                    sets += fmt::format("{}{} = ${}{}", sets.empty() ? "" : ", ", c, params.size(),
                                        c == "score" ? "::int" : "");
                }
            }
            params.push_back(std::to_string(existing_key()));
            conn_.exec(
                fmt::format("UPDATE {} SET {} WHERE id = ${}", talents(), sets, params.size()),
                params);
        } else if (dice < 60) {
            // A new key, often the same one the other side picks now.
            const long key = next_key_.load() + std::uniform_int_distribution<long>(0, 2)(random_);
            long seen = next_key_.load();
            while (seen < key && !next_key_.compare_exchange_weak(seen, key)) {
            }
            conn_.exec(fmt::format("INSERT INTO {} VALUES ($1, $2, $3, NULL, 'new', 1) "
                                   "ON CONFLICT (id) DO NOTHING",
                                   talents()),
                       {std::to_string(key), text("name"), text("mail")});
        } else if (dice < 65) {
            conn_.exec(fmt::format("DELETE FROM {} WHERE id = $1 AND id > {}", talents(), kHotKeys),
                       {std::to_string(existing_key())});
        } else if (dice < 80) {
            const long key = std::uniform_int_distribution<long>(1, 50)(random_);
            conn_.exec(
                "INSERT INTO public.notes VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE "
                "SET body = EXCLUDED.body",
                {std::to_string(key), text("note"), random_() % 2 ? "true" : "false"});
        } else {
            const std::string id = fmt::format("{}-{}", side_ == 0 ? "a" : "b", ++ledger_seq_);
            conn_.exec("INSERT INTO public.ledger VALUES ($1, $2)", {id, side_ == 0 ? "a" : "b"});
            std::lock_guard lock(mutex_);
            ledger_.insert(id);
        }
        ++transactions_;
    }

    void loop() {
        const auto period = std::chrono::microseconds(1'000'000 / rate_);
        auto next = std::chrono::steady_clock::now();
        while (!stopping_) {
            try {
                one_transaction();
            } catch (const Error& e) {
                // A restarting server refuses writes for a moment; the ledger only holds what
                // committed.
                if (!is_connection_failure(e)) {
                    std::lock_guard lock(mutex_);
                    failure_ = e.what();
                    return;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
                try {
                    conn_ = scratch_.admin(side_);
                } catch (const Error&) {
                }
            }
            next += period;
            std::this_thread::sleep_until(next);
        }
    }

    const ScratchBridge& scratch_;
    int side_;
    std::atomic<long>& next_key_;
    pg::Connection conn_;
    std::mt19937 random_;
    int rate_;
    long ledger_seq_ = 0;
    std::atomic<long> transactions_{0};
    std::atomic<bool> stopping_{false};
    mutable std::mutex mutex_;
    std::set<std::string> ledger_;
    std::string failure_;
    std::thread thread_;
};

// No side has recorded a dead letter.
inline bool dead_letters_none(const ScratchBridge& scratch) {
    for (int side = 0; side < 2; ++side) {
        auto conn = scratch.admin(side);
        if (conn.exec("SELECT count(*) FROM pgbridge.dead_letters").value(0, 0) != "0") {
            return false;
        }
    }
    return true;
}

// pgbridge run of a scratch bridge as a process, once it streams both ways.
inline std::unique_ptr<DaemonProcess> start_run(const ScratchBridge& scratch,
                                                const std::string& log_path) {
    auto daemon = std::make_unique<DaemonProcess>(
        std::vector<std::string>{TestEnvironment::get().pgbridge_binary, "--config",
                                 scratch.config_path(), "run"},
        log_path);
    const bool streaming = eventually(
        [&] { return daemon->output_contains("streaming both directions") || !daemon->running(); },
        std::chrono::seconds(60));
    INFO(daemon->output());
    REQUIRE(streaming);
    REQUIRE(daemon->running());
    return daemon;
}

// SIGTERM: must end cleanly and in time.
inline void stop_run(DaemonProcess& daemon) {
    daemon.signal(SIGTERM);
    const int code = daemon.wait(std::chrono::seconds(20));
    INFO(daemon.output());
    CHECK(code == 0);
}

class BridgeRun {
  public:
    // before_setup: writes made before pgbridge is set up (rows it has no versions for).
    explicit BridgeRun(const std::string& conflicts,
                       const std::function<void(ScratchBridge&)>& before_setup = {})
        : scratch("bridge", kSchemaA, kSchemaB, tables_toml(conflicts)) {
        if (before_setup) {
            before_setup(scratch);
        }
        scratch.setup();
    }

    void start() {
        daemon = start_run(scratch, fmt::format("{}/run-{}.log", scratch.dir(), ++starts_));
    }

    void stop() { stop_run(*daemon); }

    std::vector<std::pair<std::string, std::string>> differences() const {
        detail_.clear();
        auto a = scratch.admin(0);
        auto b = scratch.admin(1);
        std::vector<std::pair<std::string, std::string>> out;  // (table, key:column)
        for (const auto& t : kTables) {
            const Rows ra = all_rows(a, t.a_name, t.a_columns);
            const Rows rb = all_rows(b, t.b_name, t.b_columns);
            for (const auto& [key, row] : ra) {
                const auto it = rb.find(key);
                if (it == rb.end()) {
                    out.emplace_back(t.a_name, key + ":<only on a>");
                    continue;
                }
                for (std::size_t c = 0; c < row.size(); ++c) {
                    if (row[c] != it->second[c]) {
                        out.emplace_back(t.a_name, key + ":" + t.a_columns[c + 1]);
                        detail_ +=
                            fmt::format("{} {}:{} a={} b={}; ", t.a_name, key, t.a_columns[c + 1],
                                        row[c].value_or("NULL"), it->second[c].value_or("NULL"));
                    }
                }
            }
            for (const auto& [key, row] : rb) {
                if (!ra.contains(key)) {
                    out.emplace_back(t.a_name, key + ":<only on b>");
                }
            }
        }
        return out;
    }

    std::uint32_t queued(const std::string& queue) const {
        // The broker of the bridge's own file: a cluster's nodes, when it names them.
        transport::AmqpConnection conn(transport::AmqpConnectOptions::from(
            load_config(scratch.config_path()).rabbitmq, 10000));
        const auto state = conn.inspect_queue(1, queue);
        return state ? state->messages : 0;
    }

    // Both queues drained (nothing ready, nothing in retry) and both slots caught up with
    // their server's WAL.
    bool settled() const {
        const auto topology = transport::Topology::of(load_config(scratch.config_path()));
        for (const char* side : {"a", "b"}) {
            auto queues = topology.all_change_queues(side);
            for (auto& retry : topology.all_retry_queues(side)) {
                queues.push_back(std::move(retry));
            }
            for (const auto& queue : queues) {
                if (queued(queue) != 0) {
                    return false;
                }
            }
        }
        for (int side = 0; side < 2; ++side) {
            auto conn = scratch.admin(side);
            const auto r = conn.exec(
                "SELECT confirmed_flush_lsn >= pg_current_wal_insert_lsn() - 100000"
                "  FROM pg_replication_slots WHERE slot_name = $1",
                {names::slot(scratch.name(), scratch.side_name(side))});
            if (r.rows() != 1 || r.value(0, 0) != "t") {
                return false;
            }
        }
        return true;
    }

    // Waits for the sides to agree (or, under manual, to differ only where conflicts are
    // pending), then checks the ledgers and that nothing is still moving.
    void check_converged(const std::vector<std::set<std::string>>& ledgers, bool manual) {
        std::vector<std::pair<std::string, std::string>> diff;
        const bool agreed = eventually(
            [&] {
                diff = differences();
                if (!manual) {
                    return diff.empty();
                }
                const auto pending = pending_columns();
                return std::all_of(diff.begin(), diff.end(),
                                   [&](const auto& d) { return pending.contains(d); });
            },
            std::chrono::seconds(90));
        std::string listed;
        for (const auto& [table, what] : diff) {
            listed += table + " " + what + "; ";
        }
        INFO("differences: " << listed);
        INFO("values: " << detail_);
        std::string versions;
        if (!diff.empty()) {
            for (int side = 0; side < 2; ++side) {
                auto conn = scratch.admin(side);
                const auto r = conn.exec(
                    "SELECT key::text, columns::text, local_row_writes, seen_remote_row_writes "
                    "FROM pgbridge.row_versions WHERE key::text = $1",
                    {"[" + diff.front().second.substr(0, diff.front().second.find(':')) + "]"});
                for (int i = 0; i < r.rows(); ++i) {
                    versions += fmt::format("side {} {} {} {} {}\n", side, r.value(i, 0),
                                            r.value(i, 1), r.value(i, 2), r.value(i, 3));
                }
                const auto c = conn.exec(
                    "SELECT kind, columns::text, local_values::text, remote_values::text, "
                    "strategy, winner, remote_lsn::text FROM pgbridge.conflicts WHERE key ->> 'id' "
                    "= $1",
                    {diff.front().second.substr(0, diff.front().second.find(':'))});
                for (int i = 0; i < c.rows(); ++i) {
                    versions +=
                        fmt::format("conflict on {}: {} {} {} {} {} {} {}\n", side, c.value(i, 0),
                                    c.value(i, 1), c.value(i, 2), c.value(i, 3), c.value(i, 4),
                                    c.value(i, 5), c.value(i, 6));
                }
            }
        }
        INFO("versions: " << versions);
        INFO("daemon log, last lines: " << (daemon ? daemon->output_tail(150) : std::string()));
        if (!manual) {
            CHECK(agreed);
            CHECK(diff.empty());
        } else {
            const auto pending = pending_columns();
            for (const auto& d : diff) {
                CAPTURE(d.second);
                CHECK(pending.contains(d));
            }
        }
        // No committed change lost: every ledger row written on one side is on the other.
        auto a = scratch.admin(0);
        auto b = scratch.admin(1);
        for (int side = 0; side < 2; ++side) {
            auto& other = side == 0 ? b : a;
            const Rows there = all_rows(other, "public.ledger", {"id", "written_on"});
            std::size_t missing = 0;
            for (const auto& id : ledgers[static_cast<std::size_t>(side)]) {
                missing += there.contains(id) ? 0 : 1;
            }
            CAPTURE(side);
            CHECK(missing == 0);
            CHECK(!ledgers[static_cast<std::size_t>(side)].empty());
        }
        CHECK(eventually([&] { return settled(); }, std::chrono::seconds(60)));
        // pgbridge verify agrees: no drift (under manual, the differences are the pending
        // conflicts, which it lists apart).
        const auto [code, report] = pgbridge_json("verify");
        INFO(report.dump());
        CHECK(code == 0);
        CHECK(report.value("identical", false));
        for (const auto& t : report["tables"]) {
            CHECK(t["differences"].empty());
            if (!manual) {
                CHECK(t["pending_conflicts"].empty());
            }
        }
    }

    // pgbridge --json COMMAND args...: the exit code and the parsed output (discarded when
    // it is not JSON; the error output goes into the test's log on failure).
    std::pair<int, nlohmann::json> pgbridge_json(const std::string& command,
                                                 const std::vector<std::string>& args = {}) const {
        std::vector<std::string> argv{"--json", command};
        argv.insert(argv.end(), args.begin(), args.end());
        const CommandResult r = scratch.pgbridge(argv);
        INFO(command << " stderr: " << r.err);
        auto doc = nlohmann::json::parse(r.out, nullptr, false);
        CHECK_FALSE(doc.is_discarded());
        return {r.exit_code, doc};
    }

    // (table as side a names it, "key:column") of every pending conflict on either side.
    std::set<std::pair<std::string, std::string>> pending_columns() const {
        std::set<std::pair<std::string, std::string>> out;
        for (int side = 0; side < 2; ++side) {
            auto conn = scratch.admin(side);
            const auto r = conn.exec(
                "SELECT table_name, key ->> 'id', c FROM pgbridge.conflicts, unnest(columns) c"
                " WHERE status = 'pending'");
            for (int i = 0; i < r.rows(); ++i) {
                std::string table(r.value(i, 0));
                std::string column(r.value(i, 2));
                if (table == "hr.candidates") {
                    table = "public.talents";
                }
                if (column == "contact_email") {
                    column = "email";
                }
                out.emplace(table, std::string(r.value(i, 1)) + ":" + column);
            }
        }
        return out;
    }

    long conflicts() const {
        long n = 0;
        for (int side = 0; side < 2; ++side) {
            auto conn = scratch.admin(side);
            n += std::stol(
                std::string(conn.exec("SELECT count(*) FROM pgbridge.conflicts").value(0, 0)));
        }
        return n;
    }

    ScratchBridge scratch;
    std::unique_ptr<DaemonProcess> daemon;
    mutable std::string detail_;  // values of the last differences() found, for failures

  private:
    int starts_ = 0;
};

// Rewrites the bridge's config file: the first `from` becomes `to`.
inline void rewrite_config(const ScratchBridge& scratch, const std::string& from,
                           const std::string& to) {
    std::ifstream in(scratch.config_path());
    std::stringstream text;
    text << in.rdbuf();
    std::string config = text.str();
    const auto at = config.find(from);
    REQUIRE(at != std::string::npos);
    config.replace(at, from.size(), to);
    std::ofstream(scratch.config_path()) << config;
}

// The body of GET path on 127.0.0.1:port, or empty when nothing answers.
inline std::string http_get(int port, const std::string& path) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string response;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
        const std::string request = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
        if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
            char buffer[8192];
            ssize_t n = 0;
            while ((n = ::read(fd, buffer, sizeof buffer)) > 0) {
                response.append(buffer, static_cast<std::size_t>(n));
            }
        }
    }
    ::close(fd);
    const auto body = response.find("\r\n\r\n");
    return body == std::string::npos ? "" : response.substr(body + 4);
}

// The value of the sample whose line starts with `series` (name and labels as exposed).
inline std::optional<double> sample(const std::string& exposition, const std::string& series) {
    std::istringstream lines(exposition);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.starts_with(series + " ")) {
            return std::stod(line.substr(series.size() + 1));
        }
    }
    return std::nullopt;
}

// Replaces the [rabbitmq] url line of a scratch bridge's file (before setup): other nodes,
// queue types.
inline void rewrite_rabbitmq_url(ScratchBridge& scratch, const std::string& lines) {
    std::ifstream in(scratch.config_path());
    std::stringstream text;
    text << in.rdbuf();
    std::string config = text.str();
    const auto start = config.find("\nurl = ");
    REQUIRE(start != std::string::npos);
    const auto end = config.find('\n', start + 1);
    config.replace(start + 1, end - start - 1, lines);
    std::ofstream(scratch.config_path(), std::ios::trunc) << config;
}

inline int soak_seconds(int fallback) {
    const char* text = std::getenv("PGBRIDGE_SOAK_SECONDS");
    return text != nullptr ? std::max(1, std::atoi(text)) : fallback;
}

inline std::string testenv_script() {
    const char* path = std::getenv("PGBRIDGE_TESTENV");
    REQUIRE(path != nullptr);
    return path;
}

// A fault for run_workload: RabbitMQ stopped, down for two seconds, started again.
inline void restart_rabbitmq() {
    auto stopped = run_command({testenv_script(), "rabbitmq-stop"}, std::chrono::seconds(60));
    REQUIRE(stopped.exit_code == 0);
    std::this_thread::sleep_for(std::chrono::seconds(2));  // the outage itself
    auto started = run_command({testenv_script(), "rabbitmq-start"}, std::chrono::seconds(120));
    REQUIRE(started.exit_code == 0);
}

// Runs the workload on both sides for `seconds`, calling `fault` half-way, then stops writing,
// checks convergence and the ledgers.
inline void run_workload(BridgeRun& run, int seconds, bool manual,
                         const std::function<void()>& fault = {}) {
    // The hot rows, on both sides before the workload starts.
    run.scratch.admin(0).exec(
        fmt::format("INSERT INTO public.talents SELECT g, 'hot', 'hot@x', NULL, 'new', 0 "
                    "FROM generate_series(1, {}) g",
                    kHotKeys));
    REQUIRE(eventually([&] { return run.differences().empty(); }));
    std::atomic<long> next_key{kHotKeys + 1};
    std::vector<std::unique_ptr<Workload>> writers;
    for (int side = 0; side < 2; ++side) {
        writers.push_back(std::make_unique<Workload>(
            run.scratch, side, 150, static_cast<unsigned>(side + 17 * seconds), next_key));
    }
    std::this_thread::sleep_for(std::chrono::seconds(seconds / 2));  // the workload's duration
    if (fault) {
        fault();
    }
    std::this_thread::sleep_for(std::chrono::seconds(seconds - seconds / 2));
    std::vector<std::set<std::string>> ledgers;
    for (auto& w : writers) {
        w->stop();
        CHECK(w->failure().empty());
        CHECK(w->transactions() > seconds * 50);
        ledgers.push_back(w->ledger());
    }
    // The last writes are certainly concurrent: both sides update the hot rows while each
    // holds them locked, so neither can have applied the other's before writing; the final
    // state then rests on the conflict rules alone.
    auto a = run.scratch.admin(0);
    auto b = run.scratch.admin(1);
    a.exec("BEGIN");
    b.exec("BEGIN");
    a.exec(
        "UPDATE public.talents SET status = 'last a', email = 'last@a', phone = 'pa' WHERE id <= "
        "$1",
        {std::to_string(kHotKeys)});
    b.exec(
        "UPDATE hr.candidates SET status = 'last b', contact_email = 'last@b', score = -1 "
        "WHERE id <= $1",
        {std::to_string(kHotKeys)});
    a.exec("COMMIT");
    b.exec("COMMIT");
    run.check_converged(ledgers, manual);
}

}  // namespace pgbridge::test
