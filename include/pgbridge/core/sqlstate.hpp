#pragma once

#include <string_view>

// The PostgreSQL SQLSTATEs and AMQP reply codes pgbridge acts on, by name (PostgreSQL's
// errcodes.txt; AMQP 0-9-1 constants). What pgbridge does about each is decided in one place:
// core/error_policy.hpp.
namespace pgbridge::sqlstate {

inline constexpr std::string_view kConnectionExceptionClass = "08";
inline constexpr std::string_view kInsufficientResourcesClass = "53";  // disk full, out of memory
inline constexpr std::string_view kInvalidAuthorizationClass = "28";   // password, role, pg_hba
inline constexpr std::string_view kInvalidCatalogName = "3D000";       // no such database
inline constexpr std::string_view kInvalidAuthorization = "28000";     // role, pg_hba.conf
inline constexpr std::string_view kInvalidPassword = "28P01";

inline constexpr std::string_view kReadOnlySqlTransaction = "25006";  // a standby, or read-only
inline constexpr std::string_view kInvalidSqlStatementName = "26000";
inline constexpr std::string_view kUniqueViolation = "23505";
inline constexpr std::string_view kSerializationFailure = "40001";
inline constexpr std::string_view kDeadlockDetected = "40P01";
inline constexpr std::string_view kInsufficientPrivilege = "42501";
inline constexpr std::string_view kUndefinedColumn = "42703";
inline constexpr std::string_view kDatatypeMismatch = "42804";
// Among others: "cached plan must not change result type", after a column's type changed.
inline constexpr std::string_view kFeatureNotSupported = "0A000";
inline constexpr std::string_view kUndefinedObject = "42704";
inline constexpr std::string_view kUndefinedTable = "42P01";
inline constexpr std::string_view kObjectInUse = "55006";  // a slot held by another process
inline constexpr std::string_view kLockNotAvailable = "55P03";
inline constexpr std::string_view kAdminShutdown = "57P01";
inline constexpr std::string_view kCrashShutdown = "57P02";
inline constexpr std::string_view kCannotConnectNow = "57P03";  // starting up
inline constexpr std::string_view kTooManyConnections = "53300";

}  // namespace pgbridge::sqlstate

namespace pgbridge::amqp_reply {

inline constexpr std::string_view kAccessRefused = "403";
inline constexpr std::string_view kNotFound = "404";
inline constexpr std::string_view kPreconditionFailed = "406";

}  // namespace pgbridge::amqp_reply
