#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pgbridge/transport/change_batch.hpp>
#include <pgbridge/transport/message.hpp>

namespace pgbridge::transport {

// The RabbitMQ message format, version 1 (docs/message-format.md): a JSON body that any
// consumer can read, plus AMQP properties and headers that let a consumer route, filter and
// deduplicate without parsing the body.

inline constexpr int kMessageFormatVersion = 1;
// A part of a large transaction: a version-1 reader refuses it rather than apply a part.
inline constexpr int kChunkFormatVersion = 2;
inline constexpr std::string_view kContentType = "application/json";
inline constexpr std::string_view kMessageType = "pgbridge.changes.v1";

// Why a message was dead-lettered without being applied (x-pgbridge-dead-kind and
// pgbridge.dead_letters.error_kind); an apply that kept failing gives its ErrorKind instead.
namespace dead_kind {
inline constexpr std::string_view kOversized = "oversized";      // over max_message_bytes
inline constexpr std::string_view kUnparseable = "unparseable";  // not a valid message body
inline constexpr std::string_view kUnsupported = "unsupported";  // another type or version
inline constexpr std::string_view kMisrouted = "misrouted";      // another bridge or source
// Routed for another [engine] apply_workers: replayable, routed anew by key.
inline constexpr std::string_view kOtherShard = "other_shard";
inline constexpr std::string_view kUnsigned = "unsigned";      // no signature, a key is set
inline constexpr std::string_view kForged = "forged";          // a signature that fails
inline constexpr std::string_view kImpossible = "impossible";  // beyond its source's WAL or clock
}  // namespace dead_kind

std::string encode_body(const ChangeBatch& batch);

// An upper bound of what a change adds to an encoded body, in bytes (escapes and base64
// included): what the publisher cuts messages and parts by before encoding them.
std::size_t encoded_size_bound(const ChangeEvent& change);
std::size_t encoded_size_bound(const RowVersions& versions);

// Throws Error(ErrorKind::Protocol) naming the offending field when the body is not a valid
// version-1 message (with context refused=unsupported for another format version), and
// nothing else, whatever the bytes.
ChangeBatch decode_body(std::string_view body);

// "bridge:source:last end LSN": the same for a message published again after a replay, so a
// consumer can recognise a duplicate.
std::string message_id(const ChangeBatch& batch);

// The x-pgbridge-* headers, as text values.
std::vector<std::pair<std::string, std::string>> message_headers(const ChangeBatch& batch);

// Every property of the message that carries `batch` (type, id, headers, ...), as the
// publisher sends it and `dead-letters replay` sends it again.
MessageProperties message_properties(const ChangeBatch& batch, int priority);

}  // namespace pgbridge::transport
