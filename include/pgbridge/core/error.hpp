#pragma once

#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgbridge {

// What went wrong, coarsely: decides the exit code and lets callers tell a broken
// configuration from an unreachable server without parsing messages.
enum class ErrorKind {
    Config,    // the configuration file is invalid
    Usage,     // the command line is invalid
    Io,        // a local file could not be read or written
    Database,  // PostgreSQL refused or failed a request, or could not be reached
    Broker,    // RabbitMQ refused or failed a request, or could not be reached
    Protocol,  // a peer sent bytes that do not follow its protocol
    Setup,     // the servers are not in a state pgbridge can work with (missing table, no key, ...)
    Internal,  // a bug in pgbridge
};

std::string_view to_string(ErrorKind kind) noexcept;

// The one error type of pgbridge. The message says what failed in words a DBA can act on;
// the context names where (side, table, key, LSN, file:line) as ordered key=value pairs.
// Neither may carry a password or a row value.
class Error : public std::exception {
  public:
    Error(ErrorKind kind, std::string message);

    // Adds a context field; returns *this so a throw site can chain them.
    Error& with(std::string key, std::string value) &;
    Error&& with(std::string key, std::string value) &&;

    ErrorKind kind() const noexcept { return kind_; }
    const std::string& message() const noexcept { return message_; }
    const std::vector<std::pair<std::string, std::string>>& context() const noexcept {
        return context_;
    }
    // Context value for key, or empty when absent.
    std::string_view context_value(std::string_view key) const noexcept;

    // "message (key=value, key=value)"
    const char* what() const noexcept override { return formatted_.c_str(); }

  private:
    void reformat();

    ErrorKind kind_;
    std::string message_;
    std::vector<std::pair<std::string, std::string>> context_;
    std::string formatted_;
};

// Process exit code for an error that ends a command: 2 for a configuration or usage error
// (nothing was attempted), 1 for everything else.
int exit_code_for(ErrorKind kind) noexcept;

}  // namespace pgbridge
