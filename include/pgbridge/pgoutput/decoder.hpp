#pragma once

#include <string_view>

#include <pgbridge/pgoutput/messages.hpp>

namespace pgbridge::pgoutput {

// Upper bounds that no well-formed message exceeds; beyond them the input is garbage, and the
// decoder says so instead of allocating for it.
inline constexpr std::size_t kMaxColumns = 1664;  // PostgreSQL's MaxTupleAttributeNumber
inline constexpr std::size_t kMaxTruncatedRelations = 1u << 20;

// Decodes one pgoutput message (the payload of one XLogData). in_stream_block tells whether
// a Stream Start is open, because then data messages carry a transaction id first.
// A pure function: no state, no I/O. Throws Error(ErrorKind::Protocol) on any malformed,
// truncated or unknown input, with the message type and byte offset in its context.
Message decode_message(std::string_view payload, bool in_stream_block);

}  // namespace pgbridge::pgoutput
