#include <algorithm>

#include <pgbridge/source/feedback_position.hpp>

namespace pgbridge::source {

void FeedbackPosition::delivered(Lsn end_lsn) {
    delivered_ = std::max(delivered_, end_lsn);
    received_ = std::max(received_, end_lsn);
}

void FeedbackPosition::skipped(Lsn end_lsn) {
    received_ = std::max(received_, end_lsn);
}

void FeedbackPosition::keepalive(Lsn sent_up_to, bool holds_partial_data) {
    if (!holds_partial_data) {
        idle_ = std::max(idle_, sent_up_to);
    }
}

Lsn FeedbackPosition::flush_position(Lsn durable, bool holds_partial_data) {
    Lsn position = durable;
    const bool nothing_in_flight = durable >= delivered_ && !holds_partial_data;
    if (nothing_in_flight) {
        position = std::max({durable, received_, idle_});
    }
    reported_ = std::max(reported_, position);
    return reported_;
}

void FeedbackPosition::rewind_to(Lsn durable) {
    delivered_ = std::min(delivered_, std::max(durable, reported_));
    received_ = std::max(durable, reported_);
    idle_ = std::min(idle_, received_);
}

}  // namespace pgbridge::source
