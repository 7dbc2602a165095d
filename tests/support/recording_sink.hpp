#pragma once

// A TransactionSink for tests: records what the capture delivers and lets the test decide
// what is durable (or declare everything durable at once), and fail on demand.

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <pgbridge/core/error.hpp>
#include <pgbridge/source/capture.hpp>

namespace pgbridge::test {

class RecordingSink final : public source::TransactionSink {
  public:
    explicit RecordingSink(bool auto_durable) : auto_durable_(auto_durable) {}

    void deliver(SourceTransaction txn) override {
        std::lock_guard lock(mutex_);
        if (fail_next_ > 0) {
            --fail_next_;
            throw Error(ErrorKind::Broker, "test sink refuses this delivery");
        }
        if (auto_durable_) {
            durable_ = std::max(durable_, txn.end_lsn);
        }
        delivered_.push_back(std::move(txn));
        changed_.notify_all();
    }

    Lsn durable_lsn() override {
        std::lock_guard lock(mutex_);
        return durable_;
    }

    void rewind(Lsn from) override {
        std::lock_guard lock(mutex_);
        rewound_to_.push_back(from);
    }

    void set_durable(Lsn lsn) {
        std::lock_guard lock(mutex_);
        durable_ = std::max(durable_, lsn);
    }
    void fail_next(int count) {
        std::lock_guard lock(mutex_);
        fail_next_ = count;
    }

    std::vector<SourceTransaction> delivered() const {
        std::lock_guard lock(mutex_);
        return delivered_;
    }
    std::size_t count() const {
        std::lock_guard lock(mutex_);
        return delivered_.size();
    }
    std::size_t change_count() const {
        std::lock_guard lock(mutex_);
        std::size_t n = 0;
        for (const auto& t : delivered_) {
            n += t.changes.size();
        }
        return n;
    }
    std::vector<Lsn> rewinds() const {
        std::lock_guard lock(mutex_);
        return rewound_to_;
    }

  private:
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    bool auto_durable_;
    int fail_next_ = 0;
    Lsn durable_;
    std::vector<SourceTransaction> delivered_;
    std::vector<Lsn> rewound_to_;
};

// Runs something with run() and stop() (a Capture, a Consumer) on its own thread for the life
// of the object, keeping what it threw.
template <typename Runner>
class RunnerThread {
  public:
    template <typename... Args>
    explicit RunnerThread(Args&&... args)
        : runner_(std::forward<Args>(args)...), thread_([this] {
              try {
                  runner_.run();
              } catch (const std::exception& e) {
                  std::lock_guard lock(mutex_);
                  failure_ = e.what();
              }
          }) {}
    ~RunnerThread() { stop(); }

    void stop() {
        runner_.stop();
        if (thread_.joinable()) {
            thread_.join();
        }
    }
    const auto& stats() const { return runner_.stats(); }
    std::string failure() const {
        std::lock_guard lock(mutex_);
        return failure_;
    }

  private:
    Runner runner_;
    mutable std::mutex mutex_;
    std::string failure_;
    std::thread thread_;
};

using CaptureThread = RunnerThread<source::Capture>;

}  // namespace pgbridge::test
