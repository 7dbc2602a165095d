#include <cstdint>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/apply/dead_letter_writer.hpp>
#include <pgbridge/core/error.hpp>
#include <pgbridge/core/error_policy.hpp>
#include <pgbridge/core/hex.hpp>
#include <pgbridge/core/utf8.hpp>

namespace pgbridge::apply {
DeadLetterWriter::DeadLetterWriter(pg::ConnectOptions target) : target_(std::move(target)) {
    target_.application_name = "pgbridge dead letters";
}

DeadLetterWriter::~DeadLetterWriter() = default;

void DeadLetterWriter::record(const transport::DeadLetter& letter) {
    // Whatever the message held, every text goes in valid (NUL and ill-formed UTF-8 would
    // make the INSERT itself fail), and the payload as bytes.
    const auto text = [](const std::string& s) { return to_valid_text(s); };
    const auto optional_valid = [&](const std::string& s) {
        return s.empty() ? std::nullopt : std::optional<std::string>(text(s));
    };
    // The key goes in as jsonb only when it is JSON; an error can name a key otherwise.
    std::optional<std::string> key;
    if (!letter.key.empty() && is_valid_utf8(letter.key) &&
        letter.key.find('\0') == std::string::npos && nlohmann::json::accept(letter.key)) {
        key = letter.key;
    }
    const std::string attempts = std::to_string(
        std::min<std::uint64_t>(letter.attempts, std::numeric_limits<std::int32_t>::max()));
    std::string reason = text(letter.reason);
    if (letter.body_size > letter.body.size()) {
        reason += fmt::format(" (payload keeps the first {} of {} bytes)", letter.body.size(),
                              letter.body_size);
    }
    const pg::Params full{
        text(letter.bridge),
        letter.source_side.empty() ? std::string("unknown") : text(letter.source_side),
        optional_valid(letter.table),
        key,
        letter.first_lsn ? std::optional(letter.first_lsn->to_string()) : std::nullopt,
        letter.last_lsn ? std::optional(letter.last_lsn->to_string()) : std::nullopt,
        letter.commit_time ? std::optional(format_timestamp(*letter.commit_time)) : std::nullopt,
        attempts,
        text(letter.error_kind),
        optional_valid(letter.sqlstate),
        reason,
        optional_valid(letter.message_id),
        to_hex(letter.body)};
    try {
        insert(full);
    } catch (const Error& e) {
        if (is_connection_failure(e)) {
            throw;
        }
        // A row that still does not go in (a value out of a column's range, say): the
        // essentials, so that the DBA learns of the message; it is whole in the dead-letter
        // queue.
        pg::Params minimal(full.size());
        minimal[0] = full[0];
        minimal[1] = full[1];
        minimal[7] = attempts;
        minimal[8] = full[8];
        minimal[10] = reason + " [recorded without its details: " + text(e.what()) + "]";
        insert(minimal);
    }
}

void DeadLetterWriter::insert(const pg::Params& params) {
    try {
        if (!connection_) {
            connection_.emplace(pg::Connection::open(target_));
        }
        connection_->exec(
            "INSERT INTO pgbridge.dead_letters (bridge, source_side, table_name, key, first_lsn,"
            " last_lsn, commit_time, attempts, error_kind, sqlstate, reason, message_id, payload)"
            " VALUES ($1, $2, $3, $4::jsonb, $5::pg_lsn, $6::pg_lsn, $7::timestamptz, $8::int,"
            " $9, $10, $11, $12, decode($13, 'hex'))",
            params);
    } catch (const Error& e) {
        if (is_connection_failure(e)) {
            connection_.reset();  // reconnect next time
        }
        throw;
    }
}

}  // namespace pgbridge::apply
