#pragma once

#include <chrono>

#include <pgbridge/core/change_event.hpp>
#include <pgbridge/core/lsn.hpp>

namespace pgbridge::source {

// Where the capture hands committed transactions, and who tells it what is durable. The
// RabbitMQ publisher implements it (durable = confirmed by the broker); tests and
// `pgbridge tail` have their own.
class TransactionSink {
  public:
    virtual ~TransactionSink() = default;

    // The capture starts a session, before its first transaction: a sink that talks to a
    // broker connects now, so that the first change after a start or a reconnect does not
    // wait for the connection. Throwing has the same effect as in deliver().
    virtual void open() {}

    // Takes one committed transaction, in source commit order. May block (backpressure).
    // Throwing makes the capture reconnect and replay from durable_lsn().
    // With CaptureOptions::piece_bytes set, a large transaction comes as pieces
    // (SourceTransaction::in_pieces, consecutive, the last one with its end_lsn), before the
    // next transaction; only the publisher asks for that.
    virtual void deliver(SourceTransaction transaction) = 0;

    // No more transactions are coming right now: send on what is held back for batching.
    // Throwing has the same effect as in deliver().
    virtual void flush() {}

    // Every delivered transaction whose end LSN is at or before this is durable downstream.
    // Called from the capture's thread; must not decrease.
    virtual Lsn durable_lsn() = 0;

    // A descriptor that becomes readable when durable_lsn() may have moved, for the capture
    // to wait on with its replication stream; -1 when nothing is awaited (or durable_lsn()
    // should be asked again at once).
    virtual int durable_fd() { return -1; }

    // The capture is stopping: wait (up to `timeout`) for what was delivered to become
    // durable, so that the final status update confirms as much as possible.
    virtual void settle(std::chrono::milliseconds timeout) { (void)timeout; }

    // The capture restarts from `from`: anything delivered after it that is not durable will
    // be delivered again.
    virtual void rewind(Lsn from) { (void)from; }
};

}  // namespace pgbridge::source
