#include <pgbridge/core/error_policy.hpp>
#include <pgbridge/core/sqlstate.hpp>

namespace pgbridge {
namespace {

std::string_view sqlstate_of(const Error& error) {
    return error.kind() == ErrorKind::Database ? error.context_value("sqlstate")
                                               : std::string_view();
}

}  // namespace

bool is_connection_failure(const Error& error) {
    if (error.kind() != ErrorKind::Database) {
        return false;
    }
    const std::string_view state = error.context_value("sqlstate");
    return state.empty()  // failed before the server answered
           || state.starts_with(sqlstate::kConnectionExceptionClass) ||
           state == sqlstate::kAdminShutdown || state == sqlstate::kCrashShutdown ||
           state == sqlstate::kCannotConnectNow || state == sqlstate::kTooManyConnections;
}

bool is_transient_conflict(const Error& error) {
    const std::string_view state = sqlstate_of(error);
    return state == sqlstate::kSerializationFailure || state == sqlstate::kDeadlockDetected ||
           state == sqlstate::kUniqueViolation || state == sqlstate::kLockNotAvailable;
}

bool is_refused_login(const Error& error) {
    if (error.kind() == ErrorKind::Broker) {
        return error.context_value("login") == "refused";
    }
    const std::string_view state = sqlstate_of(error);
    return state.starts_with(sqlstate::kInvalidAuthorizationClass) ||
           state == sqlstate::kInvalidCatalogName;
}

FailureAction classify_apply_failure(const Error& error) {
    switch (error.kind()) {
        case ErrorKind::Protocol:
            return FailureAction::DeadLetter;
        case ErrorKind::Broker:
            return FailureAction::WaitInPlace;
        case ErrorKind::Database: {
            const std::string_view state = error.context_value("sqlstate");
            if (is_connection_failure(error) || state == sqlstate::kSerializationFailure ||
                state == sqlstate::kDeadlockDetected ||
                state == sqlstate::kReadOnlySqlTransaction ||
                // The replication origin is in use by another session: another process of
                // this bridge, on its way out (the bridge lock lets only one run).
                state == sqlstate::kObjectInUse ||
                state.starts_with(sqlstate::kInsufficientResourcesClass)) {
                return FailureAction::WaitInPlace;
            }
            return FailureAction::Retry;
        }
        case ErrorKind::Setup:
            // The target's schema is behind the source's (a column added there first): it
            // will catch up; the message must not be spent on attempts meanwhile.
            if (!error.context_value("waiting_for").empty()) {
                return FailureAction::WaitInPlace;
            }
            break;
        case ErrorKind::Config:
        case ErrorKind::Usage:
        case ErrorKind::Io:
        case ErrorKind::Internal:
            break;
    }
    return FailureAction::Retry;
}

FailureAction classify_session_failure(const Error& error) {
    if (is_refused_login(error)) {
        return FailureAction::Fatal;
    }
    // A deadlock or serialization failure of capture's own writes (the keeper's row_versions
    // against the applier's locks) passes: the session starts again from what is recorded.
    if (error.kind() == ErrorKind::Broker || is_connection_failure(error) ||
        sqlstate_of(error) == sqlstate::kObjectInUse || is_transient_conflict(error)) {
        return FailureAction::Reconnect;
    }
    return FailureAction::Fatal;
}

Error as_error(std::exception_ptr thrown) {
    try {
        std::rethrow_exception(thrown);
    } catch (const Error& e) {
        return e;
    } catch (const std::bad_alloc&) {
        return Error(ErrorKind::Internal, "out of memory");
    } catch (const std::exception& e) {
        return Error(ErrorKind::Internal, std::string("unexpected failure: ") + e.what());
    } catch (...) {
        return Error(ErrorKind::Internal, "unexpected failure of an unknown kind");
    }
}

}  // namespace pgbridge
