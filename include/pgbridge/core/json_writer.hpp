#pragma once

#include <iterator>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace pgbridge {

// Writes compact JSON text straight into a string, for documents pgbridge writes on every
// change (messages, column versions): building a DOM first and printing it cost more than
// the rest of the work. The caller keeps the structure balanced; strings must be UTF-8.
class JsonWriter {
  public:
    std::string take() { return std::move(out_); }

    void key(std::string_view name) {
        string(name);
        out_ += ':';
        fresh_ = true;  // the value follows without a comma
    }
    void string(std::string_view text) {
        separate();
        quoted(text);
    }
    template <typename Number>
    void number(Number n) {
        separate();
        fmt::format_to(std::back_inserter(out_), "{}", n);
    }
    void boolean(bool b) {
        separate();
        out_ += b ? "true" : "false";
    }
    void null() {
        separate();
        out_ += "null";
    }
    // A value that is JSON text already (a document written by another JsonWriter).
    void raw(std::string_view json) {
        separate();
        out_ += json;
    }
    void open(char bracket) {
        separate();
        out_ += bracket;
        fresh_ = true;
    }
    void close(char bracket) {
        out_ += bracket;
        fresh_ = false;
    }

  private:
    void separate() {
        if (!fresh_) {
            out_ += ',';
        }
        fresh_ = false;
    }
    void quoted(std::string_view text);

    std::string out_;
    bool fresh_ = true;
};

}  // namespace pgbridge
