#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>

namespace pgbridge {

// A schema-qualified PostgreSQL relation name, held unquoted. Parsing follows SQL: unquoted
// parts fold to lower case, "double quoted" parts keep their case and may contain dots.
struct QualifiedName {
    std::string schema;
    std::string name;

    // Parses "schema.table"; nullopt when the text is not exactly two identifiers.
    static std::optional<QualifiedName> parse(std::string_view text);

    // For SQL text: both parts quoted ("public"."talents").
    std::string quoted() const;
    // For people: parts quoted only where SQL needs it (public.talents, hr."Candidates").
    std::string display() const;

    auto operator<=>(const QualifiedName&) const = default;
};

// Quotes an identifier for SQL text, doubling embedded quotes.
std::string quote_identifier(std::string_view identifier);
// Quotes an identifier only when SQL requires it (upper case, special characters, keywords are
// quoted conservatively by the first two rules only; used for display, never for SQL).
std::string display_identifier(std::string_view identifier);

}  // namespace pgbridge
