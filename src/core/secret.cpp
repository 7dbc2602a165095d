#include <cstring>

#include <pgbridge/core/secret.hpp>

namespace pgbridge {

void Secret::wipe() noexcept {
    // explicit_bzero: a plain memset of memory about to be freed may be optimised away.
    ::explicit_bzero(value_.data(), value_.capacity());
    value_.clear();
}

}  // namespace pgbridge
