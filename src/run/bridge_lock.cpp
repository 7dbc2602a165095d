#include <condition_variable>
#include <unistd.h>

#include <fmt/format.h>

#include <pgbridge/config/side_connection.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/error_policy.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/run/bridge_lock.hpp>

namespace pgbridge::run {
namespace {

// 'pgbr': the class of pgbridge's advisory locks, so they do not meet an application's.
constexpr std::int32_t kLockClass = 0x70676272;
// The lock session names itself so that a second daemon can say who runs (pg_stat_activity
// shows a session's application_name to its own role). The pid comes first: a long host
// name is cut at NAMEDATALEN.
constexpr std::string_view kSessionPrefix = "pgbridge run lock pid=";

std::string this_host() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0) {
        return "unknown";
    }
    return name;
}

std::string session_name() {
    return fmt::format("{}{} host={}", kSessionPrefix, ::getpid(), this_host()).substr(0, 63);
}

LockHolder holder_from(std::string side, std::string_view application_name, std::string_view client,
                       std::string_view since) {
    LockHolder h;
    h.side = std::move(side);
    h.since = since;
    h.host = client;
    if (application_name.starts_with(kSessionPrefix)) {
        std::string_view rest = application_name.substr(kSessionPrefix.size());
        const auto space = rest.find(' ');
        h.pid = rest.substr(0, space);
        if (space != std::string_view::npos && rest.substr(space + 1).starts_with("host=")) {
            h.host = rest.substr(space + 1 + 5);
        }
    }
    return h;
}

}  // namespace

std::string LockHolder::describe() const {
    return fmt::format("host {}, pid {}, since {} (its lock on side {})",
                       host.empty() ? "unknown" : host, pid.empty() ? "unknown" : pid,
                       since.empty() ? "unknown" : since, side);
}

std::pair<std::int32_t, std::int32_t> BridgeLock::key_of(const std::string& bridge) {
    // FNV-1a: stable across versions and hosts, unlike std::hash.
    std::uint32_t hash = 2166136261u;
    for (const unsigned char c : bridge) {
        hash = (hash ^ c) * 16777619u;
    }
    return {kLockClass, static_cast<std::int32_t>(hash & 0x7fffffffu)};
}

BridgeLock::BridgeLock(const Config& config, int timeout_ms)
    : bridge_(config.bridge_name), key_(key_of(config.bridge_name)) {
    for (const auto& side : config.sides) {
        sides_.push_back(SideLock{side.name, side_connect_options(side, timeout_ms, session_name()),
                                  std::nullopt});
    }
}

BridgeLock::~BridgeLock() {
    watcher_ = {};  // stops and joins before the sessions close
}

std::optional<LockHolder> BridgeLock::try_side(SideLock& s) {
    if (!s.session) {
        s.session.emplace(pg::Connection::open(s.connect));
    }
    const pg::Params key{std::to_string(key_.first), std::to_string(key_.second)};
    for (int attempt = 0; attempt < 3; ++attempt) {
        if (s.session->exec("SELECT pg_try_advisory_lock($1::int, $2::int)", key).value(0, 0) ==
            "t") {
            return std::nullopt;
        }
        const auto holder = s.session->exec(
            "SELECT a.application_name, coalesce(host(a.client_addr), 'a local socket'),"
            "       to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'"
            "  FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
            "   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            "   AND l.classid = $1::int::oid AND l.objid = $2::int::oid",
            key);
        if (holder.rows() > 0) {
            return holder_from(s.side, holder.value(0, 0), holder.value(0, 1), holder.value(0, 2));
        }
        // Released between the two statements: try again.
    }
    return LockHolder{s.side, "", "", ""};
}

std::optional<LockHolder> BridgeLock::acquire(std::stop_token stop) {
    std::mutex wait_mutex;
    std::condition_variable_any wake;
    auto backoff = std::chrono::milliseconds(500);
    // A predecessor killed a moment ago still holds the lock until its server notices the
    // closed connection: a holder must stay for this long to count.
    constexpr auto kGrace = std::chrono::seconds(3);
    std::optional<std::chrono::steady_clock::time_point> held_since;
    std::size_t held = 0;
    while (held < sides_.size() && !stop.stop_requested()) {
        SideLock& s = sides_[held];
        try {
            if (auto holder = try_side(s)) {
                const auto now = std::chrono::steady_clock::now();
                if (!held_since) {
                    held_since = now;
                }
                if (now - *held_since < kGrace) {
                    std::unique_lock lock(wait_mutex);
                    wake.wait_for(lock, stop, std::chrono::milliseconds(250), [] { return false; });
                    continue;
                }
                for (auto& other : sides_) {
                    other.session.reset();  // closing a session releases its lock
                }
                return holder;
            }
            held_since.reset();
            ++held;
            backoff = std::chrono::milliseconds(500);
            continue;
        } catch (const Error& e) {
            s.session.reset();
            if (classify_session_failure(e) != FailureAction::Reconnect) {
                throw;
            }
            log::warning("run", "cannot take the bridge lock on a side yet; waiting for it",
                         {{"side", s.side},
                          {"retry_in_ms", std::to_string(backoff.count())},
                          {"error", e.what()}});
        }
        std::unique_lock lock(wait_mutex);
        wake.wait_for(lock, stop, backoff, [] { return false; });
        backoff = std::min(backoff * 2, std::chrono::milliseconds(10000));
    }
    return std::nullopt;
}

void BridgeLock::check_all() {
    for (auto& s : sides_) {
        try {
            if (s.session) {
                s.session->exec("SELECT 1");
                continue;
            }
            if (auto holder = try_side(s)) {
                s.session.reset();
                std::lock_guard lock(mutex_);
                lost_ = fmt::format(
                    "the bridge lock of {} on side {} was lost while the side was away, and "
                    "another pgbridge run took it: {}",
                    bridge_, s.side, holder->describe());
                return;
            }
            log::info("run", "bridge lock taken again", {{"side", s.side}});
        } catch (const Error& e) {
            if (s.session) {
                log::warning("run", "the session holding the bridge lock was lost; retaking it",
                             {{"side", s.side}, {"error", e.what()}});
            }
            s.session.reset();
        }
    }
}

void BridgeLock::watch(std::chrono::milliseconds interval) {
    watcher_ = std::jthread([this, interval](std::stop_token stop) {
        std::mutex wait_mutex;
        std::condition_variable_any wake;
        while (!stop.stop_requested()) {
            std::unique_lock lock(wait_mutex);
            if (wake.wait_for(lock, stop, interval, [] { return false; }) ||
                stop.stop_requested()) {
                return;
            }
            lock.unlock();
            check_all();
            if (lost()) {
                return;
            }
        }
    });
}

std::optional<std::string> BridgeLock::lost() const {
    std::lock_guard lock(mutex_);
    return lost_;
}

}  // namespace pgbridge::run
