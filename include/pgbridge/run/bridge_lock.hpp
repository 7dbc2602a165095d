#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <pgbridge/config/config.hpp>
#include <pgbridge/pg/connection.hpp>

namespace pgbridge::run {

// Which process holds a bridge's lock on a side, as that side's server shows it.
struct LockHolder {
    std::string side;
    std::string host;   // as the holder named itself; else its client address
    std::string pid;    // the holder's own process id, where it named itself
    std::string since;  // when its lock session began (server time)

    std::string describe() const;
};

// One `pgbridge run` per bridge: a session-level advisory lock on both sides, held for the
// life of the process. Two daemons of one bridge would both consume and both apply; the
// second must stop before it declares, copies or writes anything. The lock lives on the
// servers the bridge writes to, so it holds across hosts; RabbitMQ's single active consumer
// on the queues (transport/topology) is the second guard, for the moments a side is away.
class BridgeLock {
  public:
    // The advisory lock key pair of a bridge: a constant class and a hash of the name.
    static std::pair<std::int32_t, std::int32_t> key_of(const std::string& bridge);

    BridgeLock(const Config& config, int timeout_ms);
    ~BridgeLock();
    BridgeLock(const BridgeLock&) = delete;
    BridgeLock& operator=(const BridgeLock&) = delete;

    // Takes the lock on every side, waiting (with backoff, until stop is requested) for a
    // side that cannot be reached. Returns the holder when another process has it on a side
    // (no lock is kept then); nullopt once every side is held, or when stopped.
    std::optional<LockHolder> acquire(std::stop_token stop);

    // Watches the lock sessions on a thread from now on (after acquire()): a session that drops is
    // reopened and the lock taken again; if another process took it meanwhile, lost() says who.
    void watch(std::chrono::milliseconds interval);
    std::optional<std::string> lost() const;

  private:
    struct SideLock {
        std::string side;
        pg::ConnectOptions connect;
        std::optional<pg::Connection> session;
    };

    // Opens a session and tries the lock: nullopt when taken, else who holds it.
    std::optional<LockHolder> try_side(SideLock& s);
    void check_all();

    std::string bridge_;
    std::pair<std::int32_t, std::int32_t> key_;
    std::vector<SideLock> sides_;
    mutable std::mutex mutex_;
    std::optional<std::string> lost_;
    std::jthread watcher_;
};

}  // namespace pgbridge::run
