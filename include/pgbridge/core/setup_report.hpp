#pragma once

#include <string>
#include <vector>

namespace pgbridge {

// What setup or teardown found and did, one line per object, so the DBA sees exactly what
// changed (and a second run can say "nothing to do").
struct SetupStep {
    enum class Outcome {
        Changed,    // created, altered, granted or dropped (or would be, in a dry run)
        Unchanged,  // already as wanted
        Skipped,    // deliberately not touched; detail says why
        Warning,    // works, but the DBA should look
    };
    std::string side;    // empty for objects outside PostgreSQL
    std::string object;  // "publication pgbridge_crm"
    Outcome outcome = Outcome::Unchanged;
    std::string detail;  // "created", "granted SELECT, INSERT on public.talents", ...
};

struct SetupReport {
    bool dry_run = false;
    std::vector<SetupStep> steps;

    int changes() const;
    void add(std::string side, std::string object, SetupStep::Outcome outcome, std::string detail);
};

std::string_view to_string(SetupStep::Outcome outcome) noexcept;

}  // namespace pgbridge
