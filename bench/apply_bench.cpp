// Applies a slot's backlog on the other side through pgbridge's capture and the Postgres
// applier (conflict resolution, column versions, origin, pipelined writes), in batches of
// engine.batch_size changes, up to a given LSN; reports transactions/s and peak memory.
// Run by bench/apply-backlog.sh next to PostgreSQL's native logical replication.
//
//   apply_bench CONFIG SOURCE_SIDE UNTIL_LSN

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <mutex>
#include <sys/resource.h>
#include <thread>

#include <fmt/format.h>

#include <pgbridge/apply/postgres_applier.hpp>
#include <pgbridge/config/config.hpp>
#include <pgbridge/config/conflict_rules.hpp>
#include <pgbridge/config/object_names.hpp>
#include <pgbridge/config/side_connection.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/source/capture.hpp>

using namespace pgbridge;

namespace {

// Hands the capture's transactions, a batch at a time, to an apply thread through a short
// queue, as the daemon's consumer does (capture and apply run side by side); a batch is
// durable once the applier has committed it.
class ApplyingSink final : public source::TransactionSink {
  public:
    ApplyingSink(apply::PostgresApplier& applier, std::string bridge, std::string side,
                 std::size_t batch_size, Lsn until, source::Capture*& capture)
        : applier_(applier),
          bridge_(std::move(bridge)),
          side_(std::move(side)),
          until_(until),
          batch_size_(batch_size),
          capture_(capture),
          worker_([this] { apply_loop(); }) {}
    ~ApplyingSink() override {
        {
            std::lock_guard lock(mutex_);
            closing_ = true;
        }
        changed_.notify_all();
        worker_.join();
    }

    void deliver(SourceTransaction txn) override {
        changes_ += txn.changes.size();
        pending_changes_ += txn.changes.size();
        pending_.push_back(std::move(txn));
        if (pending_changes_ >= batch_size_) {
            flush();
        }
    }
    void flush() override {
        if (pending_.empty()) {
            return;
        }
        transport::ChangeBatch batch;
        batch.bridge = bridge_;
        batch.source_side = side_;
        batch.transactions = std::move(pending_);
        pending_.clear();
        pending_changes_ = 0;
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return queue_.size() < kQueueDepth || !failure_.empty(); });
        if (!failure_.empty()) {
            throw Error(ErrorKind::Database, failure_);
        }
        queue_.push_back(std::move(batch));
        changed_.notify_all();
    }
    Lsn durable_lsn() override {
        std::lock_guard lock(mutex_);
        return durable_;
    }

    std::atomic<std::uint64_t> transactions_{0};
    std::uint64_t changes_ = 0;

  private:
    void apply_loop() {
        for (;;) {
            transport::ChangeBatch batch;
            {
                std::unique_lock lock(mutex_);
                changed_.wait(lock, [&] { return !queue_.empty() || closing_; });
                if (queue_.empty()) {
                    return;
                }
                batch = std::move(queue_.front());
                queue_.pop_front();
                changed_.notify_all();
            }
            try {
                applier_.apply(batch);
            } catch (const std::exception& e) {
                std::lock_guard lock(mutex_);
                failure_ = e.what();
                changed_.notify_all();
                if (capture_ != nullptr) {
                    capture_->stop();
                }
                return;
            }
            std::lock_guard lock(mutex_);
            transactions_ += batch.transactions.size();
            durable_ = batch.last_end_lsn();
            if (durable_ >= until_ && capture_ != nullptr) {
                capture_->stop();
            }
        }
    }

    static constexpr std::size_t kQueueDepth = 8;
    apply::PostgresApplier& applier_;
    std::string bridge_;
    std::string side_;
    std::vector<SourceTransaction> pending_;
    std::size_t pending_changes_ = 0;
    Lsn until_;
    std::size_t batch_size_;
    source::Capture*& capture_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<transport::ChangeBatch> queue_;
    Lsn durable_;
    bool closing_ = false;
    std::string failure_;
    std::thread worker_;

  public:
    std::string failure() {
        std::lock_guard lock(mutex_);
        return failure_;
    }
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::cerr << "usage: apply_bench CONFIG SOURCE_SIDE UNTIL_LSN\n";
        return 2;
    }
    try {
        const Config config = load_config(argv[1]);
        const SideConfig& source = config.side(argv[2]);
        const SideConfig& target = config.other_side(source.name);
        const auto until = Lsn::parse(argv[3]);
        if (!until) {
            std::cerr << "UNTIL_LSN must look like 0/16B3748\n";
            return 2;
        }
        apply::ApplierOptions a;
        a.bridge = config.bridge_name;
        a.source_side = source.name;
        a.target_side = target.name;
        a.target = side_connect_options(target, config.engine.timeout_ms, "apply_bench");
        a.tables = config.tables;
        apply::PostgresApplier applier(a, ConflictRules(config));

        source::CaptureOptions c;
        c.side = source.name;
        c.connect = side_connect_options(source, config.engine.timeout_ms, "apply_bench");
        c.slot = names::slot(config.bridge_name, source.name);
        c.publication = names::publication(config.bridge_name);
        c.retry = false;
        source::Capture* capture_ptr = nullptr;
        ApplyingSink sink(applier, config.bridge_name, source.name,
                          static_cast<std::size_t>(config.engine.batch_size), *until, capture_ptr);
        source::Capture capture(c, sink);
        capture_ptr = &capture;
        const auto start = std::chrono::steady_clock::now();
        capture.run();
        if (!sink.failure().empty()) {
            std::cerr << "apply_bench: " << sink.failure() << '\n';
            return 1;
        }
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        rusage usage{};
        getrusage(RUSAGE_SELF, &usage);
        std::cout << fmt::format(
            "pgbridge apply: {} transactions ({} changes) in {:.2f} s: {:.0f} transactions/s, "
            "{} inserted, {} updated, {} deleted, {} skipped, {} conflicts; peak RSS {:.1f} MB\n",
            sink.transactions_.load(), sink.changes_, seconds,
            static_cast<double>(sink.transactions_.load()) / seconds,
            applier.stats().inserted.load(), applier.stats().updated.load(),
            applier.stats().deleted.load(), applier.stats().skipped.load(),
            applier.stats().conflicts.load(), static_cast<double>(usage.ru_maxrss) / 1024.0);
    } catch (const Error& e) {
        std::cerr << "apply_bench: " << e.what() << '\n';
        return 1;
    }
    return 0;
}
