#include <algorithm>

#include <fmt/format.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/setup/key_sequences.hpp>

namespace pgbridge {
namespace {

std::int64_t to_int64(std::string_view text, std::string_view what) {
    try {
        return std::stoll(std::string(text));
    } catch (const std::exception&) {
        throw Error(ErrorKind::Internal, fmt::format("{} is not an integer: '{}'", what, text));
    }
}

// The next value of a sequence as its relation holds it. Read from the sequence itself, not
// from pg_sequences, whose last_value is NULL both for "never used" and for "not allowed to
// see", two answers that must not be confused here.
void read_next(pg::Connection& conn, KeySequence& s) {
    const auto r = conn.exec("SELECT last_value, is_called FROM " + s.sequence.quoted());
    const std::int64_t last = to_int64(r.value(0, 0), "last_value");
    s.next = r.value(0, 1) == "t" ? last + s.increment : last;
}

std::string sequence_object(const KeySequence& s) {
    return "sequence " + s.sequence.display();
}

}  // namespace

std::vector<KeySequence> key_sequences(pg::Connection& conn, const QualifiedName& table) {
    // A key column's sequence is found through the dependencies PostgreSQL records: a default
    // that calls nextval depends on its sequence (serial, or a sequence of the application's
    // own), and an identity column's sequence depends on the column.
    const auto r = conn.exec(
        "SELECT a.attname, n.nspname, c.relname, s.seqincrement, s.seqmax, s.seqcache"
        "  FROM pg_attribute a"
        "  JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary"
        "                 AND a.attnum = ANY (i.indkey)"
        "  CROSS JOIN LATERAL ("
        "    SELECT d.refobjid AS seq FROM pg_attrdef ad"
        "      JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid"
        "                      AND d.refclassid = 'pg_class'::regclass"
        "     WHERE ad.adrelid = a.attrelid AND ad.adnum = a.attnum"
        "    UNION"
        "    SELECT d.objid FROM pg_depend d"
        "     WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass"
        "       AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum AND d.deptype = 'i'"
        "  ) dep"
        "  JOIN pg_class c ON c.oid = dep.seq AND c.relkind = 'S'"
        "  JOIN pg_namespace n ON n.oid = c.relnamespace"
        "  JOIN pg_sequence s ON s.seqrelid = c.oid"
        " WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        {table.quoted()});
    std::vector<KeySequence> out;
    for (int row = 0; row < r.rows(); ++row) {
        KeySequence s;
        s.column = std::string(r.value(row, 0));
        s.sequence = QualifiedName{std::string(r.value(row, 1)), std::string(r.value(row, 2))};
        s.increment = to_int64(r.value(row, 3), "seqincrement");
        s.max_value = to_int64(r.value(row, 4), "seqmax");
        s.cache = to_int64(r.value(row, 5), "seqcache");
        read_next(conn, s);
        out.push_back(std::move(s));
    }
    return out;
}

namespace {

int parity_of(std::int64_t value) noexcept {
    return static_cast<int>(((value % 2) + 2) % 2);  // 1 for negative odd values too
}

}  // namespace

std::int64_t first_with_parity(std::int64_t from, int parity) noexcept {
    return parity_of(from) == parity ? from : from + 1;
}

bool kept_apart(const KeySequence& first, const KeySequence& second) noexcept {
    return first.increment == 2 && second.increment == 2 &&
           parity_of(first.next) != parity_of(second.next);
}

void partition_key_sequences(const std::array<pg::Connection*, 2>& conns,
                             const std::vector<SharedKey>& keys, bool dry_run, int lock_timeout_ms,
                             SetupReport& report) {
    if (keys.empty()) {
        return;
    }
    std::array<bool, 2> open{false, false};
    try {
        for (std::size_t i = 0; i < 2; ++i) {
            conns[i]->exec("BEGIN");
            open[i] = true;
            // Waiting for a long transaction of the application is better reported than
            // waited out: setup can be run again.
            conns[i]->exec(fmt::format("SET LOCAL lock_timeout = {}", lock_timeout_ms));
        }
        // Writes stop on both tables (reads go on) until both sequences are changed: a key
        // inserted between reading the highest key and restarting the sequence could otherwise
        // be handed out again. SHARE ROW EXCLUSIVE also makes two setups take turns. A dry run
        // locks nothing; its numbers are what they were at the moment it looked.
        if (!dry_run) {
            for (const auto& key : keys) {
                for (std::size_t i = 0; i < 2; ++i) {
                    conns[i]->exec(fmt::format("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
                                               key.sides[i].table.quoted()));
                }
            }
        }
        for (const auto& key : keys) {
            std::array<KeySequence, 2> now;
            std::int64_t highest_key = 0;
            bool any_key = false;
            std::int64_t floor = 0;  // the first value no side has handed out
            for (std::size_t i = 0; i < 2; ++i) {
                now[i] = key.sides[i].sequence;
                read_next(*conns[i], now[i]);
                const auto r = conns[i]->exec(fmt::format("SELECT max({})::text FROM {}",
                                                          quote_identifier(now[i].column),
                                                          key.sides[i].table.quoted()));
                if (!r.is_null(0, 0)) {
                    const std::int64_t top = to_int64(r.value(0, 0), "the highest key");
                    highest_key = any_key ? std::max(highest_key, top) : top;
                    any_key = true;
                }
                floor = i == 0 ? now[i].next : std::max(floor, now[i].next);
            }
            if (any_key) {
                floor = std::max(floor, highest_key + 1);
            }
            for (std::size_t i = 0; i < 2; ++i) {
                const KeySequence& s = now[i];
                const int parity = key_parity(i);
                const std::string& side = key.sides[i].name;
                const std::string what =
                    fmt::format("{} keys of {}.{}", parity == 1 ? "odd" : "even",
                                key.table.display(), display_identifier(key.column));
                if (s.increment == 2 && first_with_parity(s.next, parity) == s.next &&
                    s.next >= floor) {
                    report.add(side, sequence_object(s), SetupStep::Outcome::Unchanged,
                               fmt::format("{} (INCREMENT BY 2, next {})", what, s.next));
                    continue;
                }
                const std::int64_t restart = first_with_parity(floor, parity);
                if (restart > s.max_value) {
                    throw Error(ErrorKind::Setup,
                                fmt::format("sequence {} would have to restart at {}, above its "
                                            "MAXVALUE {}; raise it (ALTER SEQUENCE ... MAXVALUE) "
                                            "and run setup again",
                                            s.sequence.display(), restart, s.max_value))
                        .with("side", side);
                }
                if (!dry_run) {
                    conns[i]->exec(fmt::format("ALTER SEQUENCE {} INCREMENT BY 2 RESTART WITH {}",
                                               s.sequence.quoted(), restart));
                }
                report.add(
                    side, sequence_object(s), SetupStep::Outcome::Changed,
                    fmt::format("{}INCREMENT BY 2 RESTART WITH {}: {} from now on ({})",
                                dry_run ? "would be " : "", restart, what,
                                any_key ? fmt::format("highest key on either side {}", highest_key)
                                        : std::string("no keys yet on either side")));
                if (s.cache > 1) {
                    report.add(side, sequence_object(s), SetupStep::Outcome::Warning,
                               fmt::format("CACHE {}: sessions connected before may still hand "
                                           "out values they cached; reconnect the applications",
                                           s.cache));
                }
            }
        }
        for (std::size_t i = 0; i < 2; ++i) {
            conns[i]->exec(dry_run ? "ROLLBACK" : "COMMIT");
            open[i] = false;
        }
    } catch (...) {
        // A side already committed keeps its new sequences: they are valid on their own, and
        // setup run again finishes the other side.
        for (std::size_t i = 0; i < 2; ++i) {
            if (open[i]) {
                try {
                    conns[i]->exec("ROLLBACK");
                } catch (const Error&) {
                }
            }
        }
        throw;
    }
}

}  // namespace pgbridge
