#include <fmt/format.h>

#include <pgbridge/core/error.hpp>
#include <pgbridge/core/log.hpp>
#include <pgbridge/core/sqlstate.hpp>
#include <pgbridge/source/slot_identity.hpp>

namespace pgbridge::source {
namespace {

Lsn lsn_of(std::string_view text) {
    return Lsn::parse(text).value_or(Lsn());
}

}  // namespace

SlotIdentity read_slot_identity(pg::Connection& conn, const std::string& bridge,
                                const std::string& slot) {
    SlotIdentity id;
    const auto server = conn.exec(
        "SELECT coalesce(wal_status, ''), coalesce(confirmed_flush_lsn, '0/0')::text"
        "  FROM pg_replication_slots WHERE slot_name = $1",
        {slot});
    if (server.rows() == 1) {
        id.exists = true;
        id.wal_status = std::string(server.value(0, 0));
        id.confirmed_flush = lsn_of(server.value(0, 1));
    }
    try {
        const auto recorded = conn.exec(
            "SELECT generation, confirmed_lsn::text, repair_pending FROM pgbridge.slot_state"
            " WHERE bridge = $1 AND slot_name = $2",
            {bridge, slot});
        if (recorded.rows() == 1) {
            id.generation = std::stoll(std::string(recorded.value(0, 0)));
            id.recorded = lsn_of(recorded.value(0, 1));
            id.repair_pending = recorded.value(0, 2) == "t";
        }
    } catch (const Error& e) {
        if (e.context_value("sqlstate") == sqlstate::kUndefinedTable ||
            e.context_value("sqlstate") == sqlstate::kUndefinedColumn) {
            throw Error(ErrorKind::Setup,
                        "the pgbridge schema on this side predates this version of pgbridge; "
                        "run pgbridge setup")
                .with("side", conn.side());
        }
        throw;
    }
    return id;
}

SlotRecord record_slot_identity(pg::Connection& conn, const std::string& bridge,
                                const std::string& slot, SlotIdentity& now, bool created_again) {
    if (!now.exists) {
        throw Error(ErrorKind::Internal, "recording a slot that does not exist").with("slot", slot);
    }
    if (now.generation && !created_again && !now.moved_outside()) {
        return SlotRecord::Unchanged;
    }
    const bool first = !now.generation;
    const std::int64_t generation = first ? 1 : *now.generation + 1;
    conn.transaction([&] {
        conn.exec(
            "INSERT INTO pgbridge.slot_state"
            "       (bridge, slot_name, generation, confirmed_lsn, repair_pending)"
            " VALUES ($1, $2, $3, $4::pg_lsn, $5::boolean) ON CONFLICT (bridge, slot_name)"
            " DO UPDATE SET generation = EXCLUDED.generation,"
            "     confirmed_lsn = EXCLUDED.confirmed_lsn, repair_pending = EXCLUDED.repair_pending,"
            "     since = now(), recorded_at = now()",
            {bridge, slot, std::to_string(generation), now.confirmed_flush.to_string(),
             first ? "false" : "true"});
        if (first) {
            // The copies made so far were made through this slot (or one pgbridge cannot
            // know of any more): they count as its own.
            conn.exec(
                "UPDATE pgbridge.sync_state SET slot_generation = $2"
                " WHERE bridge = $1 AND slot_generation IS NULL",
                {bridge, std::to_string(generation)});
        }
    });
    now.generation = generation;
    now.recorded = now.confirmed_flush;
    now.repair_pending = !first;
    return first ? SlotRecord::Recorded : SlotRecord::NewGeneration;
}

void mark_copies_current(pg::Connection& conn, const std::string& bridge, const std::string& slot) {
    conn.exec(
        "UPDATE pgbridge.slot_state SET repair_pending = false"
        " WHERE bridge = $1 AND slot_name = $2 AND repair_pending",
        {bridge, slot});
    conn.exec(
        "UPDATE pgbridge.sync_state s SET slot_generation = g.generation"
        "  FROM pgbridge.slot_state g"
        " WHERE s.bridge = $1 AND g.bridge = $1 AND g.slot_name = $2"
        "   AND s.slot_generation IS DISTINCT FROM g.generation",
        {bridge, slot});
}

PostgresSlotJournal::PostgresSlotJournal(pg::ConnectOptions connect, std::string bridge,
                                         std::string slot, std::chrono::milliseconds interval,
                                         std::uint64_t min_step)
    : connect_(std::move(connect)),
      bridge_(std::move(bridge)),
      slot_(std::move(slot)),
      interval_(interval),
      min_step_(min_step) {}

PostgresSlotJournal::~PostgresSlotJournal() = default;

pg::Connection& PostgresSlotJournal::connection() {
    if (!conn_) {
        conn_ = std::make_unique<pg::Connection>(pg::Connection::open(connect_));
    }
    return *conn_;
}

void PostgresSlotJournal::verify_slot() {
    SlotIdentity now;
    try {
        now = read_slot_identity(connection(), bridge_, slot_);
    } catch (const Error&) {
        conn_.reset();
        throw;
    }
    if (now.moved_outside()) {
        throw Error(ErrorKind::Setup,
                    "the slot is ahead of the last position pgbridge reported: it was created "
                    "again or moved while pgbridge ran, and what this side committed in between "
                    "was never captured; pgbridge run repairs it when it starts again")
            .with("side", connect_.side)
            .with("slot", slot_)
            .with("slot_lsn", now.confirmed_flush.to_string())
            .with("recorded_lsn", now.recorded.to_string());
    }
}

Lsn PostgresSlotJournal::allow(Lsn wanted, bool closing) {
    const auto now = std::chrono::steady_clock::now();
    if (recorded_ && wanted <= *recorded_) {
        return wanted;
    }
    if (recorded_ && !closing &&
        (now - last_write_ < interval_ || wanted.value - recorded_->value < min_step_)) {
        return *recorded_;
    }
    try {
        // GREATEST: never backwards, whatever another writer did.
        const auto r = connection().exec(
            "UPDATE pgbridge.slot_state SET confirmed_lsn = greatest(confirmed_lsn, $3::pg_lsn),"
            "       recorded_at = now()"
            " WHERE bridge = $1 AND slot_name = $2 RETURNING confirmed_lsn::text",
            {bridge_, slot_, wanted.to_string()});
        last_write_ = now;
        if (r.rows() == 1) {
            recorded_ = lsn_of(r.value(0, 0));
        } else if (!recorded_) {
            // Not recorded (run records it before capture starts): report nothing new.
            log::warning("capture",
                         "the slot has no record in pgbridge.slot_state; its "
                         "position is not reported until pgbridge run records it",
                         {{"side", connect_.side}, {"slot", slot_}});
            recorded_ = Lsn();
        }
    } catch (const Error& e) {
        // The slot stays where it was recorded; the next report tries again.
        conn_.reset();
        log::debug("capture", "could not record the slot position yet",
                   {{"side", connect_.side}, {"slot", slot_}, {"error", e.what()}});
    }
    if (!recorded_) {
        return Lsn();
    }
    return std::min(wanted, *recorded_);
}

}  // namespace pgbridge::source
