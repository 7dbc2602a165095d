#pragma once

#include <array>
#include <cstddef>
#include <future>
#include <type_traits>

namespace pgbridge::verify {

// Runs fn(0) on a thread of its own and fn(1) on the caller's, so that both servers work at
// once (each side has its own connection); returns {fn(0), fn(1)}. An exception of either
// reaches the caller, after both have finished.
template <typename Fn>
auto on_both_sides(Fn&& fn) {
    using Result = std::invoke_result_t<Fn&, std::size_t>;
    auto from_a = std::async(std::launch::async, [&] { return fn(std::size_t{0}); });
    Result from_b = fn(std::size_t{1});
    return std::array<Result, 2>{from_a.get(), std::move(from_b)};
}

}  // namespace pgbridge::verify
