// Decodes a slot's backlog through pgbridge's capture (walsender, pgoutput decoder,
// transaction assembly) into a sink that only counts, up to a given LSN, and reports
// changes/s and peak memory. Run by bench/capture-backlog.sh next to pg_recvlogical.
//
//   capture_bench CONNINFO SLOT PUBLICATION UNTIL_LSN

#include <chrono>
#include <iostream>
#include <sys/resource.h>

#include <fmt/format.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/source/capture.hpp>

using namespace pgbridge;

namespace {

class CountingSink final : public source::TransactionSink {
  public:
    CountingSink(Lsn until, source::Capture*& capture) : until_(until), capture_(capture) {}

    void deliver(SourceTransaction txn) override {
        ++transactions_;
        changes_ += txn.changes.size();
        durable_ = txn.end_lsn;
        if (txn.end_lsn >= until_ && capture_ != nullptr) {
            capture_->stop();
        }
    }
    Lsn durable_lsn() override { return durable_; }

    std::uint64_t transactions_ = 0;
    std::uint64_t changes_ = 0;

  private:
    Lsn until_;
    Lsn durable_;
    source::Capture*& capture_;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::cerr << "usage: capture_bench CONNINFO SLOT PUBLICATION UNTIL_LSN\n";
        return 2;
    }
    const auto until = Lsn::parse(argv[4]);
    if (!until) {
        std::cerr << "UNTIL_LSN must look like 0/16B3748\n";
        return 2;
    }
    source::CaptureOptions options;
    options.side = "bench";
    options.connect.conninfo = argv[1];
    options.connect.side = "bench";
    options.slot = argv[2];
    options.publication = argv[3];
    options.retry = false;
    source::Capture* capture_ptr = nullptr;
    CountingSink sink(*until, capture_ptr);
    source::Capture capture(options, sink);
    capture_ptr = &capture;
    const auto start = std::chrono::steady_clock::now();
    try {
        capture.run();
    } catch (const Error& e) {
        std::cerr << "capture_bench: " << e.what() << '\n';
        return 1;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    std::cout << fmt::format(
        "pgbridge capture: {} changes in {} transactions, {:.2f} s, {:.0f} changes/s, peak RSS "
        "{:.1f} MB\n",
        sink.changes_, sink.transactions_, seconds, static_cast<double>(sink.changes_) / seconds,
        static_cast<double>(usage.ru_maxrss) / 1024.0);
    return 0;
}
