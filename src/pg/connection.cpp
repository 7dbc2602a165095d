#include <libpq-fe.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/core/sqlstate.hpp>
#include <pgbridge/pg/connection.hpp>
#include <pgbridge/pg/conninfo.hpp>

namespace pgbridge::pg {
namespace {
constexpr std::string_view kSessionOptions =
    "-c DateStyle=ISO,YMD -c IntervalStyle=postgres -c TimeZone=UTC -c extra_float_digits=1 "
    "-c bytea_output=hex";
}  // namespace

std::string statement_summary(std::string_view sql) {
    const std::size_t start = sql.find_first_not_of(" \t\r\n");
    sql.remove_prefix(start == std::string_view::npos ? sql.size() : start);
    std::string_view first = sql.substr(0, sql.find('\n'));
    constexpr std::size_t kMax = 80;
    return std::string(first.substr(0, kMax)) + (first.size() > kMax ? "..." : "");
}

std::string trimmed_message(const char* text) {
    std::string out = text != nullptr ? text : "";
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
        out.pop_back();
    }
    return out;
}

Result::Result(pg_result* result) : result_(result, &PQclear) {}

int Result::rows() const {
    return PQntuples(result_.get());
}
int Result::columns() const {
    return PQnfields(result_.get());
}
bool Result::is_null(int row, int column) const {
    return PQgetisnull(result_.get(), row, column) != 0;
}
std::string_view Result::value(int row, int column) const {
    return {PQgetvalue(result_.get(), row, column),
            static_cast<std::size_t>(PQgetlength(result_.get(), row, column))};
}
std::optional<std::string> Result::optional_value(int row, int column) const {
    if (is_null(row, column)) {
        return std::nullopt;
    }
    return std::string(value(row, column));
}
std::string_view Result::value(int row, std::string_view column_name) const {
    const int column = PQfnumber(result_.get(), std::string(column_name).c_str());
    if (column < 0) {
        throw Error(ErrorKind::Internal, "query result has no such column")
            .with("column", std::string(column_name));
    }
    return value(row, column);
}
long long Result::affected_rows() const {
    const char* text = PQcmdTuples(result_.get());
    return text != nullptr && *text != '\0' ? std::stoll(text) : 0;
}

void Connection::Closer::operator()(pg_conn* conn) const noexcept {
    PQfinish(conn);
}

Connection::Connection(pg_conn* conn, std::string side) : conn_(conn), side_(std::move(side)) {}
Connection::~Connection() = default;

std::optional<std::string_view> connect_failure_sqlstate(std::string_view message) {
    // libpq keeps the SQLSTATE of a refused startup to itself; its message (the server's
    // lc_messages, English by default) is all there is. Unknown text stays unknown, which the
    // error policy treats as a connection that may come back.
    const auto has = [&](std::string_view text) {
        return message.find(text) != std::string_view::npos;
    };
    if (has("password authentication failed")) {
        return sqlstate::kInvalidPassword;
    }
    if (has("no pg_hba.conf entry") || has("pg_hba.conf rejects") ||
        (has("role \"") && has("does not exist"))) {
        return sqlstate::kInvalidAuthorization;
    }
    if (has("database \"") && has("does not exist")) {
        return sqlstate::kInvalidCatalogName;
    }
    if (has("the database system is")) {  // starting up, shutting down, in recovery mode
        return sqlstate::kCannotConnectNow;
    }
    if (has("too many clients") || has("connection slots are reserved")) {
        return sqlstate::kTooManyConnections;
    }
    return std::nullopt;
}

Connection Connection::open(const ConnectOptions& options) {
    std::string parse_error;
    auto parts = ConninfoParts::parse(options.conninfo, &parse_error);
    if (!parts) {
        throw Error(ErrorKind::Database, "invalid conninfo: " + parse_error)
            .with("side", options.side);
    }
    // dbname comes first so that the keywords after it override what the conninfo says.
    std::vector<const char*> keys{"dbname", "application_name"};
    std::vector<const char*> values{options.conninfo.c_str(), options.application_name.c_str()};
    if (!options.password.empty()) {
        keys.push_back("password");
        values.push_back(options.password.reveal().c_str());
    }
    if (options.replication) {
        keys.push_back("replication");
        values.push_back("database");
    }
    // Values travel as their types' text output, and the two sides (and the walsender and
    // the apply session) must write the same value the same way, whatever the servers'
    // defaults: fix the settings that change text output. Anything the conninfo's own
    // `options` sets comes after, and wins.
    const auto given = parts->options.find("options");
    const std::string session_options =
        std::string(kSessionOptions) + (given != parts->options.end() ? " " + given->second : "");
    keys.push_back("options");
    values.push_back(session_options.c_str());
    const std::string timeout =
        std::to_string(std::max(1, (options.connect_timeout_ms + 999) / 1000));
    if (!parts->has("connect_timeout")) {
        keys.push_back("connect_timeout");
        values.push_back(timeout.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);

    PGconn* conn = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
    if (conn == nullptr) {
        throw Error(ErrorKind::Database, "out of memory opening a connection")
            .with("side", options.side);
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        std::string message = trimmed_message(PQerrorMessage(conn));
        PQfinish(conn);
        Error error(ErrorKind::Database, "cannot connect: " + message);
        error.with("side", options.side).with("conninfo", redact_conninfo(options.conninfo));
        if (const auto state = connect_failure_sqlstate(message)) {
            error.with("sqlstate", std::string(*state));
        }
        throw error;
    }
    // Server notices ("... does not exist, skipping") are not for the DBA's terminal.
    PQsetNoticeProcessor(
        conn, [](void*, const char*) {}, nullptr);
    return Connection(conn, options.side);
}

Result Connection::check(pg_result* raw, std::string_view sql) {
    Result result(raw);
    const ExecStatusType status = PQresultStatus(raw);
    if (raw != nullptr &&
        (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_COPY_BOTH ||
         status == PGRES_COPY_OUT || status == PGRES_COPY_IN)) {
        return result;
    }
    throw error_for(raw, sql);
}

Error Connection::error_for(const pg_result* raw, std::string_view sql) const {
    // Only the primary message: DETAIL lines can quote row values ("Key (id)=(5) already
    // exists"), which must not reach logs.
    const char* primary =
        raw != nullptr ? PQresultErrorField(raw, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    std::string message =
        primary != nullptr ? std::string(primary) : trimmed_message(PQerrorMessage(conn_.get()));
    const char* sqlstate = raw != nullptr ? PQresultErrorField(raw, PG_DIAG_SQLSTATE) : nullptr;
    Error error(ErrorKind::Database, message);
    error.with("side", side_);
    if (sqlstate != nullptr) {
        error.with("sqlstate", sqlstate);
    }
    error.with("statement", statement_summary(sql));
    return error;
}

Result Connection::exec(std::string_view sql) {
    const std::string text(sql);
    return check(PQexec(conn_.get(), text.c_str()), sql);
}

Result Connection::exec(std::string_view sql, const Params& params) {
    const std::string text(sql);
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) {
        values.push_back(p ? p->c_str() : nullptr);
    }
    return check(PQexecParams(conn_.get(), text.c_str(), static_cast<int>(values.size()), nullptr,
                              values.data(), nullptr, nullptr, 0),
                 sql);
}

void Connection::rollback_quietly() noexcept {
    if (PQtransactionStatus(conn_.get()) != PQTRANS_IDLE) {
        PQclear(PQexec(conn_.get(), "ROLLBACK"));
    }
}

int Connection::server_version() const {
    return PQserverVersion(conn_.get());
}

std::string Connection::current_user() {
    return std::string(exec("SELECT current_user").value(0, 0));
}

}  // namespace pgbridge::pg
