#include <pgbridge/transport/amqp_table.hpp>

namespace pgbridge::transport {

AmqpTable& AmqpTable::set(std::string key, FieldValue value) {
    for (auto& [k, v] : entries_) {
        if (k == key) {
            v = std::move(value);
            return *this;
        }
    }
    entries_.emplace_back(std::move(key), std::move(value));
    return *this;
}

std::optional<std::string> AmqpTable::get_string(std::string_view key) const {
    for (const auto& [k, v] : entries_) {
        if (k == key) {
            if (const auto* s = std::get_if<std::string>(&v)) {
                return *s;
            }
        }
    }
    return std::nullopt;
}

std::optional<std::int64_t> AmqpTable::get_int(std::string_view key) const {
    for (const auto& [k, v] : entries_) {
        if (k == key) {
            if (const auto* i = std::get_if<std::int64_t>(&v)) {
                return *i;
            }
        }
    }
    return std::nullopt;
}

}  // namespace pgbridge::transport
