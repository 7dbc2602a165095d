#include <algorithm>

#include <pgbridge/core/setup_report.hpp>

namespace pgbridge {

int SetupReport::changes() const {
    return static_cast<int>(std::count_if(steps.begin(), steps.end(), [](const SetupStep& s) {
        return s.outcome == SetupStep::Outcome::Changed;
    }));
}

void SetupReport::add(std::string side, std::string object, SetupStep::Outcome outcome,
                      std::string detail) {
    steps.push_back(SetupStep{std::move(side), std::move(object), outcome, std::move(detail)});
}

std::string_view to_string(SetupStep::Outcome outcome) noexcept {
    switch (outcome) {
        case SetupStep::Outcome::Changed:
            return "changed";
        case SetupStep::Outcome::Unchanged:
            return "unchanged";
        case SetupStep::Outcome::Skipped:
            return "skipped";
        case SetupStep::Outcome::Warning:
            return "warning";
    }
    return "unknown";
}

}  // namespace pgbridge
