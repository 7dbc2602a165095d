#include <pgbridge/core/error.hpp>

namespace pgbridge {

std::string_view to_string(ErrorKind kind) noexcept {
    switch (kind) {
        case ErrorKind::Config:
            return "config";
        case ErrorKind::Usage:
            return "usage";
        case ErrorKind::Io:
            return "io";
        case ErrorKind::Database:
            return "database";
        case ErrorKind::Broker:
            return "broker";
        case ErrorKind::Protocol:
            return "protocol";
        case ErrorKind::Setup:
            return "setup";
        case ErrorKind::Internal:
            return "internal";
    }
    return "unknown";
}

Error::Error(ErrorKind kind, std::string message) : kind_(kind), message_(std::move(message)) {
    reformat();
}

Error& Error::with(std::string key, std::string value) & {
    context_.emplace_back(std::move(key), std::move(value));
    reformat();
    return *this;
}

Error&& Error::with(std::string key, std::string value) && {
    return std::move(with(std::move(key), std::move(value)));
}

std::string_view Error::context_value(std::string_view key) const noexcept {
    for (const auto& [k, v] : context_) {
        if (k == key) {
            return v;
        }
    }
    return {};
}

void Error::reformat() {
    formatted_ = message_;
    if (context_.empty()) {
        return;
    }
    formatted_ += " (";
    for (std::size_t i = 0; i < context_.size(); ++i) {
        if (i > 0) {
            formatted_ += ", ";
        }
        formatted_ += context_[i].first;
        formatted_ += '=';
        formatted_ += context_[i].second;
    }
    formatted_ += ')';
}

int exit_code_for(ErrorKind kind) noexcept {
    return kind == ErrorKind::Config || kind == ErrorKind::Usage ? 2 : 1;
}

}  // namespace pgbridge
