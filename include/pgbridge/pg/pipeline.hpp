#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <pgbridge/pg/connection.hpp>

namespace pgbridge::pg {

// libpq pipeline mode on one connection: statements are queued without waiting for their
// results, and sync() sends them in one go and reads every result back, so a batch of N
// statements costs one round trip instead of N. Inside an explicit transaction (BEGIN sent
// first) a sync does not commit; it only marks where results are read.
//
// A failed statement makes the server skip the rest up to the sync; sync() then throws the
// failure as Error(Database) with the SQLSTATE and, in context "statement_index", the index
// (counting from 0 since the pipeline began) of the statement that failed, so the caller can
// name the change it belonged to.
class Pipeline {
  public:
    explicit Pipeline(Connection& connection);  // enters pipeline mode
    ~Pipeline();                                // leaves it, discarding unread results
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    // Queues a statement; returns its index.
    std::size_t send(std::string_view sql, const Params& params = {});
    // Queues a statement prepared earlier on this connection under `name`.
    std::size_t send_prepared(const std::string& name, const Params& params);
    // Queues PREPARE name AS sql (parameter types inferred by the server).
    std::size_t prepare(const std::string& name, std::string_view sql);

    // Sends what is queued and returns the results of every statement queued since the last
    // sync, in order.
    std::vector<Result> sync();

    std::size_t queued() const { return queued_.size(); }

  private:
    void check_sent(int ok, std::string_view what);
    void drain() noexcept;

    Connection& connection_;
    std::vector<std::string> queued_;  // statement summaries, for error messages
    std::size_t first_index_ = 0;      // index of queued_[0]
    bool broken_ = false;
};

}  // namespace pgbridge::pg
