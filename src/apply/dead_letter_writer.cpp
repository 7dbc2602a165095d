#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pgbridge/apply/dead_letter_writer.hpp>
#include <pgbridge/core/error.hpp>

namespace pgbridge::apply {
namespace {

std::optional<std::string> optional_text(const std::string& s) {
    return s.empty() ? std::nullopt : std::optional<std::string>(s);
}

std::string hex(std::string_view bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out += kDigits[c >> 4];
        out += kDigits[c & 0xF];
    }
    return out;
}

}  // namespace

DeadLetterWriter::DeadLetterWriter(pg::ConnectOptions target) : target_(std::move(target)) {
    target_.application_name = "pgbridge dead letters";
}

DeadLetterWriter::~DeadLetterWriter() = default;

void DeadLetterWriter::record(const transport::DeadLetter& letter) {
    try {
        if (!connection_) {
            connection_.emplace(pg::Connection::open(target_));
        }
        // The key goes in as jsonb only when it is JSON; an error can name a key otherwise.
        std::optional<std::string> key;
        if (!letter.key.empty() && nlohmann::json::accept(letter.key)) {
            key = letter.key;
        }
        connection_->exec(
            "INSERT INTO pgbridge.dead_letters (bridge, source_side, table_name, key, first_lsn,"
            " last_lsn, commit_time, attempts, error_kind, sqlstate, reason, message_id, payload)"
            " VALUES ($1, $2, $3, $4::jsonb, $5::pg_lsn, $6::pg_lsn, $7::timestamptz, $8::int,"
            " $9, $10, $11, $12, decode($13, 'hex'))",
            {letter.bridge,
             letter.source_side.empty() ? std::string("unknown") : letter.source_side,
             optional_text(letter.table), key,
             letter.first_lsn ? std::optional(letter.first_lsn->to_string()) : std::nullopt,
             letter.last_lsn ? std::optional(letter.last_lsn->to_string()) : std::nullopt,
             letter.commit_time ? std::optional(format_timestamp(*letter.commit_time))
                                : std::nullopt,
             std::to_string(letter.attempts), letter.error_kind, optional_text(letter.sqlstate),
             letter.reason, optional_text(letter.message_id), hex(letter.body)});
    } catch (const Error&) {
        connection_.reset();  // reconnect next time
        throw;
    }
}

}  // namespace pgbridge::apply
