#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace pgbridge::transport {

// An AMQP field table: arguments of declarations and the headers of a message. Holds the
// value types pgbridge writes; a received table keeps strings (byte strings too), integers of
// every width and booleans, and drops the rest (arrays, nested tables, decimals, ...).
class AmqpTable {
  public:
    using FieldValue = std::variant<std::string, std::int64_t, bool>;

    AmqpTable& set(std::string key, FieldValue value);
    bool empty() const { return entries_.empty(); }
    const std::vector<std::pair<std::string, FieldValue>>& entries() const { return entries_; }

    std::optional<std::string> get_string(std::string_view key) const;
    std::optional<std::int64_t> get_int(std::string_view key) const;

  private:
    std::vector<std::pair<std::string, FieldValue>> entries_;
};

}  // namespace pgbridge::transport
