#include <algorithm>
#include <cstdio>
#include <unistd.h>

#include <fmt/format.h>

#include <pgbridge/cli/progress_bar.hpp>
#include <pgbridge/core/byte_size.hpp>

namespace pgbridge::cli {

bool ProgressBar::wanted(bool json) {
    return !json && ::isatty(STDERR_FILENO) == 1;
}

std::string ProgressBar::line(const std::string& label, std::uint64_t done, std::uint64_t estimated,
                              std::size_t width) {
    // More rows than the planner estimated: the estimate was low, the bar is full.
    const std::uint64_t total = std::max(done, estimated);
    const double share = total == 0 ? 0 : static_cast<double>(done) / static_cast<double>(total);
    const auto filled = static_cast<std::size_t>(share * static_cast<double>(width));
    return fmt::format("{} [{}{}] {:3.0f}%  {} of about {} rows", label, std::string(filled, '#'),
                       std::string(width - filled, '-'), share * 100, format_count(done),
                       format_count(total));
}

void ProgressBar::update(const std::string& label, std::uint64_t done, std::uint64_t estimated) {
    if (!enabled_) {
        return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (label == label_ && now < next_) {
        return;
    }
    label_ = label;
    next_ = now + std::chrono::milliseconds(100);
    // \r and erase to the end of the line: a shorter line leaves nothing of the longer one.
    std::fprintf(stderr, "\r%s\x1b[K", line(label, done, estimated).c_str());
    std::fflush(stderr);
    drawn_ = true;
}

void ProgressBar::clear() {
    if (drawn_) {
        std::fputs("\r\x1b[K", stderr);
        std::fflush(stderr);
        drawn_ = false;
    }
}

}  // namespace pgbridge::cli
