#include <libpq-fe.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/pg/pipeline.hpp>

namespace pgbridge::pg {
namespace {

std::vector<const char*> param_pointers(const Params& params) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) {
        values.push_back(p ? p->c_str() : nullptr);
    }
    return values;
}

bool succeeded(ExecStatusType status) {
    return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

}  // namespace

Pipeline::Pipeline(Connection& connection) : connection_(connection) {
    if (PQenterPipelineMode(connection_.native()) != 1) {
        throw connection_.error_for(nullptr, "enter pipeline mode");
    }
}

Pipeline::~Pipeline() {
    drain();
    PQexitPipelineMode(connection_.native());
}

void Pipeline::check_sent(int ok, std::string_view what) {
    if (ok != 1) {
        broken_ = true;
        throw connection_.error_for(nullptr, what);
    }
}

std::size_t Pipeline::send(std::string_view sql, const Params& params) {
    const std::string text(sql);
    const auto values = param_pointers(params);
    check_sent(
        PQsendQueryParams(connection_.native(), text.c_str(), static_cast<int>(values.size()),
                          nullptr, values.data(), nullptr, nullptr, 0),
        sql);
    queued_.push_back(statement_summary(sql));
    return first_index_ + queued_.size() - 1;
}

std::size_t Pipeline::send_prepared(const std::string& name, const Params& params) {
    const auto values = param_pointers(params);
    check_sent(
        PQsendQueryPrepared(connection_.native(), name.c_str(), static_cast<int>(values.size()),
                            values.data(), nullptr, nullptr, 0),
        name);
    queued_.push_back("EXECUTE " + name);
    return first_index_ + queued_.size() - 1;
}

std::size_t Pipeline::prepare(const std::string& name, std::string_view sql) {
    const std::string text(sql);
    check_sent(PQsendPrepare(connection_.native(), name.c_str(), text.c_str(), 0, nullptr), sql);
    queued_.push_back("PREPARE " + name + ": " + statement_summary(sql));
    return first_index_ + queued_.size() - 1;
}

std::vector<Result> Pipeline::sync() {
    PGconn* conn = connection_.native();
    check_sent(PQpipelineSync(conn), "pipeline sync");
    std::vector<Result> results;
    results.reserve(queued_.size());
    std::optional<Error> failure;
    // Every statement answers with its result followed by a null; the sync answers with
    // PGRES_PIPELINE_SYNC. A statement after a failed one answers PGRES_PIPELINE_ABORTED.
    for (std::size_t i = 0; i < queued_.size(); ++i) {
        PGresult* raw = PQgetResult(conn);
        if (raw == nullptr) {
            broken_ = true;
            throw connection_.error_for(nullptr, queued_[i]);
        }
        const ExecStatusType status = PQresultStatus(raw);
        if (!succeeded(status) && status != PGRES_PIPELINE_ABORTED && !failure) {
            failure = connection_.error_for(raw, queued_[i]);
            failure->with("statement_index", std::to_string(first_index_ + i));
        }
        results.emplace_back(raw);
        // The null that ends this statement's results.
        if (PGresult* end = PQgetResult(conn); end != nullptr) {
            PQclear(end);
            broken_ = true;
            throw Error(ErrorKind::Protocol, "more than one result for a pipelined statement")
                .with("side", connection_.side())
                .with("statement", queued_[i]);
        }
    }
    PGresult* sync = PQgetResult(conn);
    const bool synced = sync != nullptr && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
    first_index_ += queued_.size();
    queued_.clear();
    if (!synced) {
        broken_ = true;
        throw connection_.error_for(nullptr, "pipeline sync");
    }
    if (failure) {
        throw std::move(*failure);
    }
    return results;
}

void Pipeline::drain() noexcept {
    if (broken_ || queued_.empty()) {
        return;
    }
    PGconn* conn = connection_.native();
    if (PQpipelineSync(conn) != 1) {
        return;
    }
    for (;;) {
        PGresult* raw = PQgetResult(conn);
        if (raw == nullptr) {
            if (PQstatus(conn) != CONNECTION_OK) {
                return;
            }
            continue;
        }
        const bool done = PQresultStatus(raw) == PGRES_PIPELINE_SYNC;
        PQclear(raw);
        if (done) {
            return;
        }
    }
}

}  // namespace pgbridge::pg
