#pragma once

#include <pgbridge/core/lsn.hpp>

namespace pgbridge::source {

// Decides which position the capture may report to the server as flushed, i.e. where the
// slot's confirmed_flush_lsn may move: never past what is not durable downstream, and on with
// the server's WAL end while idle, so that a quiet database does not bloat WAL
// (docs/capture.md). Pure bookkeeping.
//
// - A transaction handed downstream counts only once downstream says it is durable.
// - When nothing is in flight (everything handed downstream is durable and no transaction is
//   half received), the position may jump to the end of the last transaction skipped (echo)
//   and to the walsender's keepalive position: every transaction committed before that has
//   been received already, so an idle database, or one whose writes touch only unsynced
//   tables, does not hold WAL.
// - It never moves backwards.
class FeedbackPosition {
  public:
    // A transaction ending at end_lsn was handed downstream.
    void delivered(Lsn end_lsn);
    // A transaction ending at end_lsn was received and deliberately not handed downstream.
    void skipped(Lsn end_lsn);
    // The walsender's keepalive says it has sent everything before sent_up_to. Only valid when
    // taken while no transaction is half received.
    void keepalive(Lsn sent_up_to, bool holds_partial_data);

    // The position to report, given downstream's durable position and whether a transaction
    // is half received.
    Lsn flush_position(Lsn durable, bool holds_partial_data);

    // Where a new connection should resume so that nothing fully received is sent again.
    Lsn resume_position() const { return received_; }
    // Restart after downstream lost what was not durable: resume from the durable position.
    void rewind_to(Lsn durable);

    Lsn delivered_up_to() const { return delivered_; }

  private:
    Lsn delivered_;  // end of the last transaction handed downstream
    Lsn received_;   // end of the last transaction fully received (delivered or skipped)
    Lsn idle_;       // keepalive position taken with nothing half received
    Lsn reported_;   // last position returned (monotonic)
};

}  // namespace pgbridge::source
