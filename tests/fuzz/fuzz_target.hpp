#pragma once

// What every fuzz target checks (tests/fuzz/README.md): bad input may only throw
// pgbridge::Error, of the kind the code under test documents. Any other exception escapes the
// target and ends the process (std::terminate names its type and what()); a broken invariant
// aborts. libFuzzer saves the input either way, and the replay runner fails the unit test.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <pgbridge/core/error.hpp>

namespace pgbridge::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

// A bug found: says what, and aborts.
[[noreturn]] inline void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz target: %s\n", what.c_str());
    std::abort();
}

inline void check(bool condition, const std::string& what) {
    if (!condition) {
        fail(what);
    }
}

// Runs fn and returns true when it returned, false when it threw pgbridge::Error of the
// expected kind. An Error of another kind is a bug; other exceptions are left to escape.
template <typename Fn>
bool returns_or_throws(ErrorKind expected, Fn&& fn) {
    try {
        fn();
        return true;
    } catch (const Error& e) {
        if (e.kind() != expected) {
            fail("expected an error of kind " + std::string(to_string(expected)) + ", got " +
                 std::string(to_string(e.kind())) + ": " + e.what());
        }
        return false;
    }
}

}  // namespace pgbridge::fuzz
