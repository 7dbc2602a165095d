#pragma once

#include <optional>
#include <string>
#include <vector>

#include <pgbridge/config/config.hpp>
#include <pgbridge/source/slot_identity.hpp>

namespace pgbridge::run {

// What `pgbridge run` found on one side before it declares, copies or writes anything.
struct SideReadiness {
    std::string side;
    source::SlotIdentity slot;
    source::SlotRecord record = source::SlotRecord::Unchanged;
};

// Checks, as the runtime role, that setup is complete on the side (metadata schema of this
// version, publication, slot, the origin for the other side's changes) and brings the slot's
// record up to date (source/slot_identity.hpp). Throws Error(Setup) naming what is missing
// and `pgbridge setup`; a lost slot is one (setup creates it again).
SideReadiness check_side_ready(const Config& config, const std::string& side);

// The broker objects setup declares are there. Throws Error(Setup) naming the first one
// missing; Error(Broker) when the broker cannot be reached.
void check_broker_ready(const Config& config);

// Both sides and the broker, as `pgbridge run` checks them before anything else: nullopt
// (after logging why) when run must not start; else whether the copies of a side were made
// through an older slot and need the repair that follows (run::Resync, sync.recopy = auto).
std::optional<bool> check_bridge_ready(const Config& config);

}  // namespace pgbridge::run
