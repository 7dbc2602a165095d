#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <pgbridge/core/secret.hpp>

struct pg_conn;
struct pg_result;

namespace pgbridge {
class Error;
}  // namespace pgbridge

namespace pgbridge::pg {

// A libpq message without its trailing newlines.
std::string trimmed_message(const char* text);

// The SQLSTATE a refused connection stands for, read from libpq's message (nullopt when the
// text says nothing known: no server answered, or it answered in another language).
std::optional<std::string_view> connect_failure_sqlstate(std::string_view message);

// The first line of a statement, enough to tell which one failed without printing values.
std::string statement_summary(std::string_view sql);

// The rows of one query, with text-format values.
class Result {
  public:
    explicit Result(pg_result* result);

    int rows() const;
    int columns() const;
    bool is_null(int row, int column) const;
    std::string_view value(int row, int column) const;  // empty for NULL
    std::optional<std::string> optional_value(int row, int column) const;
    // The value at (row, column) of a column found by name; throws Error(Internal) if absent.
    std::string_view value(int row, std::string_view column_name) const;
    long long affected_rows() const;

  private:
    std::shared_ptr<pg_result> result_;
};

// Parameters go to the server separately from the SQL text, as text values; nullopt is NULL.
using Params = std::vector<std::optional<std::string>>;

struct ConnectOptions {
    std::string conninfo;
    Secret password;  // from password_file; overrides one in conninfo
    std::string application_name = "pgbridge";
    bool replication = false;        // replication=database, for the walsender protocol
    int connect_timeout_ms = 30000;  // used unless conninfo sets connect_timeout
    std::string side;                // for error messages
};

// One libpq connection. Every failure throws Error(ErrorKind::Database) naming the side and,
// where the server sent one, the SQLSTATE.
class Connection {
  public:
    static Connection open(const ConnectOptions& options);

    Connection(Connection&&) noexcept = default;
    Connection& operator=(Connection&&) noexcept = default;
    ~Connection();

    Result exec(std::string_view sql);
    Result exec(std::string_view sql, const Params& params);

    // Runs fn inside BEGIN/COMMIT, rolling back if it throws.
    template <typename Fn>
    auto transaction(Fn&& fn) {
        exec("BEGIN");
        try {
            if constexpr (std::is_void_v<decltype(fn())>) {
                fn();
                exec("COMMIT");
            } else {
                auto result = fn();
                exec("COMMIT");
                return result;
            }
        } catch (...) {
            rollback_quietly();
            throw;
        }
    }

    int server_version() const;  // e.g. 150004
    std::string current_user();
    const std::string& side() const { return side_; }
    pg_conn* native() const { return conn_.get(); }
    // The error a failed result stands for: the server's primary message (never DETAIL, which
    // can quote row values), the side, the SQLSTATE and the statement's first line.
    Error error_for(const pg_result* result, std::string_view sql) const;

  private:
    Connection(pg_conn* conn, std::string side);
    void rollback_quietly() noexcept;
    Result check(pg_result* result, std::string_view sql);

    struct Closer {
        void operator()(pg_conn* conn) const noexcept;
    };
    std::unique_ptr<pg_conn, Closer> conn_;
    std::string side_;
};

}  // namespace pgbridge::pg
