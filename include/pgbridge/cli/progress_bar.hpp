#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace pgbridge::cli {

// One line on stderr, redrawn in place, for a long command on a terminal:
//   verify public.notes [########------------]  41%  123,000 of about 300,000 rows
// Off (draws nothing) when stderr is not a terminal or the output is --json, so that logs,
// pipes and scripts never see it.
class ProgressBar {
  public:
    explicit ProgressBar(bool enabled) : enabled_(enabled) {}
    ~ProgressBar() { clear(); }
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;

    // Enabled when stderr is a terminal and the command does not print JSON.
    static bool wanted(bool json);

    // Draws at most ten times a second, and always when `label` changes.
    void update(const std::string& label, std::uint64_t done, std::uint64_t estimated);
    // Erases the line (before the command prints its result).
    void clear();

    // The line update() draws, without the carriage return. Pure, for tests.
    static std::string line(const std::string& label, std::uint64_t done, std::uint64_t estimated,
                            std::size_t width = 20);

  private:
    bool enabled_;
    bool drawn_ = false;
    std::string label_;
    std::chrono::steady_clock::time_point next_;
};

}  // namespace pgbridge::cli
