#include <pgbridge/core/change_event.hpp>

namespace pgbridge {

std::string_view to_string(ChangeOp op) noexcept {
    switch (op) {
        case ChangeOp::Insert:
            return "INSERT";
        case ChangeOp::Update:
            return "UPDATE";
        case ChangeOp::Delete:
            return "DELETE";
        case ChangeOp::Truncate:
            return "TRUNCATE";
    }
    return "UNKNOWN";
}

}  // namespace pgbridge
