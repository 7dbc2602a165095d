#pragma once

#include <exception>

#include <pgbridge/core/error.hpp>

namespace pgbridge {

// What to do about a failure: the one policy of the data path (capture, consumer, applier).
enum class FailureAction {
    // The target or the broker cannot be reached right now, or refused for a moment (a
    // deadlock, a standby that is read-only, no room), or the target's schema is behind the
    // source's (context waiting_for): keep the message, try it again in place after a pause
    // that grows; no attempt is counted and nothing is dead-lettered.
    WaitInPlace,
    // This message failed to apply (a constraint, a type, a missing table, a bug): count an
    // attempt, try again after retry_delay_ms, and dead-letter after max_retries.
    Retry,
    // No attempt can succeed (unparseable, too large, not for this queue): dead-letter now.
    DeadLetter,
    // A connection or stream is gone, or a server is restarting: reconnect with backoff.
    Reconnect,
    // Needs a DBA (a missing slot or publication, a refused login): stop that part and say
    // why in status.
    Fatal,
};

// A PostgreSQL connection failure: before the server answered, a connection exception
// (class 08), or the server shutting down, starting up, or out of connection slots.
bool is_connection_failure(const Error& error);

// Conflicts with a concurrent transaction (serialization failure, deadlock, a key inserted
// between our read and our write, a lock not available): the applier retries the whole batch
// at once before anything else is decided.
bool is_transient_conflict(const Error& error);

// A server that answered and refused pgbridge's login: a wrong password, an unknown role or
// user, pg_hba.conf, a database or virtual host that does not exist. Retrying cannot help;
// the message says what to fix.
bool is_refused_login(const Error& error);

// A failure of applying one message: WaitInPlace, Retry or DeadLetter.
FailureAction classify_apply_failure(const Error& error);

// A failure that ended a replication stream or a consumer's session: Reconnect or Fatal.
FailureAction classify_session_failure(const Error& error);

// Whatever was thrown, as an Error (anything that is not one is a bug: Internal), so that
// one message's failure can always be routed by the policy above.
Error as_error(std::exception_ptr thrown);

}  // namespace pgbridge
