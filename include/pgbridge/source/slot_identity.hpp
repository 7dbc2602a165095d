#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <pgbridge/core/lsn.hpp>
#include <pgbridge/pg/connection.hpp>

namespace pgbridge::source {

// One side's slot as its server shows it and as pgbridge recorded it (pgbridge.slot_state).
// A slot dropped and created again (by `pgbridge setup`, by hand, or on a new primary after a
// failover) streams from its creation on: what was committed between the old slot's last
// confirmed position and then never reaches the other side. pgbridge tells such a slot from
// its predecessor by a position it records before it ever reports one to the server: the
// server's confirmed_flush_lsn is never past it for a slot pgbridge alone moved.
struct SlotIdentity {
    bool exists = false;
    std::string wal_status;  // reserved | extended | unreserved | lost
    Lsn confirmed_flush;     // the server's
    // From pgbridge.slot_state; nullopt until recorded (a slot of an older pgbridge).
    std::optional<std::int64_t> generation;
    Lsn recorded;  // the furthest position pgbridge reported
    // The generation began with changes never captured (not the first slot), and no repair
    // of every synced table has run since: they may be missing on the other side, and the
    // copies made through the older slot (pgbridge.sync_state) do not say otherwise.
    bool repair_pending = false;

    bool lost() const { return wal_status == "lost"; }
    // Past anything pgbridge reported: created again, or moved by hand.
    bool moved_outside() const {
        return exists && generation.has_value() && confirmed_flush > recorded;
    }
};

// Reads the slot and its record. Throws Error(Setup) naming `pgbridge setup` when the
// metadata schema predates slot identities.
SlotIdentity read_slot_identity(pg::Connection& conn, const std::string& bridge,
                                const std::string& slot);

enum class SlotRecord {
    Unchanged,      // recorded, and the server agrees
    Recorded,       // first seen: recorded as generation 1, the copies made so far its own
    NewGeneration,  // created again or moved: the next generation, its repair pending
};

// Brings pgbridge.slot_state in line with the server's slot `now` (read just before; the slot
// must exist). created_again: the caller has just created the slot while a record existed.
// In one transaction; returns what it did, and leaves `now` describing the new state.
SlotRecord record_slot_identity(pg::Connection& conn, const std::string& bridge,
                                const std::string& slot, SlotIdentity& now, bool created_again);

// Marks this side's copies as made through the current generation of its slot, and its
// repair as done: after a repair of every synced table has brought the other side up to date.
void mark_copies_current(pg::Connection& conn, const std::string& bridge, const std::string& slot);

// Decides how far capture may report its slot confirmed, recording it first (see
// SlotIdentity). A seam: capture runs without one in tests and `pgbridge tail`.
class SlotJournal {
  public:
    virtual ~SlotJournal() = default;
    // The position that may be reported now, at most `wanted`. `closing`: the last report
    // before the connection ends, recorded whatever the pace.
    virtual Lsn allow(Lsn wanted, bool closing) = 0;
    // Before each replication session: throws Error(Setup) when the slot is past its record
    // (created again or moved while pgbridge ran), which a restart of run repairs.
    virtual void verify_slot() = 0;
};

// The journal in pgbridge.slot_state on the slot's own server, over a connection of its own.
// Writes at most once per `interval`, and only for a step of at least `min_step` bytes: its
// own write moves the WAL a little, which must not call for the next write of an idle
// database. Until a write succeeds, the slot is not reported further than recorded.
class PostgresSlotJournal final : public SlotJournal {
  public:
    PostgresSlotJournal(pg::ConnectOptions connect, std::string bridge, std::string slot,
                        std::chrono::milliseconds interval = std::chrono::seconds(2),
                        std::uint64_t min_step = 8192);
    ~PostgresSlotJournal() override;

    Lsn allow(Lsn wanted, bool closing) override;
    void verify_slot() override;

  private:
    pg::Connection& connection();

    pg::ConnectOptions connect_;
    std::string bridge_;
    std::string slot_;
    std::chrono::milliseconds interval_;
    std::uint64_t min_step_;
    std::unique_ptr<pg::Connection> conn_;
    std::optional<Lsn> recorded_;
    std::chrono::steady_clock::time_point last_write_{};
};

}  // namespace pgbridge::source
