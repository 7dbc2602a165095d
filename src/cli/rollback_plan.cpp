#include <algorithm>

#include <fmt/format.h>

#include <pgbridge/cli/rollback_plan.hpp>

namespace pgbridge::cli {

bool KeyChange::writes(const std::string& column) const {
    return operation != "update" || new_values.contains(column);
}

namespace {

// The first change after `since` (micros) that is not one of the window's and wrote `column`
// ("" for any column), if any.
const KeyChange* written_after(const std::vector<KeyChange>& window,
                               const std::vector<KeyChange>& others, std::int64_t since,
                               const std::string& column) {
    const KeyChange* first = nullptr;
    for (const auto& other : others) {
        const bool ours = std::any_of(window.begin(), window.end(),
                                      [&](const KeyChange& w) { return w.same_change(other); });
        if (ours || other.changed_at <= since) {
            continue;
        }
        if (!column.empty() && !other.writes(column)) {
            continue;
        }
        if (first == nullptr || other.changed_at < first->changed_at) {
            first = &other;
        }
    }
    return first;
}

std::string why(const KeyChange& later) {
    return fmt::format("written again after the window, on {} (LSN {})", later.from_side,
                       later.lsn);
}

}  // namespace

KeyRollback plan_key_rollback(const std::vector<KeyChange>& window,
                              const std::vector<KeyChange>& others) {
    KeyRollback plan;
    if (window.empty()) {
        return plan;
    }
    const KeyChange& first = window.front();
    const KeyChange& last = window.back();
    const bool existed_before = first.operation != "insert";
    const bool exists_after = last.operation != "delete";
    // Each column as it was before the window (the old value its first write in the window
    // saw), when the window last wrote it, and what the window left in it.
    ColumnValues before;
    std::map<std::string, std::int64_t> last_write;
    ColumnValues after;
    for (const auto& change : window) {
        for (const auto& [column, value] : change.old_values) {
            before.try_emplace(column, value);
        }
        if (change.operation == "delete") {
            for (const auto& [column, value] : change.old_values) {
                last_write[column] = change.changed_at;
                after.erase(column);
            }
        }
        for (const auto& [column, value] : change.new_values) {
            last_write[column] = change.changed_at;
            after[column] = value;
        }
    }
    if (!existed_before) {
        if (!exists_after) {
            return plan;  // inserted and deleted again: nothing of it is left
        }
        if (const KeyChange* later = written_after(window, others, last.changed_at, "")) {
            plan.skipped.emplace_back("*", why(*later));
            return plan;
        }
        plan.action = KeyRollback::Action::Delete;
        plan.expected = after;  // deleted only while it holds what the window left
        return plan;
    }
    if (!exists_after) {
        if (const KeyChange* later = written_after(window, others, last.changed_at, "")) {
            plan.skipped.emplace_back("*", why(*later));
            return plan;
        }
        plan.action = KeyRollback::Action::Reinsert;
        plan.values = before;
        return plan;
    }
    for (const auto& [column, value] : before) {
        const auto written = last_write.find(column);
        if (written == last_write.end()) {
            continue;
        }
        if (const KeyChange* later = written_after(window, others, written->second, column)) {
            plan.skipped.emplace_back(column, why(*later));
            continue;
        }
        const auto now = after.find(column);
        if (now != after.end() && now->second == value) {
            continue;  // the window left it as it was
        }
        plan.values[column] = value;
        plan.expected[column] = now != after.end() ? now->second : std::nullopt;
    }
    if (!plan.values.empty()) {
        plan.action = KeyRollback::Action::Restore;
    }
    return plan;
}

}  // namespace pgbridge::cli
